"""Every subcommand answers --help with its usage on stdout and exit 0
(issue 10, item 11: each failed with "unknown option" before), and a usage
error is one JSON error line on stderr, printed once."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import tfharness as h  # noqa: E402

COMMANDS = ["run", "migrate", "generate", "cdc", "process", "serve", "config", "signals", "scheduler", "job",
            "import", "compress"]


def test_help(c):
    for cmd in COMMANDS:
        p = h.run([cmd, "--help"], timeout=30)
        c.eq(p.returncode, 0, cmd + " --help exits 0 (" + p.stderr[-200:] + ")")
        c.check(p.stdout.startswith("usage: tickflow " + cmd), cmd + " --help prints its usage", p.stdout[:200])
        c.eq(p.stderr, "", cmd + " --help writes nothing on stderr")


def test_usage_error_once(c):
    p = h.run(["migrate", "unexpected-positional"], timeout=30)
    c.eq(p.returncode, 2, "an unexpected argument exits 2")
    lines = p.stderr.splitlines()
    c.eq(len(lines), 1, "reported once: " + p.stderr)
    j = json.loads(lines[0]) if lines else {}
    c.eq((j.get("level"), j.get("argument")), ("error", "unexpected-positional"), "as one JSON error line")


if __name__ == "__main__":
    h.main([test_help, test_usage_error_once])
