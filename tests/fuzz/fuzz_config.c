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
 *
 * The same bytes are also written to a file (under /dev/shm when it
 * exists) and read with config_load, as `imapsnap run --config` does:
 * mode 0600, it must give what config_parse gave (a NUL byte refused);
 * mode 0640, the same unless the file holds a password, which it must
 * then refuse; mode 0620 in a group that is no private group of ours
 * (users, staff, adm or mail, when there is one), always refused.
 */
#include <grp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_config: %s\n", what);
		abort();
	}
}

static char path[64];

static void cleanup(void)
{
	unlink(path);
}

/* A group that is no private group of ours, that the file can be given
 * (root may give it any; others only one of their own), or -1. */
static gid_t shared_group(void)
{
	static const char *const names[] = { "users", "staff", "adm", "mail" };
	static gid_t found = (gid_t)-2;

	if (found != (gid_t)-2)
		return found;
	found = (gid_t)-1;
	for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
		struct group *g = getgrnam(names[i]);
		if (g && !config_private_group(g->gr_gid, getuid()) &&
		    (getuid() == 0 || g->gr_gid == getgid())) {
			found = g->gr_gid;
			break;
		}
	}
	return found;
}

/* config_load of `text` written with `mode`; its status. */
static enum isnap_status load(const char *text, size_t size, mode_t mode,
			      gid_t gid, bool *holds_password, size_t *n)
{
	struct config cfg;
	struct isnap_error err = { 0 };
	enum isnap_status rc;
	FILE *f;

	if (!path[0]) {
		const char *base =
			access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
		int fd;
		snprintf(path, sizeof path, "%s/fuzz_config.XXXXXX", base);
		fd = mkstemp(path);
		if (fd < 0)
			abort();
		close(fd);
		atexit(cleanup);
	}
	f = fopen(path, "wb");
	if (!f || fwrite(text, 1, size, f) != size || fclose(f) != 0 ||
	    chmod(path, mode) != 0 || chown(path, getuid(), gid) != 0)
		abort();
	rc = config_load(path, "/home/fuzz", getuid(), &cfg, &err);
	*holds_password = false;
	*n = 0;
	if (rc == ISNAP_OK) {
		*holds_password = cfg.holds_password;
		*n = cfg.n;
		config_free(&cfg);
	} else {
		check(err.msg[0] != '\0', "config_load failed without a message");
		check(cfg.n == 0, "config_load failed and left accounts");
	}
	return rc;
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
	size_t parsed_n = rc == ISNAP_OK ? cfg.n : 0;
	bool parsed_password = rc == ISNAP_OK && cfg.holds_password;
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

	/* The file, as imapsnap run reads it. */
	if (size <= CONFIG_MAX_SIZE) {
		bool has_nul = memchr(data, '\0', size) != NULL, pw;
		size_t n;
		enum isnap_status lrc = load(text, size, 0600, getgid(), &pw, &n);
		if (has_nul || rc != ISNAP_OK) {
			check(lrc == ISNAP_EUSAGE,
			      "config_load accepted what config_parse refused, "
			      "or a NUL byte");
		} else {
			check(lrc == ISNAP_OK && n == parsed_n &&
				      pw == parsed_password,
			      "config_load and config_parse disagree");
			lrc = load(text, size, 0640, getgid(), &pw, &n);
			check((lrc == ISNAP_OK) == !parsed_password,
			      parsed_password
				      ? "a password in a file its group may "
					"read was accepted"
				      : "a file without a password refused "
					"for being readable");
		}
		if (shared_group() != (gid_t)-1)
			check(load(text, size, 0620, shared_group(), &pw,
				   &n) == ISNAP_EUSAGE,
			      "a group-writable config file was accepted");
	}

	/* The date form on its own. */
	if (size < 64 && config_parse_date(text, &t)) {
		check(strlen(text) == 10, "a date that is not YYYY-MM-DD");
		check(t % 86400 == 0, "a date that is not midnight UTC");
	}
	free(text);
	return 0;
}
