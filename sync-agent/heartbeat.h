/*
 * heartbeat — tells the management endpoint this gateway is alive and what it
 * runs: POST {endpoint}/gateways/{id}/heartbeat with
 *   {"instance", "hostname", "version", "config_generation", "config_etag",
 *    "last_sync", "last_error", "uptime_s"}
 * (shared/spec/management-protocol.md). Only called when conf.report is true.
 *
 *   heartbeat_send(a);
 *
 * Errors: -1 when the POST failed or was not answered 200/204; logged as a
 * warning, never fatal. 0 otherwise.
 */
#ifndef HOSTGATE_HEARTBEAT_H
#define HOSTGATE_HEARTBEAT_H

#include "sync-agent/agent.h"

/* Returns a new JSON text (free()), or NULL when out of memory. */
char *heartbeat_body(const struct agent *a);
int heartbeat_send(struct agent *a);

#endif
