#include "manage/ui.h"

#include "manage/app.h"

void ui_handle(struct mapp *app, const struct mreq *req, struct mresp *resp, char **seg,
	       size_t n)
{
	(void)app;
	(void)req;
	(void)seg;
	(void)n;
	app_error(resp, 404, "the dashboard is not built yet");
}
