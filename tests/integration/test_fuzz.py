"""Runs every libFuzzer target (tests/fuzz/fuzz_*.c, built by `make fuzz` into
build-fuzz/) briefly: a crash, sanitizer report or leak fails the test.
TF_FUZZ_SECONDS (default 15) bounds each run."""
import glob
import os
import subprocess
import tempfile

import tfharness as h

SECONDS = int(os.environ.get("TF_FUZZ_SECONDS", "15"))


def targets():
    return sorted(os.path.basename(p)[:-2] for p in glob.glob(os.path.join(h.SRC, "tests", "fuzz", "fuzz_*.c")))


def make_test(name):
    def t(c):
        exe = os.path.join(h.SRC, "build-fuzz", name)
        if not c.check(os.access(exe, os.X_OK), "%s built" % name, "(run `make fuzz`)"):
            return
        corpus = tempfile.mkdtemp(prefix="tf-corpus-")
        seeds = os.path.join(h.SRC, "tests", "fuzz", "corpus", name)
        dirs = [corpus] + ([seeds] if os.path.isdir(seeds) else [])
        p = subprocess.run([exe, "-max_total_time=%d" % SECONDS, "-max_len=4096", "-rss_limit_mb=1024",
                            "-print_final_stats=1"] + dirs, capture_output=True, text=True, timeout=SECONDS + 120)
        tail = (p.stderr or "")[-3000:]
        c.check(p.returncode == 0, "%s ran clean" % name, tail)
        c.check("Done" in tail or "stat::number_of_executed_units" in tail, "%s executed inputs" % name, tail[-500:])
    t.__name__ = name
    return t


if __name__ == "__main__":
    h.main([make_test(n) for n in targets()])
