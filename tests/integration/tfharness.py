"""Shared harness for tickflow integration tests (Python 3 stdlib only).

Real components only: a throw-away PostgreSQL cluster per test file (started
with scripts/pg-local in a temp dir on a free port), the real tickflow binary
(TICKFLOW_BIN, the sanitizer build under `make test`), real sockets.
Everything started here is stopped at exit, also when a test fails or the
process gets SIGTERM/SIGINT.

What every test gets without asking, so that a test can only pass by
checking something and by the processes it started behaving:
- a test function that made no assertion (no c.check / c.eq) fails;
- every stderr line of every tickflow process started here (Proc, Server,
  run) must parse as one JSON object (DESIGN section 5: structured logs);
  the first offending lines are shown and fail the test that was running;
- sanitizer reports are collected in one place: ASan/LSan (and recoverable
  UBSan) write to per-process files under one directory (log_path), GCC's
  non-recoverable UBSan checks (-fno-sanitize-recover) print "runtime
  error:" to stderr whatever log_path says, so those stderr lines are taken
  as sanitizer reports too; any report fails the test, printed in full.
"""
import atexit
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request

SRC = os.environ.get("TICKFLOW_SRC") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("TICKFLOW_BIN") or os.path.join(SRC, "build", "tickflow")
PG_LOCAL = os.path.join(SRC, "scripts", "pg-local")

_cleanups = []

# Failures found by the harness itself (non-JSON stderr, sanitizer reports);
# main() charges them to the test that was running when they were found.
_problems = []

# Sanitizer reports of every process started from this test file, including
# helpers (wspipe, unit-test binaries) that inherit os.environ: one directory,
# one file per process (the runtime appends .PID). Scanned by main().
SAN_DIR = tempfile.mkdtemp(prefix="tf-san-")
_san_seen = set()


def _with_log_path(opts, prefix):
    """opts (a sanitizer options string) with log_path set to prefix."""
    kept = [o for o in (opts or "").split(":") if o and not o.startswith("log_path=")]
    return ":".join(kept + ["log_path=" + prefix])


os.environ["ASAN_OPTIONS"] = _with_log_path(os.environ.get("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0"),
                                            os.path.join(SAN_DIR, "asan"))
os.environ["UBSAN_OPTIONS"] = _with_log_path(os.environ.get("UBSAN_OPTIONS", "print_stacktrace=1"),
                                             os.path.join(SAN_DIR, "ubsan"))


def sanitizer_env(env, name):
    """env (a full environment) with each sanitizer's log_path under SAN_DIR,
    named after the process, keeping any other options the caller set."""
    tag = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)
    env["ASAN_OPTIONS"] = _with_log_path(env.get("ASAN_OPTIONS"), os.path.join(SAN_DIR, "asan-" + tag))
    env["UBSAN_OPTIONS"] = _with_log_path(env.get("UBSAN_OPTIONS"), os.path.join(SAN_DIR, "ubsan-" + tag))
    return env


def sanitizer_reports():
    """New non-empty sanitizer report files since the last call, as one
    string per file (header line + contents); [] when there are none."""
    out = []
    for path in sorted(glob.glob(os.path.join(SAN_DIR, "*"))):
        if path in _san_seen or os.path.getsize(path) == 0:
            continue
        _san_seen.add(path)
        with open(path, "rb") as f:
            out.append("sanitizer report %s:\n%s" % (os.path.basename(path), f.read().decode("utf-8", "replace")))
    return out


