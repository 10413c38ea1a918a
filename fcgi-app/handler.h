/*
 * handler — one API call, from the request variables to the last byte of the
 * answer: the health path, routing, request checks, forwarding, JSON errors.
 *
 *   app_init(&app) once per process (after fork), then for every request
 *   handle_request(&app, io); app_release(&app) at exit.
 *
 * The request path never exits and never trusts its input: every failure is a
 * JSON error with the right status (config-v1.md, "Errors the gateway itself
 * returns") and an X-Request-Id, or, once the answer has started, an aborted
 * response (io->aborted).
 */
#ifndef HOSTGATE_HANDLER_H
#define HOSTGATE_HANDLER_H

#include "fcgi-app/request.h"

/* Sets up the process-wide state from the environment. Returns 0 or -1. */
int app_init(struct app *app, char **envp);
void app_release(struct app *app);
void handle_request(struct app *app, struct io *io);
/* For a process that serves many requests at once (front.h), about once a
 * second on a fiber of its own, whether requests come or not: the
 * configuration's check (reload_tick) and, with gateway.counters on Redis,
 * a PING, so that every process follows a new document and a Redis that
 * went away or came back by itself. Returns the ms until the next call is
 * due. */
int64_t app_tick(struct app *app);

#endif
