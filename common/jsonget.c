/* A string member of a JSON object. See jsonget.h. */
#include "common/jsonget.h"

const char *jget_str(json_object *o, const char *name)
{
	json_object *v;

	if (!o || !json_object_object_get_ex(o, name, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}
