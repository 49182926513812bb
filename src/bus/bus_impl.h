/*
 * bus_impl.h - private: the backend table behind bus.h. Each backend embeds
 * struct tf_bus / struct tf_bus_consumer as its first member and fills in
 * its ops. Only bus*.c include this.
 */
#ifndef TF_BUS_IMPL_H
#define TF_BUS_IMPL_H

#include "bus/bus.h"

struct tf_bus_ops {
    const char *kind;
    void (*free)(tf_bus *b);
    int (*produce)(tf_bus *b, const char *topic, const char *key, size_t key_len,
                   const char *value, size_t value_len, uint64_t lsn, int64_t xid,
                   tf_bus_delivery_cb cb, void *ctx, void *opaque, int timeout_ms);
    int (*flush)(tf_bus *b, int timeout_ms);
    int (*status)(tf_bus *b, tf_err *e);
    tf_bus_consumer *(*subscribe)(tf_bus *b, const char *topic, const char *group, int flags,
                                  tf_bus_rebalance_cb rebalance, void *rebalance_ctx,
                                  tf_err *e);
};

struct tf_bus_consumer_ops {
    int (*poll)(tf_bus_consumer *c, int timeout_ms, const tf_bus_msg **out);
    int (*commit)(tf_bus_consumer *c, const tf_bus_msg *msg);
    int64_t (*missed)(tf_bus_consumer *c);
    void (*wake)(tf_bus_consumer *c);
    int64_t (*lag)(tf_bus_consumer *c);
    void (*close)(tf_bus_consumer *c);
};

struct tf_bus {
    const struct tf_bus_ops *ops;
};

struct tf_bus_consumer {
    const struct tf_bus_consumer_ops *ops;
};

tf_bus *tf_bus_embedded_new(const tf_config *cfg, tf_metrics *m, tf_err *e);
tf_bus *tf_bus_kafka_new(const tf_config *cfg, tf_metrics *m, tf_err *e);

/* 1 when topic is one of the TF_TOPIC_* names. */
int tf_bus_topic_known(const char *topic);

#endif
