/*
 * jsonget — a member of a JSON object that must be a string.
 *
 *   const char *name = jget_str(obj, "name");	// NULL: absent, not a
 *						// string, or obj NULL
 *
 * The agent (Azure API Management's answers), the importer and the
 * management plane read untrusted JSON this way; the string belongs to obj.
 */
#ifndef HOSTGATE_JSONGET_H
#define HOSTGATE_JSONGET_H

#include <json-c/json.h>

const char *jget_str(json_object *o, const char *name);

#endif
