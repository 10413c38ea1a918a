/*
 * admin — the admin API under /admin/v1/ (shared/spec/admin-api.md).
 * Every call needs "Authorization: Bearer TOKEN" (an admin token: app.h).
 */
#ifndef HOSTGATE_MANAGE_ADMIN_H
#define HOSTGATE_MANAGE_ADMIN_H

#include <stddef.h>

struct mapp;
struct mreq;
struct mresp;

/* seg: the path's segments after "admin/v1" (n of them). Sets the answer. */
void admin_handle(struct mapp *app, const struct mreq *req, struct mresp *resp, char **seg,
		  size_t n);

#endif
