/*
 * respond — the gateway's own answers (request.h).
 */
#include "fcgi-app/request.h"

#include <stdio.h>
#include <string.h>

int respond_write(struct request *req, const char *buf, size_t n)
{
	if (req->io->write(req->io, buf, n) != 0)
		return -1;
	req->bytes_out += (int64_t)n;
	return 0;
}

const char *http_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Unknown";
	}
}

void respond_json(struct request *req, int status, json_object *body)
{
	char head[512];
	size_t blen;
	const char *b = json_object_to_json_string_length(body, JSON_C_TO_STRING_PLAIN, &blen);
	int n;

	n = snprintf(head, sizeof(head),
		     "Status: %d %s\r\nContent-Type: application/json\r\n"
		     "Content-Length: %zu\r\nCache-Control: no-store\r\n"
		     "X-Request-Id: %s\r\n\r\n",
		     status, http_reason(status), blen, req->request_id);
	req->status = status;
	req->headers_sent = 1;
	if (respond_write(req, head, (size_t)n) != 0)
		return;
	if (strcmp(req->method, "HEAD") != 0)
		respond_write(req, b, blen);
}

void respond_error(struct request *req, int status, const char *message)
{
	json_object *o;

	if (!req->error)
		req->error = message;
	if (req->headers_sent) {
		req->io->aborted = 1;
		return;
	}
	o = json_object_new_object();
	json_object_object_add(o, "statusCode", json_object_new_int(status));
	json_object_object_add(o, "message", json_object_new_string(message));
	json_object_object_add(o, "requestId", json_object_new_string(req->request_id));
	respond_json(req, status, o);
	json_object_put(o);
}
