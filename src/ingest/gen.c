/*
 * gen.c - the synthetic market (see gen.h).
 *
 * Price model. Each ticker follows geometric Brownian motion in *trade time*
 * (each trade advances the clock by one step): log-price increments are
 * N(0, sigma^2) with sigma per ticker, plus a very weak pull towards the
 * ticker's reference price (an Ornstein-Uhlenbeck term sized so that the
 * long-run spread stays around +-4%, so a generator left running for hours
 * does not wander off to absurd prices). Increments stay Gaussian, so log
 * returns are normal; trade time rather than wall time keeps the per-trade
 * volatility independent of how densely the caller spreads trades, which is
 * what lets detection thresholds work at any rate. The printed price is the
 * path rounded to the market's tick: the KRX ladder (KRW) for KOSPI/KOSDAQ,
 * 0.01 USD (0.0001 below 1 USD) for NASDAQ/NYSE. sigma is at least one tick,
 * so rounding never dominates.
 *
 * Sizes are log-normal in shares (heavy right tail, kurtosis in the tens):
 * log-normal rather than Pareto because a Pareto tail puts exponential tails
 * on log(size), which no z-score rule could separate from a real volume
 * spike. The buy share leans with the last return (momentum).
 *
 * Realistic model (generator.model = realistic). Innovations are
 * Student-t(4) scaled to unit variance, times a GARCH(1,1) volatility
 * h' = w + a e^2 + b h per trade (a 0.06, b 0.92: clusters over ~50 trades,
 * long-run sd = sigma); the buy/sell lean, the reversion to the reference
 * and the tick rounding are as in gbm. Which ticker trades next is drawn
 * from weights: a static log-normal weight per ticker (sd 0.8 in log: busy
 * and slow tickers) times a U-shaped activity curve over a compressed
 * session of GEN_SESSION_S seconds of event time (1.8x at open and close,
 * 0.3x at midday), each ticker at its own phase. Sizes are log-normal with a
 * per-ticker sigma in 0.5..0.9. Anomalies are the same shapes, sized
 * against the ticker's CURRENT volatility sqrt(h) so they stand out from
 * fat-tailed, clustered noise at the level the detector is calibrated for
 * (0.2 false alarms per 100k: ~35 sd for a t(4) return):
 *   PRICE_SPIKE 60..100 sd, OFF_VWAP 100..150 sd, RAPID_MOVE 24 trades
 *   drifting 100 sd in all, VOLUME_SPIKE 100..300 medians, TRADE_BURST as
 *   below at the ticker's own current rate; sd = max(current, long-run).
 *
 * Anomalies (ground truth, designed together with src/process/rules.c so the
 * five kinds are distinct):
 *   PRICE_SPIKE   the path jumps by 25..40 sigma at one trade and STAYS there
 *                 (the following trades continue from the new level);
 *   OFF_VWAP      one print 60..90 sigma away from the path/VWAP; the path is
 *                 untouched, so the ticker's next trade is back on it;
 *   RAPID_MOVE    the ticker's next 24 trades drift 60 sigma in total (2.5
 *                 sigma per trade plus the normal noise): no single return is
 *                 an outlier, the walk as a whole is;
 *   VOLUME_SPIKE  one trade whose size is 9..11 log-sigmas above the median;
 *   TRADE_BURST   many trades of one ticker at one instant, sized to several
 *                 times the noise of a 200 ms trade count at the ticker's
 *                 observed rate (>= 32 trades), normal prices and sizes.
 * Anomalies on one ticker are isolated: none in the first 30 s / 300 trades
 * of a ticker, and at least 15 s and 200 of its trades between two.
 * Requests that hit a ticker not eligible are carried over to the next
 * eligible trade, so the realised rate matches the requested one.
 *
 * Randomness: xoshiro256** seeded through splitmix64 (own PRNG, so output is
 * identical on every platform and libc for a seed).
 */
