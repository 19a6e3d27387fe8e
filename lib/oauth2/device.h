/*
 * device.h — the device authorization grant (RFC 8628): ask for a user
 * code, have the user enter it at the provider's page on any device,
 * and poll the token endpoint until they have.
 *
 *   st = oauth2_device_flow(&client, show, ctx, &tokens, err);
 *
 * `show` is called once with the codes (the caller prints the URL and the
 * code); the call then blocks, polling every `interval` seconds (more
 * after "slow_down"), until the user agrees (ISNAP_OK, tokens in *out),
 * refuses ("access_denied"), or the code expires ("expired_token" or
 * expires_in elapsed): ISNAP_EAUTH with the reason.
 */
#ifndef IMAPSNAP_OAUTH2_DEVICE_H
#define IMAPSNAP_OAUTH2_DEVICE_H

#include "error.h"
#include "oauth2/client.h"
#include "oauth2/reply.h"

typedef void (*oauth2_device_show_fn)(void *ctx,
				      const struct oauth2_device_codes *codes);

enum isnap_status oauth2_device_flow(const struct oauth2_client *c,
				     oauth2_device_show_fn show, void *ctx,
				     struct oauth2_tokens *out,
				     struct isnap_error *err);

#endif
