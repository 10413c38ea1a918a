/*
 * ui — the dashboard under /ui/ (admin-api.md): login with an admin token
 * into an HttpOnly SameSite=Strict session, then gateways with their state,
 * APIs and the gateways serving them, and traffic charts drawn as SVG on
 * the server. No script, no build step, nothing from elsewhere: every page
 * is HTML made here with every value escaped; every form that changes
 * state carries the session's CSRF token.
 */
#ifndef HOSTGATE_MANAGE_UI_H
#define HOSTGATE_MANAGE_UI_H

#include <stddef.h>

struct mapp;
struct mreq;
struct mresp;

/* seg: the path's segments after "ui". Sets the whole answer. */
void ui_handle(struct mapp *app, const struct mreq *req, struct mresp *resp, char **seg,
	       size_t n);

#endif
