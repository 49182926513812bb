/*
 * bench_signals.c - the C side of bench/bench-signals.sh.
 *
 *   bench_signals stream --tickers N --bars B [--seed S]
 *       N tickers of B one-minute bars each (random walks made up front),
 *       fed interleaved (bar t of every ticker, then bar t+1) through
 *       tf_sig_update: every indicator and every rule. Prints
 *       "stream <updates> <seconds> <signals>".
 *   bench_signals batch --file F --tickers N --bars B --sample-every K --out G
 *       F holds N tickers x B bars x (open, high, low, close, volume)
 *       float64, ticker-major, column-major inside a ticker. Loads it, then
 *       times tf_ind_series over every ticker (the one engine, batch mode).
 *       Writes the 16 indicator columns of every K-th ticker to G (float64,
 *       same layout) for the parity check. Prints "batch <bars> <seconds>".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "process/signals.h"

static double rnd(uint64_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return (double)(*s >> 11) / 9007199254740992.0;
}

static double gauss(uint64_t *s)
{
    double u = rnd(s), v = rnd(s);
    return sqrt(-2 * log(u + 1e-300)) * cos(2 * M_PI * v);
}

static int stream(int nt, int nb, uint64_t seed)
{
    tf_ind_bar *bars = malloc((size_t)nt * nb * sizeof *bars);
    tf_sig_state **st = calloc((size_t)nt, sizeof *st);
    if (!bars || !st) return 1;
    tf_sig_rules r;
    tf_sig_rules_default(&r);
    char err[256];
    for (int k = 0; k < nt; k++) {
        char tk[16];
        snprintf(tk, sizeof tk, "T%04d", k);
        st[k] = tf_sig_state_new(&r, tk, "NASDAQ", "1m", err, sizeof err);
        if (!st[k]) return 1;
        double p = 100;
        for (int i = 0; i < nb; i++) {
            tf_ind_bar *b = &bars[(size_t)i * nt + k];
            b->open = p;
            p *= exp(0.002 * gauss(&seed));
            b->close = p;
            b->high = fmax(b->open, p) * (1 + 0.001 * fabs(gauss(&seed)));
            b->low = fmin(b->open, p) * (1 - 0.001 * fabs(gauss(&seed)));
            b->volume = floor(1000 * exp(gauss(&seed)));
        }
    }
    long long sigs = 0;
    int64_t t0 = tf_mono_us();
    for (int i = 0; i < nb; i++) {
        for (int k = 0; k < nt; k++) {
            tf_signal out[TF_SIG_NRULES];
            sigs += tf_sig_update(st[k], &bars[(size_t)i * nt + k], 60000LL * i, 60000LL * (i + 1), out, NULL, NULL);
        }
    }
    double secs = (double)(tf_mono_us() - t0) / 1e6;
    printf("stream %lld %.6f %lld\n", (long long)nt * nb, secs, sigs);
    for (int k = 0; k < nt; k++) tf_sig_state_free(st[k]);
    free(st);
    free(bars);
    return 0;
}

static int batch(const char *file, int nt, int nb, int every, const char *outf)
{
    size_t per = (size_t)nb * 5;
    double *all = malloc((size_t)nt * per * sizeof *all);
    tf_ind_bar *bars = malloc((size_t)nb * sizeof *bars);
    tf_ind_values *vals = malloc((size_t)nb * sizeof *vals);
    double *col = malloc((size_t)nb * 16 * sizeof *col);
    FILE *f = fopen(file, "rb");
    FILE *o = fopen(outf, "wb");
    if (!all || !bars || !vals || !col || !f || !o || fread(all, sizeof *all, (size_t)nt * per, f) != (size_t)nt * per) {
        fprintf(stderr, "bench_signals: cannot load %s\n", file);
        return 1;
    }
    fclose(f);
    tf_ind_params p;
    tf_ind_params_default(&p);
    char err[256];
    double secs = 0;
    for (int k = 0; k < nt; k++) {
        const double *x = all + (size_t)k * per;
        /* the engine takes bars as structs; like the TA-Lib side, which
         * times its calls on arrays it has just copied out, the input is
         * laid out (and in cache) before the clock starts */
        for (int i = 0; i < nb; i++)
            bars[i] = (tf_ind_bar){x[i], x[nb + i], x[2 * nb + i], x[3 * nb + i], x[4 * nb + i]};
        int64_t t0 = tf_mono_us();
        if (tf_ind_series(&p, bars, (size_t)nb, vals, err, sizeof err)) {
            fprintf(stderr, "bench_signals: %s\n", err);
            return 1;
        }
        secs += (double)(tf_mono_us() - t0) / 1e6;
        if (k % every) continue;
        for (int i = 0; i < nb; i++) {
            const tf_ind_values *v = &vals[i];
            double c[16] = {v->sma[0], v->sma[1], v->ema[0], v->ema[1], v->rsi, v->bb_upper, v->bb_mid, v->bb_lower,
                            v->macd, v->macd_signal, v->macd_hist, v->atr, v->stoch_k, v->stoch_d, v->obv, v->cci};
            for (int j = 0; j < 16; j++) col[(size_t)j * nb + i] = c[j];
        }
        fwrite(col, sizeof *col, (size_t)nb * 16, o);
    }
    fclose(o);
    printf("batch %lld %.6f\n", (long long)nt * nb, secs);
    free(all), free(bars), free(vals), free(col);
    return 0;
}

int main(int argc, char **argv)
{
    int nt = 5000, nb = 200, every = 500;
    uint64_t seed = 42;
    const char *file = NULL, *out = NULL;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--tickers")) nt = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--bars")) nb = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seed")) seed = strtoull(argv[i + 1], NULL, 10) | 1;
        else if (!strcmp(argv[i], "--file")) file = argv[i + 1];
        else if (!strcmp(argv[i], "--out")) out = argv[i + 1];
        else if (!strcmp(argv[i], "--sample-every")) every = atoi(argv[i + 1]);
    }
    if (argc >= 2 && !strcmp(argv[1], "stream")) return stream(nt, nb, seed);
    if (argc >= 2 && !strcmp(argv[1], "batch") && file && out && every > 0) return batch(file, nt, nb, every, out);
    fprintf(stderr, "usage: bench_signals stream --tickers N --bars B | batch --file F --tickers N --bars B"
                    " --sample-every K --out G\n");
    return 2;
}
