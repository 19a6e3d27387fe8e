/*
 * provider.c — see provider.h.  Endpoints and scopes from the providers'
 * documentation:
 *
 * Google: IMAP needs the scope https://mail.google.com/, which Google's
 * device flow does not grant ("TV and limited-input devices" scopes
 * exclude Gmail), so the preset uses the loopback redirect with PKCE.
 * Without access_type=offline no refresh token is issued, and
 * prompt=consent makes Google issue one again on a second authorisation.
 *
 * Microsoft (Entra ID, "common" tenant): the device flow works for IMAP;
 * offline_access is the scope that brings a refresh token, and refresh
 * tokens are rotated on every refresh (access.c writes the new one).
 */
#include "oauth2/provider.h"

#include <stddef.h>
#include <string.h>

static const struct oauth2_provider providers[] = {
	{
		.name = "google",
		.device_url = "https://oauth2.googleapis.com/device/code",
		.authorize_url = "https://accounts.google.com/o/oauth2/v2/auth",
		.token_url = "https://oauth2.googleapis.com/token",
		.scope = "https://mail.google.com/",
		.authorize_extra = "access_type=offline&prompt=consent",
		.flow = OAUTH2_FLOW_LOOPBACK,
	},
	{
		.name = "microsoft",
		.device_url = "https://login.microsoftonline.com/common/oauth2/"
			      "v2.0/devicecode",
		.authorize_url = "https://login.microsoftonline.com/common/"
				 "oauth2/v2.0/authorize",
		.token_url = "https://login.microsoftonline.com/common/oauth2/"
			     "v2.0/token",
		.scope = "https://outlook.office.com/IMAP.AccessAsUser.All "
			 "offline_access",
		.flow = OAUTH2_FLOW_DEVICE,
	},
};

const struct oauth2_provider *oauth2_provider_find(const char *name)
{
	for (size_t i = 0; i < sizeof providers / sizeof *providers; i++)
		if (!strcmp(providers[i].name, name))
			return &providers[i];
	return NULL;
}

const char *oauth2_provider_names(void)
{
	return "google, microsoft";
}
