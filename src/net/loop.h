/*
 * gw_loop — one event loop per worker thread (epoll, level-triggered).
 *
 * Owns: the epoll set, a thread-safe inbox of tasks (eventfd-woken), a
 * periodic tick, and deferred frees. Everything registered on a loop is
 * touched only by that loop's thread; other threads talk to it through
 * gw_loop_post().
 *
 * Object lifetime: an object that removes itself during a callback must not
 * be freed at once (another event of the same batch may name it): it calls
 * gw_loop_defer_free(), which frees it after the batch.
 */
#ifndef GW_NET_LOOP_H
#define GW_NET_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

typedef struct gw_loop gw_loop;
typedef struct gw_io gw_io;
typedef void (*gw_io_cb)(gw_io *io, uint32_t events);
typedef void (*gw_task_fn)(void *arg);

struct gw_io {
	int fd;
	uint32_t events;     /* interest currently registered (0: not registered) */
	gw_io_cb cb;
	void *ud;
	gw_loop *loop;
};

gw_loop *gw_loop_new(int index);
void gw_loop_free(gw_loop *loop);
int gw_loop_index(const gw_loop *loop);

/* Register io->fd with the given interest (EPOLLIN/EPOLLOUT); 0 removes it. */
int gw_loop_watch(gw_loop *loop, gw_io *io, uint32_t events);
/* Stop watching; the fd is not closed. */
void gw_loop_unwatch(gw_io *io);

/* Run fn(arg) on the loop's thread soon. Thread-safe. */
void gw_loop_post(gw_loop *loop, gw_task_fn fn, void *arg);
/* Call fn(arg) about every interval_us microseconds (one tick per loop). */
void gw_loop_set_tick(gw_loop *loop, uint64_t interval_us, gw_task_fn fn, void *arg);
/* Call fn(arg) after each batch of events (work that is cheaper done once per batch). */
void gw_loop_set_after(gw_loop *loop, gw_task_fn fn, void *arg);
/* Free p (with free_fn) after the current batch of events. */
void gw_loop_defer_free(gw_loop *loop, void (*free_fn)(void *), void *p);

/* Run until gw_loop_stop(); returns 0. */
int gw_loop_run(gw_loop *loop);
void gw_loop_stop(gw_loop *loop); /* thread-safe */

#endif
