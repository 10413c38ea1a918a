/*
 * tls-cgi — the least an HTTPS-forwarding CGI program can do, as bench/cgi's
 * floor for a one-shot HTTPS request: OpenSSL alone (the same static libssl
 * and libcrypto as hostgate-fcgi, no libcurl, no configuration), one TCP
 * connection, one full TLS handshake with the certificate verified against a
 * CA file and the upstream's IP address, one GET, and the upstream's body
 * written back as a CGI answer. Whatever a one-shot HTTPS CGI request of
 * hostgate costs above this is hostgate's; what this costs is OpenSSL's and
 * the process's.
 *
 *   TLS_CGI_PORT=PORT TLS_CGI_CA=ca.pem tls-cgi      (upstream 127.0.0.1:PORT)
 *
 * No request headers are forwarded and nothing is checked: do not use it for
 * anything but measuring. Exit 0 after a 200 answer from the upstream, 1
 * otherwise. Built by bench/cgi in its temp dir.
 */
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char request[] =
	"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";

int main(void)
{
	const char *port = getenv("TLS_CGI_PORT"), *ca = getenv("TLS_CGI_CA");
	struct sockaddr_in a = { .sin_family = AF_INET };
	static char buf[65536];
	size_t got = 0;
	SSL_CTX *ctx;
	SSL *s;
	char *body;
	int fd, n;

	if (!port || !ca)
		return 1;
	/* as hostgate-fcgi does: the exit frees OpenSSL's tables */
	OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL);
	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx || SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
		return 1;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	a.sin_port = htons((unsigned short)atoi(port));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
		return 1;
	s = SSL_new(ctx);
	if (!s || SSL_set_fd(s, fd) != 1 ||
	    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s), "127.0.0.1") != 1 ||
	    SSL_connect(s) != 1 ||
	    SSL_write(s, request, (int)sizeof(request) - 1) != (int)sizeof(request) - 1)
		return 1;
	while (got < sizeof(buf) - 1 &&
	       (n = SSL_read(s, buf + got, (int)(sizeof(buf) - 1 - got))) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	body = strstr(buf, "\r\n\r\n");
	if (strncmp(buf, "HTTP/1.1 200 ", 13) != 0 || !body)
		return 1;
	body += 4;
	printf("Status: 200 OK\r\nContent-Type: application/json\r\n\r\n%s", body);
	return fflush(stdout) == 0 ? 0 : 1;
}
