/*
 * cronnext.c - batch driver for the cron oracle test: reads one request per
 * line on stdin, "ZONE<TAB>START_UNIX_S<TAB>COUNT<TAB>EXPR", and prints one
 * line per request: the next COUNT fire times (Unix seconds, space-separated,
 * stopping early at -1 when the schedule ends), or "ERR <message>" when the
 * expression or zone is refused. Zones are loaded once and kept.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/cron.h"
#include "jobs/tz.h"

int main(void)
{
    enum { MAXZ = 32 };
    tf_tz *zones[MAXZ];
    int nz = 0;
    static char line[4096];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = 0;
        char *zone = line, *t1 = strchr(zone, '\t');
        if (!t1) { puts("ERR bad request"); continue; }
        *t1++ = 0;
        char *t2 = strchr(t1, '\t');
        if (!t2) { puts("ERR bad request"); continue; }
        *t2++ = 0;
        char *t3 = strchr(t2, '\t');
        if (!t3) { puts("ERR bad request"); continue; }
        *t3++ = 0;
        long long start = atoll(t1);
        int count = atoi(t2);
        char err[256];
        tf_tz *tz = NULL;
        for (int i = 0; i < nz; i++)
            if (strcmp(tf_tz_name(zones[i]), zone) == 0) tz = zones[i];
        if (!tz) {
            tz = tf_tz_load(zone, err, sizeof err);
            if (!tz) { printf("ERR %s\n", err); continue; }
            if (nz < MAXZ) zones[nz++] = tz;
        }
        tf_cron c;
        if (tf_cron_parse(&c, t3, err, sizeof err) != 0) {
            printf("ERR %s\n", err);
        } else {
            int64_t t = start;
            for (int i = 0; i < count; i++) {
                t = tf_cron_next(&c, tz, t);
                printf(i ? " %lld" : "%lld", (long long)t);
                if (t < 0) break;
            }
            putchar('\n');
        }
        int kept = 0;
        for (int i = 0; i < nz; i++) kept |= zones[i] == tz;
        if (!kept) tf_tz_free(tz);
    }
    for (int i = 0; i < nz; i++) tf_tz_free(zones[i]);
    return 0;
}
