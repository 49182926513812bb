/*
 * import_symbols.c - `tickflow import symbols FILE...`: the symbol universe.
 *
 * Two layouts, told apart by the header:
 * - NASDAQ Trader's symbol directory (pipe-separated, a header row and a
 *   "File Creation Time: mmddyyyyhh:mm|||..." footer row):
 *   nasdaqlisted.txt  Symbol|Security Name|Market Category|Test Issue|...
 *                     -> market NASDAQ
 *   otherlisted.txt   ACT Symbol|Security Name|Exchange|CQS Symbol|ETF|
 *                     Round Lot Size|Test Issue|NASDAQ Symbol
 *                     -> market by Exchange: N NYSE, A NYSEAMERICAN,
 *                        P NYSEARCA, Z BATS, V IEX
 *   Test Issue = Y sets test_issue. A missing footer is reported (the file
 *   may be cut short) but does not fail the import.
 * - CSV with a header: symbol (or ticker), name, market (or exchange, else
 *   --market), and optionally market_cap and sector.
 *
 * Rows are upserted by (symbol, market) in one transaction per file (staged
 * by COPY); a later row of the same symbol wins. market_cap and sector are
 * kept when the new file has none.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "common/util.h"
#include "ingest/import_run.h"
#include "ingest/import_src.h"
#include "store/pg.h"
#include "store/schema.h"

enum { S_SYMBOL, S_NAME, S_MARKET, S_CAP, S_SECTOR, S_TEST, S_EXCHANGE, S_N };

typedef struct syms {
    const tf_import_opts *o;
    tf_import_result *res;
    PGconn *conn;
    tf_imp_rejects *rej;
    const char *name;
    int header_done, ncols, nasdaq, footer;
    int col[S_N];
    tf_sbuf out;
    int64_t rows;
} syms;

static int bad_sym(syms *s, int64_t line, const char *column, const char *why, const char *text, size_t tl)
{
    char where[160];
    tf_imp_where(where, sizeof where, s->name, line, column);
    if (!s->o->skip) {
        snprintf(s->res->error, sizeof s->res->error,
                 "%s: %s; aborted (--on-error abort): nothing of %s was written", where, why, s->name);
        s->res->code = 1;
        return 1;
    }
    return tf_imp_skip(s->res, s->rej, 10, s->name, line, column, why, text, tl) ? 1 : 0;
}

static int eq(const char *p, size_t l, const char *name)
{
    tf_imp_trim(&p, &l);
    return strlen(name) == l && strncasecmp(p, name, l) == 0;
}

static int header(syms *s, const tf_csv_field *f, int nf, int64_t line)
{
    for (int k = 0; k < S_N; k++)
        s->col[k] = -1;
    s->ncols = nf;
    for (int i = 0; i < nf; i++) {
        const char *p = f[i].p;
        size_t l = f[i].len;
        int role = -1;
        if (eq(p, l, "symbol") || eq(p, l, "act symbol") || eq(p, l, "ticker"))
            role = S_SYMBOL;
        else if (eq(p, l, "name") || eq(p, l, "security name"))
            role = S_NAME;
        else if (eq(p, l, "market") || eq(p, l, "market_code"))
            role = S_MARKET;
        else if (eq(p, l, "exchange"))
            role = S_EXCHANGE;
        else if (eq(p, l, "market_cap") || eq(p, l, "market cap"))
            role = S_CAP;
        else if (eq(p, l, "sector"))
            role = S_SECTOR;
        else if (eq(p, l, "test issue"))
            role = S_TEST;
        if (role >= 0 && s->col[role] < 0)
            s->col[role] = i;
    }
    s->nasdaq = s->col[S_TEST] >= 0; /* both directory files have Test Issue */
    if (s->nasdaq && s->col[S_EXCHANGE] < 0 && eq(f[0].p, f[0].len, "symbol"))
        s->col[S_MARKET] = -1; /* nasdaqlisted: all NASDAQ */
    const char *missing = s->col[S_SYMBOL] < 0 ? "symbol" : s->col[S_NAME] < 0 ? "name" : NULL;
    if (!missing && !s->nasdaq && s->col[S_MARKET] < 0 && s->col[S_EXCHANGE] < 0 && !s->o->defaults.market[0])
        missing = "market (or --market)";
    if (missing) {
        snprintf(s->res->error, sizeof s->res->error,
                 "%s:%lld: no %s column (want a NASDAQ Trader directory file or CSV"
                 " symbol,name,market[,market_cap,sector])",
                 s->name, (long long)line, missing);
        s->res->code = 2;
        return 1;
    }
    s->header_done = 1;
    return 0;
}