def stderr_problems(text, who, killed=False):
    """Checks that every line of a tickflow process's stderr is one JSON
    object. Returns a list of problem strings: UBSan "runtime error:" lines
    (with the rest of the output after them, which holds the stack) as a
    sanitizer report, otherwise the first few non-JSON lines. killed: the
    process was SIGKILLed, so a last line without its newline is expected."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    elif lines and killed:
        lines.pop()  # cut mid-write by SIGKILL
    for i, ln in enumerate(lines):
        if "runtime error:" in ln and not ln.startswith("{"):
            return ["sanitizer report (UBSan, stderr of %s):\n%s" % (who, "\n".join(lines[i:i + 40]))]
    bad = []
    for i, ln in enumerate(lines):
        try:
            ok = isinstance(json.loads(ln), dict)
        except ValueError:
            ok = False
        if not ok:
            bad.append("  line %d: %r" % (i + 1, ln[:300]))
    if not bad:
        return []
    more = " (and %d more)" % (len(bad) - 5) if len(bad) > 5 else ""
    return ["stderr of %s is not one JSON object per line%s:\n%s" % (who, more, "\n".join(bad[:5]))]


def on_exit(fn):
    """Registers fn to run at exit (LIFO), even on failure or signal."""
    _cleanups.append(fn)
    return fn


def _run_cleanups():
    while _cleanups:
        fn = _cleanups.pop()
        try:
            fn()
        except Exception:  # keep cleaning up
            traceback.print_exc()


atexit.register(_run_cleanups)
atexit.register(lambda: shutil.rmtree(SAN_DIR, ignore_errors=True))


def _on_signal(signum, _frame):
    _run_cleanups()
    os._exit(128 + signum)


signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)


PORT_DIR = os.path.join(tempfile.gettempdir(), "tf-test-ports")
_reserved = []


def _release_ports():
    for path in _reserved:
        try:
            os.unlink(path)
        except OSError:
            pass


atexit.register(_release_ports)


def free_port():
    """A port free now that no other test on this machine was given in the
    last hour. The kernel's free port is free only until someone binds it:
    under ctest -j the test beside this one could be handed the same one
    before our server bound it, and then one test's client talked to the
    other test's Kafka or PostgreSQL (CI: a Kafka consumer got another
    test's trades, a Debezium test missed its own insert). A reservation is
    a file created with O_EXCL, removed when this test exits (one left by a
    killed run expires after an hour)."""
    os.makedirs(PORT_DIR, exist_ok=True)
    for _ in range(1000):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        path = os.path.join(PORT_DIR, str(port))
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                if time.time() - os.stat(path).st_mtime > 3600:
                    os.unlink(path)
            except OSError:
                pass
            continue
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        _reserved.append(path)
        return port
    raise RuntimeError("free_port: every port the kernel offered is reserved by another test (%s)" % PORT_DIR)


def wait_for(cond, timeout=30.0, what="condition", interval=0.02):
    """Polls cond() until truthy; returns its value or raises AssertionError."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = cond()
            if last:
                return last
        except Exception as e:  # condition not ready yet
            last = e
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s (last: %r)" % (timeout, what, last))


