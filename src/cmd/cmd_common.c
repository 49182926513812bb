/*
 * cmd_common.c - what the subcommands share: SIGINT/SIGTERM handling and the
 * check that a command which only works against Kafka has a broker list.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "common/log.h"
#include "common/util.h"
#include "http/http.h"

static volatile sig_atomic_t stop_flag;
static tf_server *volatile stop_server; /* read by the handler only */
static int stop_pipe[2] = {-1, -1};     /* self-pipe: the handler writes, tf_cmd_wait_stop polls */

static void on_stop(int sig)
{
    (void)sig;
    stop_flag = 1;
    if (stop_pipe[1] >= 0) {
        int saved = errno;
        ssize_t w = write(stop_pipe[1], "x", 1); /* async-signal-safe */
        (void)w;
        errno = saved;
    }
    tf_server *s = stop_server;
    if (s) tf_server_stop(s); /* async-signal-safe (uv_async_send) */
}

void tf_cmd_catch_stop(struct tf_server *s)
{
    stop_server = s;
    if (stop_pipe[0] < 0 && pipe2(stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) stop_pipe[0] = stop_pipe[1] = -1;
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

int tf_cmd_wait_stop(int timeout_ms)
{
    if (stop_flag) return 1;
    struct pollfd p = {stop_pipe[0], POLLIN, 0};
    if (stop_pipe[0] >= 0) {
        if (poll(&p, 1, timeout_ms) < 0 && errno != EINTR) return stop_flag;
        /* empty the pipe (non-blocking): a wake-up is seen once, not again
         * by every later wait */
        char b[64];
        if (!stop_flag)
            while (read(stop_pipe[0], b, sizeof b) > 0)
                ;
    } else {
        poll(NULL, 0, timeout_ms); /* no pipe (pipe2 failed): a plain wait */
    }
    return stop_flag;
}

int tf_cmd_ms_until(int64_t mono_us)
{
    int64_t left = mono_us - tf_mono_us();
    if (left <= 0) return 0;
    return left > INT32_MAX * 1000LL ? INT32_MAX : (int)((left + 999) / 1000);
}

void tf_cmd_wake(void)
{
    if (stop_pipe[1] >= 0) {
        int saved = errno;
        ssize_t w = write(stop_pipe[1], "w", 1); /* a full pipe already wakes */
        (void)w;
        errno = saved;
    }
}

int tf_cmd_fail(const char *cmd, int code, const char *what, const char *err)
{
    tf_error(cmd, what, TF_STR("error", err && *err ? err : NULL));
    return code;
}

int tf_cmd_no_args(const char *cmd, int npos, const char **pos)
{
    if (npos <= 0) return 0;
    tf_error(cmd, "unexpected argument (see --help)", TF_STR("argument", pos[0]));
    return -1;
}

int tf_cmd_require_kafka(const tf_config *cfg, const char *name)
{
    if (cfg->kafka_brokers[0]) return 0;
    tf_error(name, "needs a Kafka cluster: set --kafka-brokers HOST:PORT (TICKFLOW_KAFKA_BROKERS); "
                   "the embedded bus only exists inside `tickflow run`");
    return -1;
}
