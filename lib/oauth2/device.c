/*
 * device.c — see device.h.  RFC 8628 §3.1–§3.5.
 */
#include "oauth2/device.h"

#include <errno.h>
#include <string.h>
#include <time.h>

static void sleep_seconds(int64_t s)
{
	struct timespec ts = { .tv_sec = (time_t)s };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

enum isnap_status oauth2_device_flow(const struct oauth2_client *c,
				     oauth2_device_show_fn show, void *ctx,
				     struct oauth2_tokens *out,
				     struct isnap_error *err)
{
	struct oauth2_device_codes d;
	enum isnap_status st;
	int64_t interval;
	time_t deadline;

	memset(out, 0, sizeof *out);
	st = oauth2_device_start(c, &d, err);
	if (st)
		return st;
	show(ctx, &d);
	interval = d.interval;
	deadline = time(NULL) + (time_t)d.expires_in;
	for (;;) {
		if (time(NULL) + interval > deadline) {
			st = isnap_fail(err, ISNAP_EAUTH, "the code %s expired "
					"before it was entered; run again",
					d.user_code);
			break;
		}
		sleep_seconds(interval);
		st = oauth2_device_poll(c, d.device_code, out, err);
		if (st != ISNAP_EAUTH || !out->error)
			break;
		if (!strcmp(out->error, "authorization_pending")) {
			oauth2_tokens_free(out);
			continue;
		}
		if (!strcmp(out->error, "slow_down")) {
			interval += 5; /* §3.5 */
			oauth2_tokens_free(out);
			continue;
		}
		if (!strcmp(out->error, "access_denied"))
			st = isnap_fail(err, ISNAP_EAUTH, "the authorisation "
					"was refused at the provider's page");
		else if (!strcmp(out->error, "expired_token"))
			st = isnap_fail(err, ISNAP_EAUTH, "the code %s expired "
					"before it was entered; run again",
					d.user_code);
		break;
	}
	if (st)
		oauth2_tokens_free(out);
	oauth2_device_codes_free(&d);
	return st;
}
