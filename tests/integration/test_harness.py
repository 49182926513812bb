#!/usr/bin/env python3
"""The harness's own guarantees (tfharness.py), against a stand-in for the
tickflow binary so each failure is deliberate: a test function that asserts
nothing fails; a non-JSON stderr line of a started process fails the test
and is shown; a sanitizer report file (log_path) and a UBSan "runtime
error:" line on stderr fail it as sanitizer reports. No PostgreSQL needed."""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tfharness as h  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

# A fake tickflow: its first argument says how to misbehave.
FAKE = r"""#!/bin/sh
case "$1" in
  json)    echo '{"ts":"x","level":"info","msg":"fine"}' >&2 ;;
  plain)   echo '{"ts":"x","level":"info","msg":"fine"}' >&2; echo 'tickflow run: something broke' >&2 ;;
  asan)    p=$(echo "$ASAN_OPTIONS" | tr ':' '\n' | sed -n 's/^log_path=//p')
           printf '==1==ERROR: LeakSanitizer: detected memory leaks\n' > "$p.$$" ;;
  ubsan)   echo 'src/x.c:1:2: runtime error: signed integer overflow' >&2 ;;
  sleep)   echo '{"msg":"up"}' >&2; exec sleep 60 ;;
esac
exit 0
"""

# A child test file: one test per misbehaviour, run as its own process.
CHILD = r"""
import os, sys
sys.path.insert(0, %(here)r)
import tfharness as h

def test_json(c):
    c.eq(h.run(["json"]).returncode, 0, "ran")

def test_nothing(c):
    h.run(["json"])

def test_plain(c):
    c.eq(h.run(["plain"]).returncode, 0, "ran")

def test_asan(c):
    c.eq(h.run(["asan"]).returncode, 0, "ran")

def test_ubsan(c):
    c.eq(h.run(["ubsan"]).returncode, 0, "ran")

def test_proc_plain(c):
    p = h.Proc(["plain"], name="fake")
    c.eq(p.wait(10), 0, "exited")

def test_left_running(c):
    h.Proc(["sleep"], name="sleeper")  # killed by the harness at exit: still checked
    c.check(True, "started")

h.main([globals()[n] for n in sys.argv[1:]])
"""


def child(tests):
    d = tempfile.mkdtemp(prefix="tf-harness-")
    h.on_exit(lambda: subprocess.run(["rm", "-rf", d]))
    fake, script = os.path.join(d, "fake-tickflow"), os.path.join(d, "child.py")
    with open(fake, "w") as f:
        f.write(FAKE)
    os.chmod(fake, 0o755)
    with open(script, "w") as f:
        f.write(CHILD % {"here": HERE})
    env = dict(os.environ, TICKFLOW_BIN=fake)
    return subprocess.run([sys.executable, script] + tests, capture_output=True, text=True, env=env, timeout=120)


def test_clean_passes(c):
    p = child(["test_json", "test_left_running"])
    c.eq(p.returncode, 0, "a test that checks and whose processes log JSON passes: " + p.stdout[-1000:])


def test_no_assertion_fails(c):
    p = child(["test_nothing"])
    c.eq(p.returncode, 1, "exit code")
    c.check("test_nothing made no assertion" in p.stdout, "named as making no assertion", p.stdout[-1000:])


def test_non_json_stderr_fails(c):
    for t in ("test_plain", "test_proc_plain"):
        p = child([t])
        c.eq(p.returncode, 1, t + ": exit code")
        c.check("not one JSON object per line" in p.stdout and "tickflow run: something broke" in p.stdout,
                t + ": the line is shown", p.stdout[-1000:])


def test_sanitizer_reports_fail(c):
    p = child(["test_asan"])
    c.eq(p.returncode, 1, "ASan log file: exit code")
    c.check("sanitizer report asan-run-asan." in p.stdout and "LeakSanitizer" in p.stdout,
            "ASan log file printed", p.stdout[-1000:])
    p = child(["test_ubsan"])
    c.eq(p.returncode, 1, "UBSan on stderr: exit code")
    c.check("sanitizer report (UBSan" in p.stdout and "signed integer overflow" in p.stdout,
            "UBSan line printed as a sanitizer report", p.stdout[-1000:])


if __name__ == "__main__":
    h.main([test_clean_passes, test_no_assertion_fails, test_non_json_stderr_fails, test_sanitizer_reports_fail])