static const char *exchange_market(const char *p, size_t l)
{
    tf_imp_trim(&p, &l);
    if (l != 1)
        return NULL;
    switch (*p) {
    case 'N': return "NYSE";
    case 'A': return "NYSEAMERICAN";
    case 'P': return "NYSEARCA";
    case 'Z': return "BATS";
    case 'V': return "IEX";
    }
    return NULL;
}

static int on_record(void *arg, const tf_csv_field *f, int nf, int64_t line, const char *text, size_t tl,
                     const char *bad)
{
    syms *s = arg;
    if (bad) {
        if (!s->header_done) {
            snprintf(s->res->error, sizeof s->res->error, "%s:%lld: bad header: %s", s->name, (long long)line, bad);
            s->res->code = 2;
            return 1;
        }
        s->res->read++;
        return bad_sym(s, line, NULL, bad, text, tl);
    }
    if (!s->header_done)
        return header(s, f, nf, line);
    if (nf >= 1 && f[0].len >= 19 && strncmp(f[0].p, "File Creation Time:", 19) == 0) {
        s->footer = 1;
        return 0;
    }
    s->res->read++;
    char why[200];
    if (s->footer) {
        snprintf(why, sizeof why, "a row after the File Creation Time footer");
        return bad_sym(s, line, NULL, why, text, tl);
    }
    if (nf != s->ncols) {
        snprintf(why, sizeof why, "%d fields where the header has %d", nf, s->ncols);
        return bad_sym(s, line, NULL, why, text, tl);
    }
    const char *v[S_N];
    size_t vl[S_N];
    for (int k = 0; k < S_N; k++) {
        v[k] = NULL;
        vl[k] = 0;
        if (s->col[k] >= 0) {
            v[k] = f[s->col[k]].p;
            vl[k] = f[s->col[k]].len;
            tf_imp_trim(&v[k], &vl[k]);
        }
    }
    char sym[32], mkt[24];
    if (vl[S_SYMBOL] == 0 || vl[S_SYMBOL] >= sizeof sym) {
        snprintf(why, sizeof why, "a symbol must be 1-%zu characters", sizeof sym - 1);
        return bad_sym(s, line, "symbol", why, text, tl);
    }
    for (size_t i = 0; i < vl[S_SYMBOL]; i++) {
        char ch = v[S_SYMBOL][i];
        if (ch <= ' ' || ch > '~') {
            snprintf(why, sizeof why, "the symbol has a space or a non-ASCII character");
            return bad_sym(s, line, "symbol", why, text, tl);
        }
        sym[i] = ch >= 'a' && ch <= 'z' ? (char)(ch - 32) : ch;
    }
    sym[vl[S_SYMBOL]] = '\0';
    if (vl[S_NAME] == 0 || !tf_utf8_valid((const unsigned char *)v[S_NAME], vl[S_NAME])) {
        snprintf(why, sizeof why, vl[S_NAME] ? "the name is not valid UTF-8" : "no name");
        return bad_sym(s, line, "name", why, text, tl);
    }
    const char *m = NULL;
    size_t ml = 0;
    if (s->col[S_EXCHANGE] >= 0 && s->nasdaq) {
        m = exchange_market(v[S_EXCHANGE], vl[S_EXCHANGE]);
        if (!m) {
            snprintf(why, sizeof why, "'%.*s' is not an exchange code (N A P Z V)", vl[S_EXCHANGE] > 8 ? 8 : (int)vl[S_EXCHANGE],
                     v[S_EXCHANGE]);
            return bad_sym(s, line, "Exchange", why, text, tl);
        }
        ml = strlen(m);
    } else if (s->nasdaq) {
        m = "NASDAQ";
        ml = 6;
    } else if (vl[S_MARKET]) {
        m = v[S_MARKET];
        ml = vl[S_MARKET];
    } else if (vl[S_EXCHANGE]) {
        m = v[S_EXCHANGE];
        ml = vl[S_EXCHANGE];
    } else if (s->o->defaults.market[0]) {
        m = s->o->defaults.market;
        ml = strlen(m);
    }
    if (!m || ml == 0 || ml >= sizeof mkt) {
        snprintf(why, sizeof why, "no market (1-%zu characters), and no --market", sizeof mkt - 1);
        return bad_sym(s, line, "market", why, text, tl);
    }
    for (size_t i = 0; i < ml; i++) {
        char ch = m[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'))) {
            snprintf(why, sizeof why, "a market is letters and digits");
            return bad_sym(s, line, "market", why, text, tl);
        }
        mkt[i] = ch >= 'a' && ch <= 'z' ? (char)(ch - 32) : ch;
    }
    mkt[ml] = '\0';
    if (vl[S_CAP] && !tf_imp_num_valid(v[S_CAP], vl[S_CAP])) {
        snprintf(why, sizeof why, "'%.*s' is not a market cap (a decimal >= 0)", vl[S_CAP] > 30 ? 30 : (int)vl[S_CAP],
                 v[S_CAP]);
        return bad_sym(s, line, "market_cap", why, text, tl);
    }
    if (vl[S_SECTOR] && !tf_utf8_valid((const unsigned char *)v[S_SECTOR], vl[S_SECTOR])) {
        snprintf(why, sizeof why, "the sector is not valid UTF-8");
        return bad_sym(s, line, "sector", why, text, tl);
    }
    int test = 0;
    if (s->nasdaq) {
        if (eq(v[S_TEST], vl[S_TEST], "Y"))
            test = 1;
        else if (!eq(v[S_TEST], vl[S_TEST], "N")) {
            snprintf(why, sizeof why, "Test Issue must be Y or N");
            return bad_sym(s, line, "Test Issue", why, text, tl);
        }
    }
    tf_imp_copy_text(&s->out, sym, strlen(sym));
    tf_sbuf_add(&s->out, "\t", 1);
    tf_imp_copy_text(&s->out, v[S_NAME], vl[S_NAME]);
    tf_sbuf_fmt(&s->out, "\t%s\t", mkt);
    if (vl[S_CAP])
        tf_sbuf_add(&s->out, v[S_CAP], vl[S_CAP]);
    else
        tf_sbuf_str(&s->out, "\\N");
    tf_sbuf_add(&s->out, "\t", 1);
    if (vl[S_SECTOR])
        tf_imp_copy_text(&s->out, v[S_SECTOR], vl[S_SECTOR]);
    else
        tf_sbuf_str(&s->out, "\\N");
    tf_sbuf_fmt(&s->out, "\t%s\t%lld\n", test ? "t" : "f", (long long)line);
    s->rows++;
    char err[512];
    if (tf_imp_copy_put(s->conn, &s->out, 0, err, sizeof err) != 0) {
        snprintf(s->res->error, sizeof s->res->error, "%s", err);
        s->res->code = 1;
        return 1;
    }
    return 0;
}

