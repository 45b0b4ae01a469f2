/*
 * The unit-test registry: each src/<mod>/<mod>_test.c defines tests with
 * GW_TEST(name) and lists them in tests/unit/list.h. tests/unit/run.c runs
 * each one in its own child process.
 */
#ifndef GW_TESTS_UNIT_H
#define GW_TESTS_UNIT_H

#include <stdio.h>
#include <stdlib.h>

#define GW_TEST(name) void test_##name(void)
#define CHECK(cond) do { if (!(cond)) { fprintf(stderr, "     check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); exit(1); } } while (0)

#endif
