/*
 * fuzz_config.c — the accounts file parser (lib/config.c) against any
 * text, as a user's typo or a corrupted file may hold.
 *
 * fuzz-sources: lib/config.c lib/beneath.c lib/error.c
 * fuzz-packages: inih
 *
 * Checked beyond "no crash, no leak, no undefined behaviour": a failed
 * parse is ISNAP_EUSAGE with a message and an empty result; a successful
 * one gives accounts with a name, a URL and a destination (both required),
 * at most one credential source each, counts that match their lists, and
 * every account findable by its name.  The dates parser is exercised on
 * the same bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_config: %s\n", what);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config cfg;
	struct isnap_error err = { 0 };
	char *text = malloc(size + 1);
	int64_t t;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';

	memset(&cfg, 0xa5, sizeof cfg); /* must be set whatever happens */
	enum isnap_status rc = config_parse(text, "config", "/home/fuzz", &cfg,
					    &err);
	if (rc != ISNAP_OK) {
		check(rc == ISNAP_EUSAGE, "failure is not ISNAP_EUSAGE");
		check(err.msg[0] != '\0', "failure without a message");
		check(cfg.n == 0, "failure left accounts behind");
	} else {
		for (size_t i = 0; i < cfg.n; i++) {
			const struct config_account *a = &cfg.v[i];
			int sources = !!a->password + !!a->password_command +
				      !!a->password_file + !!a->password_env +
				      !!a->oauth2_token_command + !!a->oauth2;
			check(a->name != NULL, "an account without a name");
			check(a->url != NULL && a->destination != NULL,
			      "an account without url or destination");
			check(sources <= 1, "more than one credential source");
			check(a->n_include == 0 || a->include != NULL,
			      "include count without a list");
			check(a->n_exclude == 0 || a->exclude != NULL,
			      "exclude count without a list");
			for (size_t k = 0; k < a->n_include; k++)
				check(a->include[k] != NULL, "NULL include");
			for (size_t k = 0; k < a->n_exclude; k++)
				check(a->exclude[k] != NULL, "NULL exclude");
			check(config_find(&cfg, a->name) != NULL,
			      "an account cannot be found by its name");
		}
		config_free(&cfg);
	}

	/* The date form on its own. */
	if (size < 64 && config_parse_date(text, &t)) {
		check(strlen(text) == 10, "a date that is not YYYY-MM-DD");
		check(t % 86400 == 0, "a date that is not midnight UTC");
	}
	free(text);
	return 0;
}
