/*
 * cmd_common.c - what the subcommands share: SIGINT/SIGTERM handling and the
 * check that a command which only works against Kafka has a broker list.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "serve/http.h"

static volatile sig_atomic_t stop_flag;
static tf_server *volatile stop_server; /* read by the handler only */

static void on_stop(int sig)
{
    (void)sig;
    stop_flag = 1;
    tf_server *s = stop_server;
    if (s) tf_server_stop(s); /* async-signal-safe (uv_async_send) */
}

void tf_cmd_catch_stop(struct tf_server *s)
{
    stop_server = s;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

void tf_cmd_release_stop(void)
{
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    stop_server = NULL;
}

int tf_cmd_stop_requested(void)
{
    return stop_flag;
}

int tf_cmd_require_kafka(const tf_config *cfg, const char *name)
{
    if (cfg->kafka_brokers[0]) return 0;
    fprintf(stderr,
            "tickflow %s: needs a Kafka cluster: set --kafka-brokers HOST:PORT (TICKFLOW_KAFKA_BROKERS); "
            "the embedded bus only exists inside `tickflow run`\n",
            name);
    return -1;
}
