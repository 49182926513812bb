"""Shared harness for tickflow integration tests (Python 3 stdlib only).

Real components only: a throw-away PostgreSQL cluster per test file (started
with scripts/pg-local in a temp dir on a free port), the real tickflow binary
(TICKFLOW_BIN, the sanitizer build under `make test`), real sockets.
Everything started here is stopped at exit, also when a test fails or the
process gets SIGTERM/SIGINT.
"""
import atexit
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


def _on_signal(signum, _frame):
    _run_cleanups()
    os._exit(128 + signum)


signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


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
    """A tickflow subprocess with stderr captured to a file; killed at exit."""

    def __init__(self, args, env=None, name="tickflow"):
        self.log_path = tempfile.mktemp(prefix="tf-%s-" % name, suffix=".log")
        self.log = open(self.log_path, "wb")
        full_env = dict(os.environ)
        full_env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        if env:
            full_env.update(env)
        self.p = subprocess.Popen([BIN] + list(args), stdout=self.log, stderr=subprocess.STDOUT, env=full_env)
        on_exit(self.kill)

    def output(self):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def alive(self):
        return self.p.poll() is None

    def kill(self, sig=signal.SIGKILL):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()

    def stop(self, timeout=30):
        """SIGTERM and wait: returns the exit code (asserts a clean exit is the caller's job)."""
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
                raise AssertionError("tickflow did not exit within %ds of SIGTERM\n%s" % (timeout, self.output()[-4000:]))
        return self.p.returncode


def run(args, env=None, timeout=120):
    """Runs tickflow to completion; returns CompletedProcess (text)."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run([BIN] + list(args), capture_output=True, text=True, env=full_env, timeout=timeout)


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


def main(tests):
    """Runs each test function(checks); an exception counts as a failure."""
    c = Checks()
    for t in tests:
        t0 = time.monotonic()
        before = c.failed
        try:
            t(c)
        except Exception:
            c.failed += 1
            print("FAIL: %s raised" % t.__name__, flush=True)
            traceback.print_exc()
        print("%s %s (%.1fs)" % ("ok  " if c.failed == before else "FAIL", t.__name__,
                                 time.monotonic() - t0), flush=True)
    print("%d passed, %d failed" % (c.passed, c.failed), flush=True)
    _run_cleanups()
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