#include "ingest/gen.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GEN_WARMUP_TRADES 300
#define GEN_WARMUP_US (30 * 1000000LL)
#define GEN_GAP_TRADES 200
#define GEN_GAP_US (15 * 1000000LL)
#define GEN_RAPID_STEPS 24
#define GEN_RAPID_TOTAL 60.0  /* sigmas over the whole move */
#define GEN_RAPID_TOTAL_REAL 100.0 /* realistic: t(4) steps and clusters need more */
#define GEN_BURST_MIN 32
#define GEN_BURST_MAX 512
#define GEN_MAX_DEBT 64.0
#define GEN_SESSION_S 600.0   /* realistic: one activity cycle, event seconds */
#define GARCH_A 0.06
#define GARCH_B 0.92

int tf_gen_model_from_name(const char *s)
{
    if (!s) return -1;
    if (strcmp(s, "gbm") == 0) return TF_GEN_GBM;
    if (strcmp(s, "realistic") == 0) return TF_GEN_REALISTIC;
    return -1;
}

/* ---- default universe ---------------------------------------------------- */

typedef struct def_ticker {
    const char *ticker;
    const char *market;
    double price; /* start price in the market's currency */
} def_ticker;

static const def_ticker defaults[] = {
    /* KOSPI (KRW) */
    {"005930", "KOSPI", 71000},   /* Samsung Electronics */
    {"000660", "KOSPI", 180000},  /* SK hynix */
    {"035420", "KOSPI", 190000},  /* NAVER */
    {"005380", "KOSPI", 240000},  /* Hyundai Motor */
    {"051910", "KOSPI", 380000},  /* LG Chem */
    {"006400", "KOSPI", 400000},  /* Samsung SDI */
    {"035720", "KOSPI", 45000},   /* Kakao */
    {"068270", "KOSPI", 180000},  /* Celltrion */
    {"105560", "KOSPI", 60000},   /* KB Financial */
    {"055550", "KOSPI", 45000},   /* Shinhan Financial */
    {"005490", "KOSPI", 400000},  /* POSCO Holdings */
    {"012330", "KOSPI", 230000},  /* Hyundai Mobis */
    {"000270", "KOSPI", 95000},   /* Kia */
    {"207940", "KOSPI", 780000},  /* Samsung Biologics */
    {"373220", "KOSPI", 400000},  /* LG Energy Solution */
    /* KOSDAQ (KRW) */
    {"247540", "KOSDAQ", 250000}, /* EcoPro BM */
    {"086520", "KOSDAQ", 600000}, /* EcoPro */
    {"196170", "KOSDAQ", 150000}, /* Alteogen */
    {"028300", "KOSDAQ", 60000},  /* HLB */
    {"293490", "KOSDAQ", 22000},  /* Kakao Games */
    {"263750", "KOSDAQ", 40000},  /* Pearl Abyss */
    {"041510", "KOSDAQ", 80000},  /* SM Entertainment */
    {"035900", "KOSDAQ", 70000},  /* JYP Entertainment */
    {"058470", "KOSDAQ", 180000}, /* LEENO Industrial */
    {"145020", "KOSDAQ", 170000}, /* Hugel */
    /* NASDAQ (USD) */
    {"AAPL", "NASDAQ", 189.25},
    {"MSFT", "NASDAQ", 378.50},
    {"NVDA", "NASDAQ", 480.10},
    {"AMZN", "NASDAQ", 146.70},
    {"GOOGL", "NASDAQ", 137.20},
    {"TSLA", "NASDAQ", 235.60},
    {"META", "NASDAQ", 335.30},
    {"AVGO", "NASDAQ", 950.00},
    {"COST", "NASDAQ", 590.40},
    {"NFLX", "NASDAQ", 480.90},
    {"AMD", "NASDAQ", 120.30},
    {"ADBE", "NASDAQ", 610.00},
    {"PEP", "NASDAQ", 168.40},
    {"CSCO", "NASDAQ", 50.10},
    {"INTC", "NASDAQ", 44.20},
    {"QCOM", "NASDAQ", 128.70},
    /* NYSE (USD) */
    {"JPM", "NYSE", 155.30},
    {"V", "NYSE", 255.80},
    {"KO", "NYSE", 58.40},
    {"WMT", "NYSE", 160.20},
    {"XOM", "NYSE", 104.50},
    {"JNJ", "NYSE", 155.10},
    {"PG", "NYSE", 150.60},
    {"UNH", "NYSE", 540.00},
    {"HD", "NYSE", 330.20},
    {"BAC", "NYSE", 30.10},
    {"DIS", "NYSE", 92.30},
    {"MA", "NYSE", 420.70},
    {"CVX", "NYSE", 148.90},
    {"IBM", "NYSE", 155.40},
    {"NKE", "NYSE", 110.60},
};

