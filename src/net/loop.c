/*
 * Per-thread epoll loop with an inbox, a tick and deferred frees; see loop.h.
 */
#include "net/loop.h"
#include "core/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

typedef struct task {
	gw_task_fn fn;
	void *arg;
	struct task *next;
} task;

typedef struct deferred {
	void (*free_fn)(void *);
	void *p;
} deferred;

struct gw_loop {
	int index;
	int epfd;
	gw_io wake;
	pthread_mutex_t lock;
	task *head, *tail;
	atomic_bool stop;
	uint64_t tick_us, next_tick;
	gw_task_fn tick_fn;
	void *tick_arg;
	gw_task_fn after_fn;
	void *after_arg;
	deferred *dfr;
	size_t ndfr, capdfr;
};

static void on_wake(gw_io *io, uint32_t events)
{
	uint64_t v;
	ssize_t r = read(io->fd, &v, sizeof(v));
	(void)r;
}

gw_loop *gw_loop_new(int index)
{
	gw_loop *l = gw_xcalloc(1, sizeof(*l));
	l->index = index;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0)
		gw_die("epoll_create1: %d", errno);
	pthread_mutex_init(&l->lock, NULL);
	l->wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->wake.fd < 0)
		gw_die("eventfd: %d", errno);
	l->wake.cb = on_wake;
	gw_loop_watch(l, &l->wake, EPOLLIN);
	return l;
}

void gw_loop_free(gw_loop *l)
{
	if (!l)
		return;
	close(l->wake.fd);
	close(l->epfd);
	for (task *t = l->head; t;) {
		task *n = t->next;
		free(t);
		t = n;
	}
	for (size_t i = 0; i < l->ndfr; i++)
		l->dfr[i].free_fn(l->dfr[i].p);
	free(l->dfr);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

int gw_loop_index(const gw_loop *l) { return l->index; }

int gw_loop_watch(gw_loop *l, gw_io *io, uint32_t events)
{
	if (io->events == events && io->loop == l && events)
		return 0;
	struct epoll_event ev = {.events = events, .data.ptr = io};
	int rc;
	if (!events) {
		if (!io->events)
			return 0;
		rc = epoll_ctl(l->epfd, EPOLL_CTL_DEL, io->fd, NULL);
	} else if (io->events && io->loop == l) {
		rc = epoll_ctl(l->epfd, EPOLL_CTL_MOD, io->fd, &ev);
	} else {
		rc = epoll_ctl(l->epfd, EPOLL_CTL_ADD, io->fd, &ev);
	}
	io->loop = l;
	io->events = events;
	return rc;
}

void gw_loop_unwatch(gw_io *io)
{
	if (io->loop && io->events)
		epoll_ctl(io->loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
	io->events = 0;
}

void gw_loop_post(gw_loop *l, gw_task_fn fn, void *arg)
{
	task *t = gw_xmalloc(sizeof(*t));
	t->fn = fn;
	t->arg = arg;
	t->next = NULL;
	pthread_mutex_lock(&l->lock);
	if (l->tail)
		l->tail->next = t;
	else
		l->head = t;
	l->tail = t;
	pthread_mutex_unlock(&l->lock);
	uint64_t one = 1;
	ssize_t r = write(l->wake.fd, &one, sizeof(one));
	(void)r;
}

void gw_loop_set_tick(gw_loop *l, uint64_t interval_us, gw_task_fn fn, void *arg)
{
	l->tick_us = interval_us;
	l->tick_fn = fn;
	l->tick_arg = arg;
	l->next_tick = gw_mono_us() + interval_us;
}

void gw_loop_defer_free(gw_loop *l, void (*free_fn)(void *), void *p)
{
	if (l->ndfr == l->capdfr) {
		l->capdfr = l->capdfr ? l->capdfr * 2 : 16;
		l->dfr = gw_xrealloc(l->dfr, l->capdfr * sizeof(deferred));
	}
	l->dfr[l->ndfr].free_fn = free_fn;
	l->dfr[l->ndfr].p = p;
	l->ndfr++;
}

static void run_deferred(gw_loop *l)
{
	/* A free function may defer more; loop until none are left. */
	while (l->ndfr) {
		size_t n = l->ndfr;
		deferred *d = gw_xmalloc(n * sizeof(deferred));
		for (size_t i = 0; i < n; i++)
			d[i] = l->dfr[i];
		l->ndfr = 0;
		for (size_t i = 0; i < n; i++)
			d[i].free_fn(d[i].p);
		free(d);
	}
}

static void run_tasks(gw_loop *l)
{
	pthread_mutex_lock(&l->lock);
	task *t = l->head;
	l->head = l->tail = NULL;
	pthread_mutex_unlock(&l->lock);
	while (t) {
		task *n = t->next;
		t->fn(t->arg);
		free(t);
		t = n;
	}
}

int gw_loop_run(gw_loop *l)
{
	struct epoll_event evs[256];
	while (!atomic_load(&l->stop)) {
		int timeout = -1;
		if (l->tick_fn) {
			uint64_t now = gw_mono_us();
			timeout = now >= l->next_tick ? 0 : (int)((l->next_tick - now + 999) / 1000);
		}
		int n = epoll_wait(l->epfd, evs, (int)GW_ARRAY_LEN(evs), timeout);
		if (n < 0 && errno != EINTR)
			gw_die("epoll_wait: %d", errno);
		for (int i = 0; i < n; i++) {
			gw_io *io = evs[i].data.ptr;
			/* An io unwatched earlier in this batch has events == 0. */
			if (io->events && io->cb)
				io->cb(io, evs[i].events);
		}
		if (l->after_fn)
			l->after_fn(l->after_arg);
		run_deferred(l);
		run_tasks(l);
		run_deferred(l);
		if (l->tick_fn && gw_mono_us() >= l->next_tick) {
			l->next_tick = gw_mono_us() + l->tick_us;
			l->tick_fn(l->tick_arg);
			run_deferred(l);
		}
	}
	return 0;
}

void gw_loop_set_after(gw_loop *l, gw_task_fn fn, void *arg)
{
	l->after_fn = fn;
	l->after_arg = arg;
}

void gw_loop_stop(gw_loop *l)
{
	atomic_store(&l->stop, true);
	uint64_t one = 1;
	ssize_t r = write(l->wake.fd, &one, sizeof(one));
	(void)r;
}
