/*
 * Unit-test runner: every test of tests/unit/list.h in its own child
 * process, so a crash fails one test, not the run. Prints "ok"/"FAIL" lines
 * and a final "RESULT passed failed" for tests/run.py.
 */
#include "unit.h"
#include "list.h"

#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define X(n) void test_##n(void);
GW_UNIT_TESTS
#undef X

static const struct {
	const char *name;
	void (*fn)(void);
} tests[] = {
#define X(n) {#n, test_##n},
	GW_UNIT_TESTS
#undef X
};

int main(int argc, char **argv)
{
	int passed = 0, failed = 0;
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		if (argc > 1 && !strstr(tests[i].name, argv[1]))
			continue;
		fflush(stdout);
		pid_t pid = fork();
		if (pid == 0) {
			tests[i].fn();
			exit(0);
		}
		int st = 0;
		waitpid(pid, &st, 0);
		if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
			passed++;
			printf("ok   unit::%s\n", tests[i].name);
		} else {
			failed++;
			printf("FAIL unit::%s (%s %d)\n", tests[i].name, WIFSIGNALED(st) ? "signal" : "exit",
				WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
		}
	}
	printf("RESULT %d %d\n", passed, failed);
	return failed ? 1 : 0;
}
