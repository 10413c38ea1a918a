/*
 * ship — sends the metrics the app recorded (common/metrics.h, shared memory in
 * state_dir) to the management endpoint: POST {endpoint}/gateways/{id}/metrics,
 * one JSON document per flush (shared/spec/management-protocol.md, "Metrics").
 *
 *   metrics_flush(a);        every heartbeat_s in daemon mode, once with --once
 *
 * Called only when a->conf.report is true. What the flush may use: a->fetch
 * (fetch_post_json: Authorization and User-Agent already set, the reused curl
 * handle), agent_url(a, "metrics", ...), a->instance_id, a->conf.state_dir
 * (for the store, which it only reads and commits) and an outbox of unsent
 * windows in the agent's own directory (agent_file: metrics-outbox/ beside
 * config_path, bounded at 16 MiB, oldest dropped first and counted in
 * "dropped"), never followed through a symbolic link.
 *
 * Errors: -1 when something could not be shipped (logged as a warning, kept for
 * the next flush); never fatal. 0 otherwise.
 *
 * The outbox and its format are described at the top of ship.c.
 */
#ifndef HOSTGATE_SHIP_H
#define HOSTGATE_SHIP_H

#include "sync-agent/agent.h"

int metrics_flush(struct agent *a);

#endif
