/* test_jobs.c - the job table against the [job.NAME] config rows: every
 * built-in job has its section (file, environment, flag), unknown jobs and
 * keys are refused, and a job's cron/tz errors name the key. */
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/util.h"
#include "jobs/jobs.h"
#include "jobs/scheduler.h"
#include "tf_test.h"

int main(void)
{
    static tf_config cfg;
    char err[512];
    tf_config_defaults(&cfg);
    size_t n;
    const tf_job_def *defs = tf_jobs_builtin(&n);
    TF_EQ_INT(n, TF_JOB_COUNT);
    for (size_t i = 0; i < n; i++) {
        char sec[64];
        TF_EQ_INT(defs[i].cfg_index, (int)i);
        TF_CHECK(tf_jobs_find(defs[i].name) == &defs[i]);
        snprintf(sec, sizeof sec, "job.%s", defs[i].name);
        TF_EQ_INT(tf_config_set(&cfg, sec, "retries", "5", err, sizeof err), 0);
        TF_EQ_INT(cfg.job[i].retries, 5);
        tf_jobspec sp;
        TF_EQ_INT(tf_jobspec_load(&sp, &cfg, defs[i].name, err, sizeof err), 0); /* defaults are valid */
        tf_jobspec_clear(&sp);
    }
    TF_EQ_INT(tf_config_set(&cfg, "job.nosuch", "cron", "* * * * *", err, sizeof err), -1);
    TF_EQ_STR(err, "unknown configuration key 'job.nosuch.cron'");
    TF_EQ_INT(tf_config_set(&cfg, "job.partitions", "fail_times", "1", err, sizeof err), -1); /* selftest only */
    TF_EQ_INT(tf_config_set(&cfg, "job.daily_bars", "catchup", "sometimes", err, sizeof err), -1);
    TF_EQ_STR(err, "job.daily_bars.catchup: invalid value 'sometimes' (one of |none|latest|all|)");
    TF_CHECK(tf_jobs_find("nosuch") == NULL);

    /* environment TICKFLOW_JOB_<NAME>_<KEY> and flag --job.NAME.key */
    setenv("TICKFLOW_JOB_SELFTEST_FAIL_TIMES", "3", 1);
    char *argv[] = {"--job.daily_bars.cron", "0 17 * * 1-5", "--job.selftest.enabled", "true", NULL};
    const char *pos[4];
    int npos;
    TF_EQ_INT(tf_config_load(&cfg, 4, argv, pos, 4, &npos, err, sizeof err), 0);
    TF_EQ_INT(cfg.job[TF_JOB_SELFTEST].fail_times, 3);
    TF_EQ_INT(cfg.job[TF_JOB_SELFTEST].enabled, 1);
    TF_EQ_STR(cfg.job[TF_JOB_DAILY_BARS].cron, "0 17 * * 1-5");
    unsetenv("TICKFLOW_JOB_SELFTEST_FAIL_TIMES");

    /* errors name the key */
    tf_jobspec sp;
    snprintf(cfg.job[TF_JOB_DAILY_BARS].cron, sizeof cfg.job[0].cron, "0 0 32 * *");
    TF_EQ_INT(tf_jobspec_load(&sp, &cfg, "daily_bars", err, sizeof err), -1);
    TF_EQ_STR(err, "job.daily_bars.cron: day-of-month: 32 out of range 1-31");
    snprintf(cfg.job[TF_JOB_SYMBOLS].tz, sizeof cfg.job[0].tz, "Mars/Base");
    TF_EQ_INT(tf_jobspec_load(&sp, &cfg, "symbols", err, sizeof err), -1);
    TF_CHECK(strncmp(err, "job.symbols.tz: unknown time zone 'Mars/Base'", 45) == 0);
    TF_EQ_INT(tf_jobspec_load(&sp, &cfg, "nosuch", err, sizeof err), -1);
    TF_CHECK(strncmp(err, "unknown job 'nosuch' (jobs: partitions daily_bars", 49) == 0);

    /* the time a manual run works on (job run --for, POST /api/v1/jobs/NAME/run) */
    static tf_config fresh;
    tf_config_defaults(&fresh);
    TF_EQ_INT(tf_jobspec_load(&sp, &fresh, "daily_bars", err, sizeof err), 0); /* 30 16 * * 1-5 New York */
    int64_t T, fri = tf_days_from_civil(2026, 11, 27) * 86400;
    TF_EQ_INT(tf_jobspec_resolve(&sp, "2026-11-27", 0, &T, err, sizeof err), 0);
    TF_EQ_INT(T, fri + 21 * 3600 + 1800);                                     /* EST */
    TF_EQ_INT(tf_jobspec_resolve(&sp, "2026-07-01", 0, &T, err, sizeof err), 0);
    TF_EQ_INT(T, tf_days_from_civil(2026, 7, 1) * 86400 + 20 * 3600 + 1800); /* EDT */
    TF_EQ_INT(tf_jobspec_resolve(&sp, "2026-11-28", 0, &T, err, sizeof err), -1); /* a Saturday */
    TF_CHECK(strstr(err, "no scheduled time on 2026-11-28") != NULL);
    TF_EQ_INT(tf_jobspec_resolve(&sp, "2026-11-27T10:00:00Z", 0, &T, err, sizeof err), 0);
    TF_EQ_INT(T, fri + 10 * 3600);
    TF_EQ_INT(tf_jobspec_resolve(&sp, NULL, fri + 3 * 86400 + 12 * 3600, &T, err, sizeof err), 0); /* Monday noon */
    TF_EQ_INT(T, fri + 21 * 3600 + 1800);
    TF_EQ_INT(tf_jobspec_resolve(&sp, "2026-13-01", 0, &T, err, sizeof err), -1);
    tf_jobspec_clear(&sp);

    /* run order: every upstream is a job, and no chain loops */
    for (size_t i = 0; i < n; i++) {
        const char *a = defs[i].name;
        int steps = 0;
        while ((a = tf_jobs_after(a)) && steps++ <= (int)n) TF_CHECK(tf_jobs_find(a) != NULL);
        TF_CHECK(steps <= (int)n);
    }
    TF_EQ_STR(tf_jobs_after("daily_bars"), "partitions");
    TF_EQ_STR(tf_jobs_after("split_check"), "daily_bars");
    TF_CHECK(tf_jobs_after("partitions") == NULL);
    TF_TEST_MAIN_END();
}
