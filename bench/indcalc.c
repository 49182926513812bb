/*
 * indcalc.c - prints every indicator of process/indicators.h for a bar
 * series, so tests can compare the C engine with an oracle (TA-Lib in
 * tests/integration/test_indicators_talib.py).
 *
 *   indcalc [--sma N,N..] [--ema N,N..] [--rsi N] [--bb N --bbk K]
 *           [--macd F,S,G] [--atr N] [--stoch K,SK,SD] [--cci N] [--vol N]
 *           < bars.csv
 *
 * Input: one bar per line "open,high,low,close,volume" (no header). Output:
 * a header line, then one line per bar, %.17g, "nan" where undefined.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "process/indicators.h"

static int parse_list(const char *s, int *out, int max)
{
    int n = 0;
    while (*s && n < max) {
        char *end;
        out[n++] = (int)strtol(s, &end, 10);
        if (*end != ',') break;
        s = end + 1;
    }
    return n;
}

int main(int argc, char **argv)
{
    tf_ind_params p;
    tf_ind_params_default(&p);
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        int t[4];
        if (!strcmp(a, "--sma")) p.nsma = parse_list(v, p.sma_n, TF_IND_MAX_MA);
        else if (!strcmp(a, "--ema")) p.nema = parse_list(v, p.ema_n, TF_IND_MAX_MA);
        else if (!strcmp(a, "--rsi")) p.rsi_n = atoi(v);
        else if (!strcmp(a, "--bb")) p.bb_n = atoi(v);
        else if (!strcmp(a, "--bbk")) p.bb_k = atof(v);
        else if (!strcmp(a, "--atr")) p.atr_n = atoi(v);
        else if (!strcmp(a, "--cci")) p.cci_n = atoi(v);
        else if (!strcmp(a, "--vol")) p.vol_n = atoi(v);
        else if (!strcmp(a, "--macd") && parse_list(v, t, 3) == 3)
            p.macd_fast = t[0], p.macd_slow = t[1], p.macd_signal = t[2];
        else if (!strcmp(a, "--stoch") && parse_list(v, t, 3) == 3)
            p.stoch_k = t[0], p.stoch_slowk = t[1], p.stoch_slowd = t[2];
        else {
            fprintf(stderr, "indcalc: bad option %s %s\n", a, v);
            return 2;
        }
    }
    char err[256];
    tf_ind_state *s = tf_ind_new(&p, err, sizeof err);
    if (!s) {
        fprintf(stderr, "indcalc: %s\n", err);
        return 2;
    }
    for (int j = 0; j < p.nsma; j++) printf("sma%d,", p.sma_n[j]);
    for (int j = 0; j < p.nema; j++) printf("ema%d,", p.ema_n[j]);
    printf("rsi,bb_mid,bb_upper,bb_lower,bb_pctb,macd,macd_signal,macd_hist,atr,stoch_k,stoch_d,obv,cci,"
           "vol_mean\n");
    char line[512];
    while (fgets(line, sizeof line, stdin)) {
        tf_ind_bar b;
        if (sscanf(line, "%lf,%lf,%lf,%lf,%lf", &b.open, &b.high, &b.low, &b.close, &b.volume) != 5) continue;
        tf_ind_values o;
        tf_ind_update(s, &b, &o);
        for (int j = 0; j < p.nsma; j++) printf("%.17g,", o.sma[j]);
        for (int j = 0; j < p.nema; j++) printf("%.17g,", o.ema[j]);
        double v[] = {o.rsi,       o.bb_mid,      o.bb_upper,  o.bb_lower, o.bb_pctb,
                      o.macd,      o.macd_signal, o.macd_hist, o.atr,      o.stoch_k,
                      o.stoch_d,   o.obv,         o.cci,       o.vol_mean};
        for (size_t j = 0; j < sizeof v / sizeof *v; j++)
            printf("%.17g%c", v[j], j + 1 < sizeof v / sizeof *v ? ',' : '\n');
    }
    tf_ind_free(s);
    return 0;
}
