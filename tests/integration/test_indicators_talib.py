"""Every indicator of src/process/indicators.c against TA-Lib (the PyPI
package ships TA-Lib's C library; test-only oracle from scripts/pyenv), to
1e-9 relative from TA-Lib's first defined value on, and NaN exactly where
TA-Lib has none: on GOOG daily (backtesting's GOOG.csv, a real series with
weekend and holiday gaps) and on random series, for every parameter set
listed in PARAMS. The C side is build/indcalc (bench/indcalc.c), which feeds
the series bar by bar through the streaming code.
"""
import csv
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("TICKFLOW_SRC") or os.path.abspath(os.path.join(HERE, "..", ".."))

# Re-run under the test-only venv (numpy + TA-Lib + backtesting).
if os.environ.get("TF_IN_PYENV") != "1":
    py = subprocess.run([os.path.join(SRC, "scripts", "pyenv")], capture_output=True, text=True, check=True).stdout.strip()
    os.environ["TF_IN_PYENV"] = "1"
    os.execv(py, [py] + sys.argv)

import numpy as np  # noqa: E402
import talib  # noqa: E402
import backtesting  # noqa: E402

sys.path.insert(0, HERE)
import tfharness as h  # noqa: E402

BUILD = os.environ.get("TICKFLOW_BUILD") or os.path.join(SRC, "build")
INDCALC = os.path.join(BUILD, "indcalc")
REL = 1e-9
ZERO = 1e-3
WORST = {}

# (indcalc flags, description); every listed parameter is checked.
PARAMS = [
    (dict(sma=[20, 60], ema=[12, 26], rsi=14, bb=20, bbk=2, macd=(12, 26, 9), atr=14, stoch=(14, 3, 3), cci=20),
     "defaults"),
    (dict(sma=[1, 5, 50, 200], ema=[1, 9, 50, 200], rsi=7, bb=10, bbk=1.5, macd=(5, 35, 5), atr=5,
          stoch=(5, 3, 4), cci=14), "other periods"),
    (dict(sma=[2, 3], ema=[2, 3], rsi=2, bb=2, bbk=3, macd=(2, 3, 1), atr=2, stoch=(1, 1, 1), cci=2),
     "minimal periods"),
]


def load_goog():
    path = os.path.join(os.path.dirname(backtesting.__file__), "test", "GOOG.csv")
    rows = list(csv.DictReader(open(path)))
    cols = [np.array([float(r[k]) for r in rows]) for k in ("Open", "High", "Low", "Close", "Volume")]
    return cols


def random_series(seed, n):
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    opn = close * np.exp(rng.normal(0, 0.005, n))
    high = np.maximum(opn, close) * np.exp(np.abs(rng.normal(0, 0.01, n)))
    low = np.minimum(opn, close) * np.exp(-np.abs(rng.normal(0, 0.01, n)))
    vol = np.floor(rng.lognormal(10, 1, n))
    # flat stretches and repeated closes: RSI/Stoch/CCI/OBV edge cases
    if n > 120:
        close[100:110] = close[100]
        high[100:110] = close[100]
        low[100:110] = close[100]
    return [opn, high, low, close, vol]


def indcalc(series, prm):
    args = [INDCALC]
    for k, v in prm.items():
        args += ["--" + k, ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)]
    text = "\n".join(",".join(repr(float(x)) for x in row) for row in zip(*series)) + "\n"
    out = subprocess.run(args, input=text, capture_output=True, text=True, check=True).stdout.splitlines()
    head = out[0].split(",")
    vals = np.array([[float(x) for x in line.split(",")] for line in out[1:]])
    return {name: vals[:, i] for i, name in enumerate(head)}


