/*
 * hostgate-sync — keeps a gateway's configuration in step with its management
 * endpoint (shared/spec/management-protocol.md, commands-and-files.md).
 *
 *   hostgate-sync [-c FILE] [--once] [--allow-rollback] [--version]
 *
 * Daemon mode (the default) runs in the foreground: a sync every interval_s
 * (backing off on failure), a heartbeat and a metrics flush every heartbeat_s;
 * SIGTERM/SIGINT stop it between steps or abort a transfer in flight, SIGHUP
 * syncs now. --once does one sync, one heartbeat, one metrics flush, silent on
 * success. Exit: 0 the installed configuration is current, 1 the sync failed,
 * 2 the agent cannot run.
 *
 * Signals stay blocked for the whole run and are taken with sigtimedwait(), so
 * no handler ever runs in the middle of an install; a transfer polls for them
 * (sigpending) to stop promptly.
 */
#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "sync-agent/agent.h"
#include "sync-agent/heartbeat.h"
#include "sync-agent/ship.h"
#include "sync-agent/state.h"
#include "sync-agent/sync.h"
#include "sync-agent/verify.h"

#define DEFAULT_CONF "/etc/hostgate/agent.conf"
#define BACKOFF_CAP_S 300

static struct agent agent;
static sigset_t stop_signals;	/* SIGTERM, SIGINT, SIGHUP: blocked throughout */

static void usage(void)
{
	fprintf(stderr, "usage: hostgate-sync [-c FILE] [--once] [--allow-rollback] "
		"[--version]\n");
	exit(2);
}

/* Releases everything that holds a secret, then exits. */
static void finish(int code) __attribute__((noreturn));
static void finish(int code)
{
	fetch_release(&agent.fetch);
	verify_free_key(agent.key);
	agentconf_release(&agent.conf);
	curl_global_cleanup();
	exit(code);
}

static void die(const char *msg) __attribute__((noreturn));
static void die(const char *msg)
{
	log_err("%s", msg);
	finish(2);
}

