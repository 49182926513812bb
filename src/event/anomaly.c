/* anomaly.c - the anomaly kinds' wire names (see anomaly.h). */
#include "event/anomaly.h"

#include <string.h>

static const char *const anom_names[TF_ANOM_NTYPES] = {"PRICE_SPIKE", "RAPID_MOVE", "VOLUME_SPIKE",
                                                       "TRADE_BURST", "OFF_VWAP"};

const char *tf_anomaly_name(tf_anomaly_type t)
{
    if ((int)t < 0 || t >= TF_ANOM_NTYPES) return "UNKNOWN";
    return anom_names[t];
}

int tf_anomaly_from_name(const char *s)
{
    if (!s) return -1;
    for (int i = 0; i < TF_ANOM_NTYPES; i++)
        if (strcmp(s, anom_names[i]) == 0) return i;
    return -1;
}