def oracle(series, prm):
    o, hi, lo, c, v = series
    want = {}
    for n in prm["sma"]:
        want["sma%d" % n] = talib.SMA(c, timeperiod=n)
    for n in prm["ema"]:
        want["ema%d" % n] = talib.EMA(c, timeperiod=n)
    want["rsi"] = talib.RSI(c, timeperiod=prm["rsi"])
    up, mid, low = talib.BBANDS(c, timeperiod=prm["bb"], nbdevup=prm["bbk"], nbdevdn=prm["bbk"], matype=0)
    want["bb_upper"], want["bb_mid"], want["bb_lower"] = up, mid, low
    with np.errstate(divide="ignore", invalid="ignore"):
        want["bb_pctb"] = np.where(up > low, (c - low) / (up - low), np.nan)
    f, s, g = prm["macd"]
    want["macd"], want["macd_signal"], want["macd_hist"] = talib.MACD(c, fastperiod=f, slowperiod=s, signalperiod=g)
    want["atr"] = talib.ATR(hi, lo, c, timeperiod=prm["atr"])
    k, sk, sd = prm["stoch"]
    want["stoch_k"], want["stoch_d"] = talib.STOCH(hi, lo, c, fastk_period=k, slowk_period=sk, slowk_matype=0,
                                                   slowd_period=sd, slowd_matype=0)
    want["obv"] = talib.OBV(c, v)
    want["cci"] = talib.CCI(hi, lo, c, timeperiod=prm["cci"])
    return want


def compare(c, got, want, label):
    for name, w in want.items():
        g = got[name]
        nan_w, nan_g = np.isnan(w), np.isnan(g)
        c.check(np.array_equal(nan_w, nan_g), "%s %s: NaN exactly where TA-Lib has none" % (label, name),
                "first defined: ours %s, TA-Lib %s" % (np.argmax(~nan_g), np.argmax(~nan_w)))
        both = ~nan_w & ~nan_g
        if not both.any():
            c.check(False, "%s %s: some defined values" % (label, name))
            continue
        err = np.abs(g[both] - w[both])
        # relative to the value; where the true value is 0 (a flat stretch
        # gives Stochastic 0 +- 1e-14 from both running sums) relative error
        # is meaningless, so rounding noise below ZERO x the indicator's
        # range counts as equal
        scale = np.maximum(np.maximum(np.abs(g[both]), np.abs(w[both])), ZERO * np.max(np.abs(w[both])))
        bad = err > REL * scale
        worst = np.max(err / np.where(scale > 0, scale, 1))
        WORST[name] = max(WORST.get(name, 0.0), worst)
        c.check(not bad.any(), "%s %s: equal to TA-Lib to %g relative (%d values, worst %.2g)"
                % (label, name, REL, both.sum(), worst),
                "first bad at %s: ours %r TA-Lib %r" % (np.flatnonzero(both)[np.argmax(bad)] if bad.any() else -1,
                                                         g[both][np.argmax(bad)], w[both][np.argmax(bad)]))


def test_goog(c):
    series = load_goog()
    c.check(len(series[0]) > 2000, "GOOG has a long history", len(series[0]))
    for prm, what in PARAMS:
        compare(c, indcalc(series, prm), oracle(series, prm), "GOOG " + what)


def test_random(c):
    for seed in (1, 2, 3):
        series = random_series(seed, 3000)
        for prm, what in PARAMS:
            compare(c, indcalc(series, prm), oracle(series, prm), "random%d %s" % (seed, what))


def test_short_series(c):
    # fewer bars than the lookbacks: everything NaN, as TA-Lib
    series = [x[:10] for x in random_series(9, 10)]
    prm = PARAMS[0][0]
    compare_nan = indcalc(series, prm)
    for name in ("sma60", "rsi", "macd", "stoch_k", "cci"):
        c.check(np.isnan(compare_nan[name]).all(), "10 bars: %s undefined" % name)


if __name__ == "__main__":
    def report(c):
        print("worst relative error per indicator: " + ", ".join("%s %.1e" % kv for kv in sorted(WORST.items())))
        c.check(WORST, "errors were measured against TA-Lib")  # the harness fails a test with no check

    h.main([test_goog, test_random, test_short_series, report])