#define NDEFAULTS ((int)(sizeof defaults / sizeof defaults[0]))

int tf_gen_default_count(void) { return NDEFAULTS; }

const char *tf_gen_default_ticker(int i, const char **market)
{
    if (i < 0 || i >= NDEFAULTS) return NULL;
    if (market) *market = defaults[i].market;
    return defaults[i].ticker;
}

static int is_krx(const char *market) { return market[0] == 'K'; }

/* ---- PRNG ---------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

typedef struct rng {
    uint64_t s[4];
    double spare;
    int has_spare;
} rng;

static inline uint64_t rng_next(rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, 1). */
static inline double rng_unif(rng *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }

/* Uniform integer in [0, n). */
static inline uint32_t rng_below(rng *r, uint32_t n)
{
    return (uint32_t)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

/* Standard normal (Marsaglia polar method, keeps the spare). */
static double rng_normal(rng *r)
{
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u, v, s;
    do {
        u = 2.0 * rng_unif(r) - 1.0;
        v = 2.0 * rng_unif(r) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    double m = sqrt(-2.0 * log(s) / s);
    r->spare = v * m;
    r->has_spare = 1;
    return u * m;
}

/* Student-t(4) with unit variance: z / sqrt(chi2_4 / 4) has variance 2. */
static double rng_t4(rng *r)
{
    double u1 = rng_unif(r), u2 = rng_unif(r);
    double chi = -2.0 * log((1.0 - u1) * (1.0 - u2));
    if (chi < 1e-12) chi = 1e-12;
    return rng_normal(r) / sqrt(chi / 4.0) * M_SQRT1_2;
}

/* ---- generator state ------------------------------------------------------ */

enum { SCN_NONE = -1 };

typedef struct gen_ticker {
    char ticker[TF_TICKER_MAX];
    char market[TF_MARKET_MAX];
    double x;         /* log of the path price (currency units) */
    double x0;        /* log reference price */
    double sigma;     /* per-trade log-return sd */
    double theta;     /* mean-reversion per trade */
    double qty_mu;    /* log-normal size parameters (shares) */
    double qty_sigma;
    double last_r;
    double h;         /* realistic: GARCH variance of the next innovation */
    double wbase;     /* realistic: static activity weight ... */
    double phase;     /* ... and the phase of its session curve */
    int64_t ntrades;
    int64_t first_us;
    int64_t quiet_trades; /* no anomaly before ntrades reaches this */
    int64_t quiet_us;     /* ... nor before this event time */
    int scn;              /* active multi-trade scenario (RAPID_MOVE) or SCN_NONE */
    int scn_left;
    double scn_step;
    int64_t scn_label;    /* label index in the current batch, -1 if none */
    uint64_t scn_batch;
} gen_ticker;

struct tf_gen {
    rng r;
    gen_ticker *t;
    int nt;
    double rate;
    int model;
    double *cumw;       /* realistic: cumulative ticker weights of this batch */
    double *lam_t;      /* realistic: trades per second per ticker, this batch */
    unsigned mask;
    int ntypes_allowed;
    int types_allowed[TF_ANOM_NTYPES];
    double debt;        /* anomaly requests waiting for an eligible trade */
    uint64_t batch;     /* serial of tf_gen_fill calls */
    double lam_ewma;    /* trades per second per ticker, smoothed over batches */
    /* a burst in progress (may spill into the next batch) */
    int burst_left;
    int burst_ticker;
    int64_t burst_us;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int all_digits(const char *s)
{
    for (; *s; s++)
        if (*s < '0' || *s > '9') return 0;
    return 1;
}

/* Fills a ticker's static parameters. price <= 0: derive market and price
 * from the name (deterministic, independent of the seed). */
static void ticker_init(gen_ticker *t, const char *name, const char *market, double price, rng *r)
{
    memset(t, 0, sizeof *t);
    snprintf(t->ticker, sizeof t->ticker, "%s", name);
    uint64_t h = hash_str(name);
    if (!market) {
        if (all_digits(name) && strlen(name) == 6) {
            market = (h & 1) ? "KOSDAQ" : "KOSPI";
            price = 5000.0 + (double)((h >> 8) % 300) * 1000.0;
        } else {
            market = (h & 1) ? "NYSE" : "NASDAQ";
            price = 20.0 + (double)((h >> 8) % 48000) / 100.0;
        }
    }
    snprintf(t->market, sizeof t->market, "%s", market);
    t->x0 = t->x = log(price);
    int64_t p_e4 = (int64_t)llround(price * TF_PRICE_SCALE);
    double rel_tick = (double)tf_tick_size_e4(t->market, p_e4) / (double)p_e4;
    double base = 2.0e-4 * (1.0 + 0.5 * rng_unif(r));
    t->sigma = base > rel_tick ? base : rel_tick;
    double s = t->sigma / 0.04; /* stationary sd of the OU term ~ 4% */
    t->theta = 0.5 * s * s;
    t->qty_sigma = 0.8;
    t->qty_mu = log(is_krx(t->market) ? 30.0 : 100.0) + 0.3 * (rng_unif(r) - 0.5);
    t->quiet_trades = GEN_WARMUP_TRADES;
    t->quiet_us = INT64_MIN;
    t->first_us = INT64_MIN;
    t->scn = SCN_NONE;
    t->scn_label = -1;
}

tf_gen *tf_gen_new(const tf_gen_opts *o, char *errbuf, size_t errlen)
{
    tf_gen *g = NULL;
    if (!o) {
        snprintf(errbuf, errlen, "generator options missing");
        return NULL;
    }
    if (!(o->anomaly_rate >= 0.0 && o->anomaly_rate <= 0.1)) {
        snprintf(errbuf, errlen, "anomaly rate %g out of range (0..0.1)", o->anomaly_rate);
        return NULL;
    }
    if (o->anomaly_mask >> TF_ANOM_NTYPES) {
        snprintf(errbuf, errlen, "anomaly mask 0x%x has unknown type bits", o->anomaly_mask);
        return NULL;
    }
    if (o->ntickers < 0 || (!o->tickers && o->ntickers > NDEFAULTS)) {
        snprintf(errbuf, errlen, "ticker count %d out of range (0..%d without a list)", o->ntickers,
                 NDEFAULTS);
        return NULL;
    }
    if (o->tickers && o->ntickers > 100000) {
        snprintf(errbuf, errlen, "too many tickers (%d, max 100000)", o->ntickers);
        return NULL;
    }
    g = calloc(1, sizeof *g);
    if (!g) goto oom;
    uint64_t sm = o->seed;
    for (int i = 0; i < 4; i++) g->r.s[i] = splitmix64(&sm);
    g->nt = o->tickers ? o->ntickers : (o->ntickers ? o->ntickers : NDEFAULTS);
    if (g->nt == 0) {
        snprintf(errbuf, errlen, "empty ticker list");
        goto err;
    }
    g->t = calloc((size_t)g->nt, sizeof *g->t);
    if (!g->t) goto oom;
    for (int i = 0; i < g->nt; i++) {
        if (o->tickers) {
            const char *name = o->tickers[i];
            if (!name || !tf_ticker_valid(name, strlen(name))) {
                snprintf(errbuf, errlen, "invalid ticker \"%.32s\" (expected 1-15 of A-Z 0-9 . -)",
                         name ? name : "(null)");
                goto err;
            }
            for (int j = 0; j < i; j++)
                if (strcmp(g->t[j].ticker, name) == 0) {
                    snprintf(errbuf, errlen, "duplicate ticker \"%s\"", name);
                    goto err;
                }
            int d = -1;
            for (int j = 0; j < NDEFAULTS; j++)
                if (strcmp(defaults[j].ticker, name) == 0) d = j;
            if (d >= 0) ticker_init(&g->t[i], name, defaults[d].market, defaults[d].price, &g->r);
            else ticker_init(&g->t[i], name, NULL, 0, &g->r);
        } else {
            ticker_init(&g->t[i], defaults[i].ticker, defaults[i].market, defaults[i].price, &g->r);
        }
    }
    if (o->model != TF_GEN_GBM && o->model != TF_GEN_REALISTIC) {
        snprintf(errbuf, errlen, "unknown generator model %d", o->model);
        goto err;
    }
    g->model = o->model;
    if (g->model == TF_GEN_REALISTIC) {
        g->cumw = calloc((size_t)g->nt, sizeof *g->cumw);
        g->lam_t = calloc((size_t)g->nt, sizeof *g->lam_t);
        if (!g->cumw || !g->lam_t) goto oom;
        for (int i = 0; i < g->nt; i++) {
            gen_ticker *t = &g->t[i];
            t->h = t->sigma * t->sigma;
            t->wbase = exp(0.8 * rng_normal(&g->r));
            t->phase = rng_unif(&g->r);
            t->qty_sigma = 0.5 + 0.4 * rng_unif(&g->r);
        }
    }
    g->rate = o->anomaly_rate;
    g->mask = o->anomaly_mask ? o->anomaly_mask : (1u << TF_ANOM_NTYPES) - 1;
    for (int k = 0; k < TF_ANOM_NTYPES; k++)
        if (g->mask & (1u << k)) g->types_allowed[g->ntypes_allowed++] = k;
    g->burst_ticker = -1;
    return g;
oom:
    snprintf(errbuf, errlen, "out of memory");
err:
    tf_gen_free(g);
    return NULL;
}

void tf_gen_free(tf_gen *g)
{
    if (!g) return;
    free(g->t);
    free(g->cumw);
    free(g->lam_t);
    free(g);
}

/* ---- trade production ----------------------------------------------------- */

static int64_t round_to_tick(const char *market, double price)
{
    double pe4 = price * TF_PRICE_SCALE;
    if (pe4 < 1.0) pe4 = 1.0;
    int64_t p = (int64_t)llround(pe4);
    int64_t tick = tf_tick_size_e4(market, p);
    int64_t q = (p + tick / 2) / tick * tick;
    return q > 0 ? q : tick;
}

/* One step of the path: a normal increment (gbm) or a t(4) one with GARCH
 * volatility (realistic). Returns the increment. */
static double path_step(tf_gen *g, gen_ticker *t)
{
    double e;
    if (g->model == TF_GEN_REALISTIC) {
        e = sqrt(t->h) * rng_t4(&g->r);
        double s2 = t->sigma * t->sigma;
        t->h = s2 * (1.0 - GARCH_A - GARCH_B) + GARCH_A * e * e + GARCH_B * t->h;
        if (t->h > 9.0 * s2) t->h = 9.0 * s2; /* clusters up to 3x the long-run sd, no runaway from one t(4) draw */
    } else {
        e = t->sigma * rng_normal(&g->r);
    }
    double r = -t->theta * (t->x - t->x0) + e;
    t->x += r;
    return r;
}

/* What injected anomalies are sized by: the per-trade sd (realistic: the
 * larger of the current GARCH sd and the long-run one, so an event in a calm
 * spell still stands out from the ticker's usual noise). */
static double sd_now(const tf_gen *g, const gen_ticker *t)
{
    if (g->model != TF_GEN_REALISTIC) return t->sigma;
    double h = sqrt(t->h);
    return h > t->sigma ? h : t->sigma;
}

/* Realistic: the U-shaped activity of a ticker at event time us. */
static double activity(const gen_ticker *t, int64_t us)
{
    double u = (double)us / 1e6 / GEN_SESSION_S + t->phase;
    u -= floor(u);
    double d = 2.0 * u - 1.0; /* -1 at open, 0 midday, 1 at close */
    return 0.3 + 1.5 * d * d;
}

/* Draws the next trading ticker: uniform (gbm) or by this batch's weights. */
static gen_ticker *pick_ticker(tf_gen *g)
{
    if (g->nt == 1) return &g->t[0];
    if (g->model != TF_GEN_REALISTIC) return &g->t[rng_below(&g->r, (uint32_t)g->nt)];
    double u = rng_unif(&g->r) * g->cumw[g->nt - 1];
    int lo = 0, hi = g->nt - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (g->cumw[mid] > u) hi = mid;
        else lo = mid + 1;
    }
    return &g->t[lo];
}

static int64_t draw_qty(tf_gen *g, gen_ticker *t, double z_extra)
{
    /* z_extra > 0: a volume spike exactly z_extra log-sigmas above the median */
    double z = z_extra > 0 ? z_extra : rng_normal(&g->r);
    double q = exp(t->qty_mu + t->qty_sigma * z);
    int64_t n = (int64_t)llround(q);
    return n < 1 ? 1 : n;
}

static void emit(tf_gen *g, gen_ticker *t, tf_trade *out, double log_price, int64_t qty, int64_t us,
                 double r)
{
    memset(out, 0, sizeof *out);
    memcpy(out->ticker, t->ticker, sizeof out->ticker);
    memcpy(out->market, t->market, sizeof out->market);
    out->price_e4 = round_to_tick(t->market, exp(log_price));
    out->quantity = qty;
    out->event_us = us;
    double pb = 0.5 + 0.25 * tanh(r / t->sigma);
    out->side = rng_unif(&g->r) < pb ? 'B' : 'S';
    t->last_r = r;
    if (t->ntrades == 0) {
        t->first_us = us;
        t->quiet_us = us + GEN_WARMUP_US;
    }
    t->ntrades++;
}

static void quiet_after(gen_ticker *t, int64_t us)
{
    t->quiet_trades = t->ntrades + GEN_GAP_TRADES;
    t->quiet_us = us + GEN_GAP_US;
}

static tf_gen_label *new_label(tf_anomaly_type type, gen_ticker *t, int64_t us, int64_t idx,
                               tf_gen_label *labels, size_t *nlabels)
{
    tf_gen_label *l = &labels[(*nlabels)++];
    memset(l, 0, sizeof *l);
    l->type = type;
    memcpy(l->ticker, t->ticker, sizeof l->ticker);
    l->event_us = us;
    l->ntrades = 1;
    l->trade_idx[0] = idx;
    return l;
}

/* Burst size for the ticker's observed rate: several times the noise of a
 * 200 ms trade count (what the detector's default tumbling window sees). */
static int burst_size(const tf_gen *g, const gen_ticker *t)
{
    double lam = g->model == TF_GEN_REALISTIC ? g->lam_t[t - g->t] : g->lam_ewma;
    double mu = lam * 0.2;
    double sd = mu > 1.0 ? sqrt(mu) : 1.0;
    double b = 1.6 * (mu + 8.0 * sd);
    int n = (int)ceil(b);
    return n < GEN_BURST_MIN ? GEN_BURST_MIN : n > GEN_BURST_MAX ? GEN_BURST_MAX : n;
}

int tf_gen_ticker_count(const tf_gen *g) { return g->nt; }

const char *tf_gen_ticker_name(const tf_gen *g, int i)
{
    return i >= 0 && i < g->nt ? g->t[i].ticker : NULL;
}

void tf_gen_continue_from(tf_gen *g, int i, double price)
{
    if (i < 0 || i >= g->nt || !(price > 0) || !isfinite(price)) return;
    g->t[i].x = log(price);
}

size_t tf_gen_fill(tf_gen *g, tf_trade *out, size_t n, int64_t start_us, int64_t end_us,
                   tf_gen_label *labels, size_t maxlabels, size_t *nlabels)
{
    if (!g || !out || n == 0) return 0;
    size_t nl0 = 0;
    if (!nlabels) nlabels = &nl0;
    if (!labels) maxlabels = 0;
    if (end_us <= start_us) end_us = start_us + 1;
    g->batch++;
    double span_s = (double)(end_us - start_us) / 1e6;
    double lam = (double)n / span_s / (double)g->nt;
    g->lam_ewma = g->lam_ewma == 0.0 ? lam : 0.8 * g->lam_ewma + 0.2 * lam;
    double span = (double)(end_us - start_us);
    if (g->model == TF_GEN_REALISTIC) {
        double acc = 0;
        int64_t mid = start_us + (end_us - start_us) / 2;
        for (int k = 0; k < g->nt; k++) {
            double w = g->t[k].wbase * activity(&g->t[k], mid);
            acc += w;
            g->cumw[k] = acc;
        }
        for (int k = 0; k < g->nt; k++) {
            double w = g->cumw[k] - (k ? g->cumw[k - 1] : 0);
            g->lam_t[k] = (double)n / span_s * w / acc;
        }
    }

    for (size_t i = 0; i < n; i++) {
        int64_t us = start_us + (int64_t)(span * (double)i / (double)n);
        /* A burst in progress takes the slot: same ticker, same instant. */
        if (g->burst_left > 0) {
            gen_ticker *t = &g->t[g->burst_ticker];
            int64_t bus = g->burst_us <= us ? g->burst_us : us;
            double r = path_step(g, t);
            emit(g, t, &out[i], t->x, draw_qty(g, t, 0), bus, r);
            if (--g->burst_left == 0) quiet_after(t, bus);
            continue;
        }
        gen_ticker *t = pick_ticker(g);

        /* Continue a rapid move. */
        if (t->scn == TF_ANOM_RAPID_MOVE) {
            double r = path_step(g, t);
            t->x += t->scn_step;
            r += t->scn_step;
            emit(g, t, &out[i], t->x, draw_qty(g, t, 0), us, r);
            if (t->scn_label >= 0 && t->scn_batch == g->batch) {
                tf_gen_label *l = &labels[t->scn_label];
                if (l->ntrades < TF_GEN_LABEL_MAX_TRADES) l->trade_idx[l->ntrades++] = (int64_t)i;
            }
            if (--t->scn_left == 0) {
                t->scn = SCN_NONE;
                t->scn_label = -1;
                quiet_after(t, us);
            }
            continue;
        }

        if (g->rate > 0.0 && rng_unif(&g->r) < g->rate && g->debt < GEN_MAX_DEBT) g->debt += 1.0;
        int eligible = g->debt >= 1.0 && *nlabels < maxlabels && g->ntypes_allowed > 0 &&
                       t->ntrades >= t->quiet_trades && us >= t->quiet_us && t->scn == SCN_NONE;
        if (!eligible) {
            double r = path_step(g, t);
            emit(g, t, &out[i], t->x, draw_qty(g, t, 0), us, r);
            continue;
        }
        g->debt -= 1.0;
        tf_anomaly_type type = (tf_anomaly_type)g->types_allowed[rng_below(&g->r, (uint32_t)g->ntypes_allowed)];
        double sign = rng_unif(&g->r) < 0.5 ? -1.0 : 1.0;
        tf_gen_label *l = new_label(type, t, us, (int64_t)i, labels, nlabels);
        switch (type) {
        case TF_ANOM_PRICE_SPIKE: {
            double r = path_step(g, t);
            double jump = sign * (g->model == TF_GEN_REALISTIC ? 60.0 + 40.0 * rng_unif(&g->r)
                                                                : 25.0 + 15.0 * rng_unif(&g->r)) *
                          sd_now(g, t);
            t->x += jump;
            emit(g, t, &out[i], t->x, draw_qty(g, t, 0), us, r + jump);
            quiet_after(t, us);
            break;
        }
        case TF_ANOM_OFF_VWAP: {
            double r = path_step(g, t);
            double off = sign * (g->model == TF_GEN_REALISTIC ? 100.0 + 50.0 * rng_unif(&g->r)
                                                               : 60.0 + 30.0 * rng_unif(&g->r)) *
                         sd_now(g, t);
            emit(g, t, &out[i], t->x + off, draw_qty(g, t, 0), us, r);
            quiet_after(t, us);
            break;
        }
        case TF_ANOM_VOLUME_SPIKE: {
            double r = path_step(g, t);
            double zq = g->model == TF_GEN_REALISTIC ? log(100.0 + 200.0 * rng_unif(&g->r)) / t->qty_sigma
                                                     : 9.0 + 2.0 * rng_unif(&g->r);
            emit(g, t, &out[i], t->x, draw_qty(g, t, zq), us, r);
            quiet_after(t, us);
            break;
        }
        case TF_ANOM_RAPID_MOVE: {
            t->scn = TF_ANOM_RAPID_MOVE;
            t->scn_step = sign * (g->model == TF_GEN_REALISTIC ? GEN_RAPID_TOTAL_REAL : GEN_RAPID_TOTAL) /
                          GEN_RAPID_STEPS * sd_now(g, t);
            t->scn_left = GEN_RAPID_STEPS - 1;
            t->scn_label = (int64_t)(l - labels);
            t->scn_batch = g->batch;
            double r = path_step(g, t) + t->scn_step;
            t->x += t->scn_step;
            emit(g, t, &out[i], t->x, draw_qty(g, t, 0), us, r);
            break;
        }
        case TF_ANOM_TRADE_BURST: {
            int b = burst_size(g, t);
            double r = path_step(g, t);
            emit(g, t, &out[i], t->x, draw_qty(g, t, 0), us, r);
            g->burst_left = b - 1;
            g->burst_ticker = (int)(t - g->t);
            g->burst_us = us;
            /* the rest of the burst is labelled as far as it fits this batch */
            size_t k = 1;
            while ((int)k < b && i + k < n && l->ntrades < TF_GEN_LABEL_MAX_TRADES)
                l->trade_idx[l->ntrades++] = (int64_t)(i + k++);
            break;
        }
        default:
            break;
        }
    }
    return n;
}

int tf_gen_run(const tf_gen_opts *o, size_t n, size_t batch, int64_t t0_us, double span_s,
               tf_trade **trades, tf_gen_label **labels, size_t *nlabels, char *errbuf, size_t errlen)
{
    *trades = NULL;
    *labels = NULL;
    *nlabels = 0;
    if (n == 0 || batch == 0) {
        snprintf(errbuf, errlen, "tf_gen_run: n and batch must be positive");
        return -1;
    }
    tf_gen *g = tf_gen_new(o, errbuf, errlen);
    if (!g)
        return -1;
    size_t cap = n / 100 + 64;
    tf_trade *tr = calloc(n, sizeof *tr);
    tf_gen_label *lb = calloc(cap, sizeof *lb);
    if (!tr || !lb) {
        free(tr);
        free(lb);
        tf_gen_free(g);
        snprintf(errbuf, errlen, "tf_gen_run: out of memory for %zu trades", n);
        return -1;
    }
    size_t nl = 0;
    for (size_t i = 0; i < n; i += batch) {
        size_t nb = n - i < batch ? n - i : batch, nl0 = nl;
        int64_t s = t0_us + (int64_t)(span_s * 1e6 * (double)i / (double)n);
        int64_t e = t0_us + (int64_t)(span_s * 1e6 * (double)(i + nb) / (double)n);
        tf_gen_fill(g, tr + i, nb, s, e, lb, cap, &nl);
        for (size_t k = nl0; k < nl; k++) /* index in the batch -> trade id */
            for (int j = 0; j < lb[k].ntrades; j++)
                lb[k].trade_idx[j] += (int64_t)i + 1;
    }
    for (size_t i = 0; i < n; i++)
        tr[i].id = (int64_t)i + 1;
    tf_gen_free(g);
    *trades = tr;
    *labels = lb;
    *nlabels = nl;
    return 0;
}