/* Polled by transfers: true once SIGTERM or SIGINT is pending. */
static int should_stop(void)
{
	sigset_t pending;

	if (sigpending(&pending) < 0)
		return 0;
	return sigismember(&pending, SIGTERM) == 1 || sigismember(&pending, SIGINT) == 1;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Full jitter: a uniform delay in [1 s, min(cap, interval * 2^(failures-1))]. */
static int64_t backoff_ms(long interval_s, unsigned failures)
{
	int64_t ceil_ms = (int64_t)interval_s * 1000;
	uint32_t rnd = 0;

	for (unsigned i = 1; i < failures && ceil_ms < BACKOFF_CAP_S * 1000; i++)
		ceil_ms *= 2;
	if (ceil_ms > BACKOFF_CAP_S * 1000)
		ceil_ms = BACKOFF_CAP_S * 1000;
	if (ceil_ms <= 1000)
		return 1000;
	if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		rnd = (uint32_t)now_ms();
	return 1000 + (int64_t)(rnd % (uint32_t)(ceil_ms - 999));
}

/* Waits until deadline (monotonic ms) or a signal. Returns the signal, or 0. */
static int wait_until(int64_t deadline)
{
	int64_t left = deadline - now_ms();
	struct timespec ts;
	int sig;

	if (left < 0)
		left = 0;	/* still poll: a signal may be pending */
	ts.tv_sec = (time_t)(left / 1000);
	ts.tv_nsec = (long)(left % 1000) * 1000000;
	sig = sigtimedwait(&stop_signals, NULL, &ts);
	return sig > 0 ? sig : 0;
}

static void report(struct agent *a)
{
	heartbeat_send(a);
	metrics_flush(a);
}

static int run_once(struct agent *a)
{
	enum sync_result r = sync_run(a);

	if (r != SYNC_STOPPED && a->conf.report && !should_stop())
		report(a);
	return r == SYNC_INSTALLED || r == SYNC_UNCHANGED ? 0 : 1;
}

static int run_daemon(struct agent *a)
{
	int64_t next_sync = now_ms(), next_report = next_sync;
	unsigned failures = 0;

	log_info("syncing '%s' for gateway '%s' every %lds",
		 a->conf.source == AGENTCONF_SRC_AZURE_APIM ? a->conf.apim_service :
		 a->conf.endpoint, a->conf.gateway_id, a->conf.interval_s);
	for (;;) {
		int sig;

		if (now_ms() >= next_sync) {
			enum sync_result r = sync_run(a);

			if (r == SYNC_STOPPED)
				break;
			if (r == SYNC_FAILED) {
				int64_t delay = backoff_ms(a->conf.interval_s, ++failures);

				log_info("next attempt in %llds", (long long)(delay / 1000));
				next_sync = now_ms() + delay;
			} else {
				failures = 0;
				next_sync = now_ms() + (int64_t)a->conf.interval_s * 1000;
			}
		}
		if (a->conf.report && now_ms() >= next_report && !should_stop()) {
			report(a);
			next_report = now_ms() + (int64_t)a->conf.heartbeat_s * 1000;
		}
		sig = wait_until(a->conf.report && next_report < next_sync ? next_report :
				 next_sync);
		if (sig == SIGTERM || sig == SIGINT)
			break;
		if (sig == SIGHUP)
			next_sync = now_ms();
	}
	log_info("stopping");
	return 0;
}

int main(int argc, char **argv)
{
	const char *conf_path = DEFAULT_CONF;
	int once = 0, rc, lock_fd;
	char err[1024];

	log_init("hostgate-sync", LOG_TO_STDERR);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			conf_path = argv[++i];
		else if (strcmp(argv[i], "--once") == 0)
			once = 1;
		else if (strcmp(argv[i], "--allow-rollback") == 0)
			agent.allow_rollback = 1;
		else if (strcmp(argv[i], "--version") == 0) {
			printf("hostgate-sync %s\n", HOSTGATE_VERSION);
			return 0;
		} else
			usage();
	}
	if (agent.allow_rollback && !once)
		fatal("'--allow-rollback' needs '--once' (an admin's deliberate, single install)");

	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGTERM);
	sigaddset(&stop_signals, SIGINT);
	sigaddset(&stop_signals, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &stop_signals, NULL) < 0)
		fatal("cannot block signals: %s", strerror(errno));
	signal(SIGPIPE, SIG_IGN);
	clock_gettime(CLOCK_MONOTONIC, &agent.started);

	if (agentconf_load(&agent.conf, conf_path, err, sizeof(err)) < 0) {
		log_err("%s", err);
		agentconf_release(&agent.conf);
		return 2;
	}
	if (agent.conf.log_syslog)
		log_init("hostgate-sync", LOG_TO_SYSLOG);
	if (once)
		log_set_level(LOG_LEVEL_WARN);	/* silent on success: cron mails output */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		die("cannot initialise libcurl");
	if (agent.conf.source == AGENTCONF_SRC_AZURE_APIM) {
		if (agentconf_read_client_secret(&agent.conf, err, sizeof(err)) < 0)
			die(err);
	} else if (agentconf_read_token(&agent.conf, err, sizeof(err)) < 0) {
		die(err);
	}
	if (agent.conf.public_key_file) {
		agent.key = verify_load_key(agent.conf.public_key_file, err, sizeof(err));
		if (!agent.key)
			die(err);
	}
	if (agent.conf.ca_file && access(agent.conf.ca_file, R_OK) < 0) {
		snprintf(err, sizeof(err), "cannot read 'ca_file' '%s': %s", agent.conf.ca_file,
			 strerror(errno));
		die(err);
	}
	lock_fd = state_lock(&agent, err, sizeof(err));
	if (lock_fd < 0)
		die(err);
	/* with the lock held, temporaries of a killed agent can go */
	state_clean(&agent);
	if (state_instance_id(&agent, err, sizeof(err)) < 0)
		die(err);
	if (fetch_init(&agent.fetch, &agent.conf, should_stop) < 0)
		die("cannot set up the http client");
	state_load(&agent);

	rc = once ? run_once(&agent) : run_daemon(&agent);
	close(lock_fd);
	finish(rc);
}
