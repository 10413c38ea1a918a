/*
 * paths — the default file locations the app and the agent share
 * (../shared/spec/commands-and-files.md): the agent installs the document
 * where the app reads it, and both keep their state in one directory.
 */
#ifndef HOSTGATE_PATHS_H
#define HOSTGATE_PATHS_H

/* HOSTGATE_CONFIG / the agent's config_path when not set */
#define HOSTGATE_CONFIG_DEFAULT "/var/lib/hostgate/config/config.json"
/* HOSTGATE_STATE_DIR / the agent's state_dir when not set */
#define HOSTGATE_STATE_DIR_DEFAULT "/var/lib/hostgate/state"

#endif
