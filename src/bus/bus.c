/*
 * bus.c - picks the backend (Kafka when brokers are configured, embedded
 * otherwise) and forwards the bus.h calls through its ops table.
 */
#include <stdio.h>
#include <string.h>

#include "bus/bus_impl.h"

int tf_bus_topic_known(const char *topic)
{
    return topic && (strcmp(topic, TF_TOPIC_TRADES) == 0 || strcmp(topic, TF_TOPIC_ANOMALIES) == 0 ||
                     strcmp(topic, TF_TOPIC_SIGNALS) == 0);
}

tf_bus *tf_bus_new(const tf_config *cfg, tf_metrics *m, tf_err *e)
{
    if (cfg->kafka_brokers[0])
        return tf_bus_kafka_new(cfg, m, e);
    return tf_bus_embedded_new(cfg, m, e);
}

void tf_bus_free(tf_bus *bus)
{
    if (bus)
        bus->ops->free(bus);
}

const char *tf_bus_kind(const tf_bus *bus)
{
    return bus->ops->kind;
}

int tf_bus_produce(tf_bus *bus, const char *topic, const char *key, size_t key_len,
                   const char *value, size_t value_len, uint64_t lsn, int64_t xid,
                   tf_bus_delivery_cb cb, void *ctx, void *opaque, int timeout_ms)
{
    if (!bus || !tf_bus_topic_known(topic) || (!key && key_len) || (!value && value_len) ||
        value_len > TF_BUS_MAX_MESSAGE || key_len > 1024)
        return TF_BUS_EINVAL;
    return bus->ops->produce(bus, topic, key, key_len, value, value_len, lsn, xid, cb, ctx, opaque,
                             timeout_ms);
}

int tf_bus_flush(tf_bus *bus, int timeout_ms)
{
    return bus->ops->flush(bus, timeout_ms);
}

int tf_bus_status(tf_bus *bus, tf_err *e)
{
    return bus->ops->status(bus, e);
}

tf_bus_consumer *tf_bus_subscribe(tf_bus *bus, const char *topic, const char *group, int flags,
                                  tf_bus_rebalance_cb rebalance, void *rebalance_ctx,
                                  tf_err *e)
{
    if (!tf_bus_topic_known(topic)) {
        tf_err_set(e, TF_EFATAL, NULL, "unknown topic \"%s\"", topic ? topic : "(null)");
        return NULL;
    }
    return bus->ops->subscribe(bus, topic, group, flags, rebalance, rebalance_ctx, e);
}

int tf_bus_poll(tf_bus_consumer *c, int timeout_ms, const tf_bus_msg **out)
{
    *out = NULL;
    return c->ops->poll(c, timeout_ms, out);
}

int tf_bus_commit(tf_bus_consumer *c, const tf_bus_msg *msg)
{
    if (!msg)
        return TF_BUS_EINVAL;
    return c->ops->commit(c, msg);
}

int64_t tf_bus_consumer_missed(tf_bus_consumer *c)
{
    return c->ops->missed(c);
}

void tf_bus_consumer_wake(tf_bus_consumer *c)
{
    c->ops->wake(c);
}

int64_t tf_bus_consumer_lag(tf_bus_consumer *c)
{
    return c->ops->lag(c);
}

void tf_bus_consumer_close(tf_bus_consumer *c)
{
    if (c)
        c->ops->close(c);
}

int tf_bus_ready(void *bus, char *detail, size_t cap)
{
    tf_err e = {0};
    int rc = tf_bus_status(bus, &e);
    snprintf(detail, cap, "%s", rc == 0 ? tf_bus_kind(bus) : e.msg);
    return rc == 0;
}