int tf_import_symbols(const tf_import_opts *o, tf_import_result *res)
{
    memset(res, 0, sizeof *res);
    int64_t t0 = tf_mono_us();
    syms s;
    memset(&s, 0, sizeof s);
    s.o = o;
    s.res = res;
    char err[1024];
    tf_imp_src *src = NULL;
    tf_err pe = {0};
    s.conn = tf_pg_connect(o->pg_url, &pe);
    if (!s.conn || tf_schema_migrate(s.conn, o->cfg, NULL, &pe) != 0) {
        snprintf(res->error, sizeof res->error, "%s", pe.msg);
        res->code = 1;
        goto out;
    }
    s.rej = tf_imp_rejects_open(o->rejects, err, sizeof err);
    if (!s.rej) {
        snprintf(res->error, sizeof res->error, "%s", err);
        res->code = 2;
        goto out;
    }
    for (int i = 0; i < o->nfiles && !res->code; i++) {
        src = tf_imp_src_open(o->files[i], 0, err, sizeof err);
        if (!src) {
            snprintf(res->error, sizeof res->error, "%s", err);
            res->code = 2;
            break;
        }
        s.name = tf_imp_src_name(src);
        s.header_done = s.footer = 0;
        s.rows = 0;
        s.out.len = 0;
        int64_t rej0 = res->rejected;
        int64_t id = tf_imp_ledger_begin(s.conn, "symbols", s.name, "", err, sizeof err);
        int rc = id < 0 ? TF_PG_EOTHER : tf_pg_exec(s.conn, "BEGIN", &pe);
        if (rc && id >= 0) tf_err_copy(&pe, err, sizeof err);
        if (rc == 0)
            rc = tf_imp_copy_begin(s.conn,
                                   "CREATE TEMP TABLE tf_symbols_in (symbol text, name text, market text,"
                                   " market_cap numeric, sector text, test_issue boolean, line bigint)"
                                   " ON COMMIT DROP; COPY tf_symbols_in FROM STDIN",
                                   err, sizeof err);
        if (rc) {
            snprintf(res->error, sizeof res->error, "%s", err);
            res->code = 1;
            break;
        }
        int r = tf_imp_read_csv(src, 0, on_record, &s, err, sizeof err);
        if (r < 0) {
            snprintf(res->error, sizeof res->error, "%s", err);
            res->code = 1;
        } else if (r == 0 && !s.header_done) {
            snprintf(res->error, sizeof res->error, "%s: empty input (no header)", s.name);
            res->code = 2;
        }
        const char *base = strrchr(s.name, '/');
        char source[300];
        snprintf(source, sizeof source, "%s:%s", s.nasdaq ? "nasdaqtrader" : "csv", base ? base + 1 : s.name);
        const char *p[1] = {source};
        tf_imp_stage_finish(s.conn, &s.out,
                            "INSERT INTO symbols (symbol, name, market, market_cap, sector, test_issue, source)"
                            " SELECT DISTINCT ON (symbol, market) symbol, name, market, market_cap, sector, test_issue, $1"
                            " FROM tf_symbols_in ORDER BY symbol, market, line DESC"
                            " ON CONFLICT (symbol, market) DO UPDATE SET name = EXCLUDED.name,"
                            " market_cap = coalesce(EXCLUDED.market_cap, symbols.market_cap),"
                            " sector = coalesce(EXCLUDED.sector, symbols.sector), test_issue = EXCLUDED.test_issue,"
                            " source = EXCLUDED.source, updated_at = now()",
                            1, p, "upserting symbols", res);
        if (!res->code) res->inserted += s.rows;
        if (!res->code && s.nasdaq && !s.footer)
            tf_warn("import", "no 'File Creation Time:' footer: the file may be cut short", TF_STR("file", s.name));
        char ib[24];
        snprintf(ib, sizeof ib, "%lld", (long long)id);
        const char *hp[2] = {tf_imp_src_sha256(src), ib};
        PGresult *q = PQexecParams(s.conn, "UPDATE tickflow_imports SET sha256 = $1 WHERE id = $2::bigint", 2,
                                   NULL, hp, NULL, NULL, 0);
        PQclear(q);
        tf_imp_ledger_end(s.conn, id, res->code ? "failed" : "done", res->code ? 0 : s.rows,
                          res->rejected - rej0, res->code ? res->error : NULL, err, sizeof err);
        tf_info("import", res->code ? "symbols import failed" : "symbols import done", TF_INT("import_id", id),
                TF_INT("rows", s.rows));
        tf_imp_src_free(src);
        src = NULL;
    }
out:
    if (s.rej && tf_imp_rejects_close(s.rej, err, sizeof err) != 0 && !res->code) {
        snprintf(res->error, sizeof res->error, "%s", err);
        res->code = 1;
    }
    tf_imp_src_free(src);
    if (s.conn)
        PQfinish(s.conn);
    free(s.out.b);
    res->elapsed_ms = (tf_mono_us() - t0) / 1000;
    return res->code ? -1 : 0;
}
