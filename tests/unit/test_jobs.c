/* test_jobs.c - the job table against the [job.NAME] config rows: every
 * built-in job has its section (file, environment, flag), unknown jobs and
 * keys are refused, and a job's cron/tz errors name the key. */
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
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
    TF_TEST_MAIN_END();
}
