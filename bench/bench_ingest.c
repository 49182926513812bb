/*
 * bench_ingest.c - `make bench-ingest` driver (bench/bench-ingest.sh starts
 * and stops the PostgreSQL it runs against and creates two databases with
 * the same migrated schema).
 *
 * Generates N trades once (market generator, fixed seed, spread over two
 * days whose partitions exist before timing starts) and writes them as
 * binary COPY files, one per segment. Then, segment by segment, alternating
 * which side goes first:
 *   - the limit: `psql \copy stock_trades (...) FROM file (FORMAT binary)`
 *     into database A, one COPY per segment, ids from the column default;
 *   - ours: tf_copy_write() into database B in batches of `batch` rows (one
 *     transaction each, ids reserved from the same kind of sequence), every
 *     batch timed.
 * Interleaving segments gives both sides the same machine load (this box is
 * shared), and both tables grow identically. Each side's rate is rows over
 * the sum of its segment times (psql's process start-up is counted: it is
 * part of loading with psql, about 1% here).
 *
 * usage: bench_ingest OURS_URL PSQL_URL PSQL_BIN FILE_PREFIX [rows] [batch] [segments]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "ingest/gen.h"
#include "store/copy.h"
#include "store/pg.h"
#include "store/schema.h"

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *sorted, size_t n, double p)
{
    size_t i = (size_t)ceil(p * (double)n);
    if (i < 1)
        i = 1;
    return sorted[i - 1];
}

static PGconn *prepare(const char *url, int64_t from, int64_t to)
{
    tf_err e = {0};
    PGconn *c = tf_pg_connect(url, &e);
    if (!c || tf_partitions_ensure(c, from, to, &e) != 0 ||
        tf_pg_exec(c, "CHECKPOINT", &e) != 0) {
        fprintf(stderr, "bench_ingest: %s: %s\n", url, e.msg);
        if (c)
            PQfinish(c);
        return NULL;
    }
    return c;
}

static int64_t count_rows(PGconn *c)
{
    PGresult *r = PQexec(c, "SELECT count(*) FROM stock_trades");
    int64_t n = PQresultStatus(r) == PGRES_TUPLES_OK ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : -1;
    PQclear(r);
    return n;
}

int main(int argc, char **argv)
{
    tf_err e = {0};
    if (argc < 5) {
        fprintf(stderr, "usage: bench_ingest OURS_URL PSQL_URL PSQL_BIN FILE_PREFIX [rows] [batch] [segments]\n");
        return 2;
    }
    const char *ours_url = argv[1], *psql_url = argv[2], *psql = argv[3], *prefix = argv[4];
    size_t rows = argc > 5 ? strtoull(argv[5], NULL, 10) : 2000000;
    size_t batch = argc > 6 ? strtoull(argv[6], NULL, 10) : 10000;
    size_t nseg = argc > 7 ? strtoull(argv[7], NULL, 10) : 8;
    if (rows == 0 || batch == 0 || nseg == 0 || nseg > rows)
        return 2;
    char err[1024];

    /* the rows: two days of history ending at the start of today (UTC) */
    tf_gen_opts go;
    memset(&go, 0, sizeof go);
    go.seed = 42;
    tf_gen *g = tf_gen_new(&go, err, sizeof err);
    tf_trade *t = malloc(rows * sizeof *t);
    if (!g || !t) {
        fprintf(stderr, "bench_ingest: %s\n", g ? "out of memory" : err);
        return 1;
    }
    int64_t day0 = (tf_unix_day(tf_now_us()) - 2) * TF_US_PER_DAY;
    int64_t span = 2 * TF_US_PER_DAY;
    for (size_t i = 0; i < rows; i += batch) {
        size_t n = rows - i < batch ? rows - i : batch;
        int64_t s = day0 + (int64_t)((double)span * (double)i / (double)rows);
        int64_t e = day0 + (int64_t)((double)span * (double)(i + n) / (double)rows);
        tf_gen_fill(g, t + i, n, s, e, NULL, 0, NULL);
    }
    tf_gen_free(g);

    /* segment boundaries on batch multiples; one binary COPY file each */
    size_t nbatches = (rows + batch - 1) / batch;
    size_t *seg = calloc(nseg + 1, sizeof *seg);
    for (size_t s = 0; s <= nseg; s++) {
        seg[s] = (nbatches * s / nseg) * batch;
        if (seg[s] > rows)
            seg[s] = rows;
    }
    size_t cap = batch * TF_COPY_ROW_MAX + 64;
    uint8_t *buf = malloc(cap);
    for (size_t s = 0; s < nseg; s++) {
        char path[1024];
        snprintf(path, sizeof path, "%s.%zu", prefix, s);
        FILE *f = fopen(path, "wb");
        if (!f) {
            perror(path);
            return 1;
        }
        for (size_t i = seg[s]; i < seg[s + 1]; i += batch) {
            size_t n = seg[s + 1] - i < batch ? seg[s + 1] - i : batch;
            size_t len = tf_copy_encode(t + i, n, 0, i == seg[s], i + n == seg[s + 1], buf, cap);
            if (len == 0 || fwrite(buf, 1, len, f) != len) {
                fprintf(stderr, "bench_ingest: cannot write %s\n", path);
                return 1;
            }
        }
        fclose(f);
    }
    free(buf);

    PGconn *cp = prepare(psql_url, day0, day0 + span);
    PGconn *co = prepare(ours_url, day0, day0 + span);
    tf_copy *w = co ? tf_copy_new(ours_url, NULL, &e) : NULL;
    if (!cp || !co || !w) {
        if (co && !w)
            fprintf(stderr, "bench_ingest: %s\n", e.msg);
        return 1;
    }
    double *lat = malloc(nbatches * sizeof *lat);
    size_t nlat = 0;
    double t_psql = 0, t_ours = 0;
    for (size_t s = 0; s < nseg; s++) {
        for (int side = 0; side < 2; side++) {
            int do_psql = (side == 0) == (s % 2 == 0);
            int64_t t0 = tf_mono_us();
            if (do_psql) {
                char cmd[2048];
                snprintf(cmd, sizeof cmd,
                         "'%s' -X -q -v ON_ERROR_STOP=1 -d '%s' -c \"\\copy stock_trades (ticker,"
                         " market_code, trade_type, price, quantity, event_time) FROM '%s.%zu'"
                         " (FORMAT binary)\"",
                         psql, psql_url, prefix, s);
                if (system(cmd) != 0) {
                    fprintf(stderr, "bench_ingest: psql \\copy failed: %s\n", cmd);
                    return 1;
                }
                t_psql += (double)(tf_mono_us() - t0) / 1e6;
            } else {
                for (size_t i = seg[s]; i < seg[s + 1]; i += batch) {
                    size_t n = seg[s + 1] - i < batch ? seg[s + 1] - i : batch;
                    int64_t b0 = tf_mono_us(), first, last;
                    int rc = tf_copy_write(w, t + i, n, NULL, NULL, &first, &last, &e);
                    if (rc) {
                        fprintf(stderr, "bench_ingest: batch at row %zu failed (%s): %s\n", i,
                                tf_pg_strerror(rc), e.msg);
                        return 1;
                    }
                    lat[nlat++] = (double)(tf_mono_us() - b0) / 1000.0;
                    if (getenv("BENCH_DUMP"))
                        fprintf(stderr, "batch %zu %.1f\n", nlat, lat[nlat - 1]);
                }
                t_ours += (double)(tf_mono_us() - t0) / 1e6;
            }
        }
    }
    int64_t np = count_rows(cp), no = count_rows(co);
    if (np != (int64_t)rows || no != (int64_t)rows) {
        fprintf(stderr, "bench_ingest: tables hold %lld (psql) and %lld (ours) rows, expected %zu\n",
                (long long)np, (long long)no, rows);
        return 1;
    }
    double rp = (double)rows / t_psql, ro = (double)rows / t_ours;
    qsort(lat, nlat, sizeof *lat, cmp_dbl);
    printf("psql binary \\copy: %zu rows in %.2f s = %.0f rows/s (%zu COPY commands)\n", rows, t_psql,
           rp, nseg);
    printf("tickflow writer:   %zu rows in %.2f s = %.0f rows/s (%zu transactions of %zu rows)\n",
           rows, t_ours, ro, nlat, batch);
    printf("batch latency over %zu batches: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", nlat,
           pct(lat, nlat, 0.50), pct(lat, nlat, 0.99), lat[nlat - 1]);
    printf("ingest: %.0f rows/s, ratio to psql binary copy %.2f, 10k batch p99 %.1f ms\n", ro,
           ro / rp, pct(lat, nlat, 0.99));
    tf_copy_free(w);
    PQfinish(cp);
    PQfinish(co);
    for (size_t s = 0; s < nseg; s++) {
        char path[1024];
        snprintf(path, sizeof path, "%s.%zu", prefix, s);
        remove(path);
    }
    free(seg);
    free(lat);
    free(t);
    return 0;
}
