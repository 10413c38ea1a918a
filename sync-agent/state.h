/*
 * state — the agent's own files, beside config_path in the configuration
 * directory (agent.h: the web server's user cannot write there, so it can
 * neither forge the status the app's health path shows nor the record that
 * decides what counts as a rollback, nor hold the lock):
 *
 *   sync.lock          flock(LOCK_EX|LOCK_NB) for the life of the process: one
 *                      agent per configuration (a dead process releases it)
 *   instance-id        32 lower-case hex digits, random, created once
 *   sync-status.json   rewritten (atomically) after every sync attempt; read by
 *                      the app's health path: {"time", "result", "error",
 *                      "generation", "etag", "interval_s", "last_success"}
 *   sync-state.json    private: {"etag", "sha256", "generation"} of the
 *                      installed document, so that a restart (or the next cron
 *                      run) can send If-None-Match without re-parsing it
 *
 *   fd = state_lock(a, err, errlen);            keep fd open until exit
 *   state_instance_id(a, err, errlen);
 *   state_load(a);                              what is installed, last success
 *   ... after a sync: state_save(a) when the installed document or its ETag
 *   changed, state_write_status(a, now, ok) always
 *
 * Errors: 0 / -1 with a message in err, or logged (state_save,
 * state_write_status: a status file that cannot be written never stops a sync).
 */
#ifndef HOSTGATE_STATE_H
#define HOSTGATE_STATE_H

#include <stddef.h>
#include <time.h>

#include "sync-agent/agent.h"

/* Returns the locked descriptor, or -1 ("another agent holds '...'" when
 * another process has it). */
int state_lock(const struct agent *a, char *err, size_t errlen);
/* Removes temporaries that a killed agent left next to config_path, its
 * image and the state files. Only with the lock held. */
void state_clean(const struct agent *a);
/* Reads instance-id into a->instance_id, creating it if absent or
 * malformed. Returns 0 or -1. */
int state_instance_id(struct agent *a, char *err, size_t errlen);
/* Sets a->installed, generation, sha256, etag from config_path (parsed with
 * gw_load_buffer unless sync-state.json vouches for its exact bytes) and
 * a->last_success from the previous sync-status.json. Never fails: what cannot
 * be read is unknown (logged). */
void state_load(struct agent *a);
/* Writes sync-state.json. Returns 0 or -1 (logged). */
int state_save(const struct agent *a);
/* Writes sync-status.json for an attempt that ended at now. Returns 0 or -1 (logged). */
int state_write_status(const struct agent *a, time_t now, int ok);

#endif
