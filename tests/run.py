#!/usr/bin/python3
"""Run every test: the C unit tests, then each integration module in its own process.

Prints one line per test and ends with exactly one line "N passed, M failed".
Usage: tests/run.py [FILTER...]   (a filter picks modules whose name contains it)
"""
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, os.environ.get("PGMOAT_BUILD", "build"))
MODULE_TIMEOUT = int(os.environ.get("PGMOAT_MODULE_TIMEOUT", "900"))


def run_stream(cmd, env, timeout):
    """Run cmd, echo its output, return (passed, failed) from its RESULT line."""
    passed = failed = None
    t0 = time.time()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
    try:
        for line in p.stdout:
            m = re.match(r"RESULT (\d+) (\d+)$", line.strip())
            if m:
                passed, failed = int(m.group(1)), int(m.group(2))
                continue
            sys.stdout.write(line)
            sys.stdout.flush()
            if time.time() - t0 > timeout:
                break
        p.wait(timeout=max(1, timeout - (time.time() - t0)))
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        print("FAIL %s: timed out after %ds" % (" ".join(cmd[-1:]), timeout))
        return (passed or 0), (failed or 0) + 1
    if passed is None:
        print("FAIL %s: exited %d without a result" % (" ".join(cmd[-1:]), p.returncode))
        return 0, 1
    if p.returncode != 0 and failed == 0:
        print("FAIL %s: exited %d" % (" ".join(cmd[-1:]), p.returncode))
        failed = 1
    return passed, failed


def main():
    filters = sys.argv[1:]
    env = dict(os.environ, PGMOAT_BUILD=os.path.relpath(BUILD, ROOT), PYTHONUNBUFFERED="1")
    total_p = total_f = 0
    t0 = time.time()
    unit = os.path.join(BUILD, "unit_tests")
    if not filters or any("unit" in f for f in filters):
        p, f = run_stream([unit], env, 300)
        total_p += p
        total_f += f
    idir = os.path.join(ROOT, "tests", "integration")
    mods = sorted(m for m in os.listdir(idir) if m.startswith("test_") and m.endswith(".py"))
    for m in mods:
        if filters and not any(f in m for f in filters):
            continue
        print("# %s" % m, flush=True)
        p, f = run_stream(["/usr/bin/python3", os.path.join(idir, m)], env, MODULE_TIMEOUT)
        total_p += p
        total_f += f
    print("# %.0fs" % (time.time() - t0))
    print("%d passed, %d failed" % (total_p, total_f))
    sys.exit(1 if total_f or not total_p else 0)


if __name__ == "__main__":
    main()