class Postgres:
    """A throw-away cluster: Postgres().url, .sql(), .stop(), .restart()."""

    def __init__(self, fsync="off"):
        base = tempfile.mkdtemp(prefix="tf-pg-")
        if os.geteuid() == 0:
            os.chmod(base, 0o755)
        self.dir = base
        self.port = free_port()
        self.env = dict(os.environ, TF_PG_DIR=os.path.join(base, "pg"), TF_PG_PORT=str(self.port),
                        TF_PG_FSYNC=fsync)
        self.url = "postgresql://tickflow@127.0.0.1:%d/tickflow" % self.port
        on_exit(self.destroy)
        self.start()

    def _ctl(self, cmd):
        subprocess.run([PG_LOCAL, cmd], env=self.env, check=True, stdout=subprocess.DEVNULL)

    def start(self):
        self._ctl("start")

    def stop(self):
        self._ctl("stop")

    def restart(self):
        self._ctl("restart")

    def destroy(self):
        try:
            self._ctl("stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def sql(self, query, check=True):
        """Runs query with psql; returns rows as lists of strings (unaligned, '|' separated)."""
        p = subprocess.run([PG_LOCAL, "psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-c", query],
                           env=self.env, capture_output=True, text=True)
        if check and p.returncode != 0:
            raise AssertionError("psql failed (%d): %s\nquery: %s" % (p.returncode, p.stderr, query))
        if not check and p.returncode != 0:
            return None
        return [line.split("|") for line in p.stdout.splitlines() if line != ""]

    def scalar(self, query):
        rows = self.sql(query)
        return rows[0][0] if rows else None


class Proc:
    """A tickflow subprocess (or, with exe, another binary of ours) with
    stdout and stderr captured to files; killed at exit. When it has exited
    (stop, kill, or the harness's cleanup) its stderr is checked: one JSON
    object per line."""

    def __init__(self, args, env=None, name="tickflow", exe=None):
        base = tempfile.mktemp(prefix="tf-%s-" % name)
        self.name = name
        self.out_path, self.err_path = base + ".out", base + ".err"
        self.out, self.err = open(self.out_path, "wb"), open(self.err_path, "wb")
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        sanitizer_env(full_env, name)
        self.argv = ([exe] if exe else [BIN]) + list(args)
        self.p = subprocess.Popen(self.argv, stdout=self.out, stderr=self.err, env=full_env)
        self.checked = False
        on_exit(self._remove_files)  # LIFO: runs after the kill below
        on_exit(self.kill)

    def _remove_files(self):
        for f, path in ((self.out, self.out_path), (self.err, self.err_path)):
            f.close()
            try:
                os.unlink(path)
            except OSError:
                pass

    def stdout(self):
        self.out.flush()
        with open(self.out_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stderr(self):
        self.err.flush()
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def output(self):
        """stdout then stderr (the log), for searching and for failure detail."""
        return self.stdout() + self.stderr()

    def alive(self):
        return self.p.poll() is None

    def _exited(self, killed=False):
        if self.checked or self.p.poll() is None:
            return
        self.checked = True
        _problems.extend(stderr_problems(self.stderr(), "%s (pid %d, %s)" % (self.name, self.p.pid,
                                                                            " ".join(self.argv[1:3])), killed))

    def kill(self, sig=signal.SIGKILL):
        """Sends sig (default SIGKILL) and waits for the exit."""
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self._exited(killed=self.p.returncode == -signal.SIGKILL)

    def wait(self, timeout):
        """Waits for an exit the caller caused; returns the exit code."""
        code = self.p.wait(timeout)
        self._exited(killed=code == -signal.SIGKILL)
        return code

    def stop(self, timeout=30):
        """SIGTERM and wait: returns the exit code (asserts a clean exit is the caller's job)."""
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
                self._exited(killed=True)
                raise AssertionError("tickflow did not exit within %ds of SIGTERM\n%s" % (timeout, self.output()[-4000:]))
        self._exited()
        return self.p.returncode


def run(args, env=None, timeout=120):
    """Runs tickflow to completion; returns CompletedProcess (text). Its
    stderr is checked like a Proc's."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    sanitizer_env(full_env, "run-" + (args[0] if args else "none"))
    p = subprocess.run([BIN] + list(args), capture_output=True, text=True, env=full_env, timeout=timeout)
    _problems.extend(stderr_problems(p.stderr, "tickflow %s (exit %d)" % (" ".join(args[:1]), p.returncode)))
    return p


def http(method, url, body=None, headers=None, timeout=30):
    """Returns (status, headers dict lower-cased, body bytes)."""
    data = body
    if isinstance(body, (dict, list)):
        data = json.dumps(body).encode()
    elif isinstance(body, str):
        data = body.encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def http_json(method, url, body=None, headers=None, timeout=30):
    st, hd, data = http(method, url, body, headers, timeout)
    try:
        return st, json.loads(data) if data else None
    except ValueError:
        raise AssertionError("not JSON (status %d): %r" % (st, data[:500]))


class Checks:
    """Counts assertions; prints 'N passed, N failed' at the end and exits non-zero on failure."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, cond, what, detail=""):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL: %s %s" % (what, detail), flush=True)
        return cond

    def eq(self, got, want, what):
        return self.check(got == want, what, "got %r want %r" % (got, want))


def _charge_problems(c, where):
    """Fails c once per harness problem found since the last call."""
    found = _problems[:] + sanitizer_reports()
    del _problems[:]
    for msg in found:
        c.failed += 1
        print("FAIL: %s: %s" % (where, msg), flush=True)
    return len(found)


def main(tests):
    """Runs each test function(checks); an exception counts as a failure, and
    so do a test that made no assertion and any harness problem (non-JSON
    stderr, a sanitizer report) found while it ran."""
    c = Checks()
    for t in tests:
        t0 = time.monotonic()
        before = c.failed
        asserted = c.passed + c.failed
        try:
            t(c)
        except Exception:
            c.failed += 1
            print("FAIL: %s raised" % t.__name__, flush=True)
            traceback.print_exc()
        else:
            if c.passed + c.failed == asserted:
                c.failed += 1
                print("FAIL: %s made no assertion (a test that cannot fail is worse than none)" % t.__name__,
                      flush=True)
        _charge_problems(c, t.__name__)
        print("%s %s (%.1fs)" % ("ok  " if c.failed == before else "FAIL", t.__name__,
                                 time.monotonic() - t0), flush=True)
    _run_cleanups()  # stops what is still running: their stderr and sanitizer logs are checked too
    if _charge_problems(c, "at exit"):
        print("FAIL at exit", flush=True)
    shutil.rmtree(SAN_DIR, ignore_errors=True)
    print("%d passed, %d failed" % (c.passed, c.failed), flush=True)
    sys.exit(1 if c.failed else 0)


KAFKA_LOCAL = os.path.join(SRC, "scripts", "kafka-local")


class Kafka:
    """A throw-away single-node Kafka (scripts/kafka-local) in a temp dir on a
    free port: Kafka().brokers, .stop(), .start(), .consume(topic, ...)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="tf-kafka-")
        self.port = free_port()
        cport = free_port()
        self.env = dict(os.environ, KAFKA_DIR=self.dir, KAFKA_PORT=str(self.port),
                        KAFKA_CONTROLLER_PORT=str(cport), KAFKA_HEAP="384m")
        self.brokers = "127.0.0.1:%d" % self.port
        on_exit(self.destroy)
        self.start()

    def _ctl(self, cmd):
        p = subprocess.run([KAFKA_LOCAL, cmd], env=self.env, capture_output=True, text=True)
        if p.returncode != 0:
            raise AssertionError("kafka-local %s failed: %s" % (cmd, p.stderr[-2000:]))

    def start(self):
        self._ctl("start")

    def stop(self):
        self._ctl("stop")

    def destroy(self):
        try:
            self._ctl("stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def consume(self, topic, timeout=20):
        """Reads the whole topic from the beginning with kcat (an independent
        client); returns a list of dicts {partition, offset, key, headers, value}."""
        fmt = "%p\t%o\t%k\t%h\t%s\n"
        p = subprocess.run(["kcat", "-b", self.brokers, "-C", "-t", topic, "-o", "beginning", "-e", "-q",
                            "-f", fmt], capture_output=True, timeout=timeout)
        out = []
        for line in p.stdout.decode("utf-8", "replace").splitlines():
            parts = line.split("\t", 4)
            if len(parts) != 5:
                continue
            hdrs = {}
            for kv in parts[3].split(","):
                if "=" in kv:
                    k, v = kv.split("=", 1)
                    hdrs[k] = v
            out.append({"partition": int(parts[0]), "offset": int(parts[1]), "key": parts[2],
                        "headers": hdrs, "value": parts[4]})
        return out


class Server(Proc):
    """`tickflow serve` on a free loopback port, up once /health answers 200.
    .port, .base ("http://127.0.0.1:PORT"); extra args and env as for Proc."""

    def __init__(self, pg_url, args=(), env=None, name="serve", health_path="/health"):
        self.port = free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        Proc.__init__(self, ["serve", "--pg-url", pg_url, "--port", str(self.port), "--http.bind", "127.0.0.1"]
                      + list(args), env=env, name=name)
        try:
            wait_for(lambda: self.alive() and http("GET", self.base + health_path, timeout=5)[0] in (200, 426),
                     60, "tickflow serve on %s" % self.base)
        except AssertionError:
            print(self.output()[-3000:], flush=True)
            raise
