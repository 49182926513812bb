/* fuzz_import.c - libFuzzer target for the import parsers (ingest/import.c):
 * CSV records, decimals, epoch and ISO times, trade rows. Any bytes must
 * parse without a crash or an out-of-bounds read, and with an oracle: the
 * records found in one pass over the whole input equal those found when
 * the input arrives in two pieces (the first without eof), as the importer
 * reads it through its window. The first byte picks the split point and
 * the separator. */
/* Compiled in for the fuzzer's coverage instrumentation (tfcore's copy is
 * then not linked). */
#include "ingest/import.c"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Appends every record of s[0..len) to out as "nf:len:bytes..."; when
 * split < len the parser first sees only s[0..split) without eof. */
static size_t records(const char *s, size_t len, size_t split, char sep, char *out, size_t cap)
{
    tf_csv_field f[TF_CSV_FIELDS_MAX];
    char *scratch = malloc(len + 1);
    size_t off = 0, o = 0, avail = split < len ? split : len;
    int eof = avail == len;
    for (;;) {
        tf_csv_rec rec;
        int rc = tf_csv_next(s + off, avail - off, eof, sep, f, TF_CSV_FIELDS_MAX, scratch, &rec);
        if (rc == TF_CSV_MORE) {
            if (eof)
                break;
            avail = len; /* the rest arrives */
            eof = 1;
            continue;
        }
        if (rec.consumed == 0 || off + rec.consumed > avail || rec.text_len > rec.consumed)
            abort(); /* no progress or past the input: a parser bug */
        if (rc == TF_CSV_RECORD) {
            for (int i = 0; i < rec.nf && o + f[i].len + 16 < cap; i++) {
                o += (size_t)snprintf(out + o, cap - o, "%zu:", f[i].len);
                memcpy(out + o, f[i].p, f[i].len);
                o += f[i].len;
                /* the value parsers on every field */
                int64_t v;
                char why[200];
                tf_imp_decimal(f[i].p, f[i].len, 4, &v);
                tf_imp_epoch(f[i].p, f[i].len, TF_TU_NS, &v);
                tf_imp_time(f[i].p, f[i].len, TF_TU_MS, &v, why, sizeof why);
                tf_imp_trade_role(f[i].p, f[i].len);
                if (tf_imp_num_valid(f[i].p, f[i].len))
                    tf_imp_num_cmp(f[i].p, f[i].len, "100.5", 5);
            }
            if (rec.nf >= TF_COL_N) {
                tf_imp_vals vals;
                for (int k = 0; k < TF_COL_N; k++) {
                    vals.p[k] = f[k].p;
                    vals.len[k] = f[k].len;
                }
                tf_imp_defaults d = {.ticker = "A", .market = "NYSE", .time_unit = TF_TU_US,
                                     .max_event_us = INT64_MAX};
                tf_trade t;
                int bad;
                char why[256];
                tf_imp_trade(&vals, &d, &t, &bad, why, sizeof why);
            }
            if (o + 2 < cap)
                out[o++] = '\n';
        } else if (rc == TF_CSV_BAD && o + 2 < cap) {
            out[o++] = '!';
        }
        off += rec.consumed;
    }
    free(scratch);
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char sep = data[0] & 0x80 ? '|' : ',';
    size_t split = data[0] & 0x7f;
    const char *s = (const char *)data + 1;
    size = size - 1;
    size_t cap = 8 * size + 64;
    char *a = malloc(cap), *b = malloc(cap);
    size_t na = records(s, size, size, sep, a, cap);
    size_t nb = records(s, size, split % (size + 1), sep, b, cap);
    if (na != nb || memcmp(a, b, na) != 0)
        abort(); /* the records depend on how the input was cut */
    free(a);
    free(b);
    return 0;
}
