/*
 * config.h — the accounts file of `imapsnap run` (docs/imapsnap.conf.5).
 *
 * INI-style, read with libinih: keys before the first section are defaults
 * for every account; each [NAME] section is one account.
 *
 *   timeout = 120
 *   retries = 5
 *   connections = 8
 *   exclude = Trash
 *
 *   [work]
 *   url = imaps://imap.example.org
 *   user = me@example.org
 *   password_command = pass show mail/work
 *   destination = ~/backup/mail/work
 *   include = INBOX
 *   include = Archive*
 *
 * Use:
 *   struct config cfg;
 *   if (config_load(path, getenv("HOME"), getuid(), &cfg, err)) ...;
 *   for (size_t i = 0; i < cfg.n; i++) ... cfg.v[i] ...;
 *   config_free(&cfg);
 *
 * Every failure is ISNAP_EUSAGE (or ISNAP_ENOMEM) with a message that
 * names the file (or the `where` given) and the line.  Nothing here prints, prompts or reads a
 * password: the account only says where the password is to come from.
 */
#ifndef IMAPSNAP_CONFIG_H
#define IMAPSNAP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "imap/session.h"

struct config_account {
	char *name;        /* the section name */
	unsigned line;     /* of its [NAME] line, for messages */
	char *url;         /* required: imap://... or imaps://... */
	char *user;
	/* At most one of the five credential sources is set. */
	char *password;    /* inline: only in a file no one else can read */
	char *password_command;
	char *password_file;
	char *password_env; /* the name of an environment variable */
	char *oauth2_token_command;
	/* Built-in OAuth2 (imapsnap auth): `oauth2` names the provider
	 * (google, microsoft, custom) and counts as the credential source;
	 * the other oauth2_* keys need it. */
	char *oauth2;
	char *oauth2_client_id;
	char *oauth2_client_secret; /* like password: a private file only */
	char *oauth2_scope;
	char *oauth2_device_url;
	char *oauth2_authorize_url;
	char *oauth2_token_url;
	char *oauth2_token_file;
	char *oauth2_cacert;
	char *oauth2_flow;
	char *destination; /* required */
	char *format;      /* NULL for the default */
	char **include;    /* fnmatch(3) globs on decoded folder names */
	size_t n_include;
	char **exclude;
	size_t n_exclude;
	int64_t since, before; /* seconds since the epoch; 0 for none */
	enum imap_tls tls;
	char *cacert;
	bool insecure;
	long timeout_sec;  /* 0 for the default */
	bool has_retries;  /* retries was given */
	unsigned retries;  /* reconnections per folder, 0 to 100 */
	unsigned connections; /* sessions at once, 1 to 64; 0: the default */
	char *metrics_file; /* where `run` reports this account; NULL: nowhere */
	/* Budget and throttling (as the options --max-messages, --max-bytes,
	 * --max-wait, which check them); NULL when not given. */
	char *max_messages, *max_bytes, *max_wait;
	/* Seconds between commits by time (as --commit-interval); NULL when
	 * not given. */
	char *commit_interval;
};

struct config {
	struct config_account *v;
	size_t n;
	bool holds_password; /* an inline password or OAuth2 client secret */
};

/* Parse `text`.  `where` names the source in messages (a path, or
 * "config"); `home` is what a leading "~/" in a path stands for (NULL:
 * such paths are an error).  On failure *out is empty. */
enum isnap_status config_parse(const char *text, const char *where,
			       const char *home, struct config *out,
			       struct isnap_error *err);

/* Whether a file with this mode and owner may be used by user `me`: its
 * owner must be `me` or root, no one else may write it (a password_command
 * in it runs as `me`, often root from cron), and when it holds a password
 * no one else may read it either.  Group write is allowed only when
 * `private_group`: the file's group is its owner's own user private group
 * (config_private_group), which lets no one else in. */
enum isnap_status config_check_mode(const char *where, mode_t mode,
				    uid_t owner, uid_t me, bool private_group,
				    bool holds_password,
				    struct isnap_error *err);

/* Whether group `gid` is the user private group of `owner` (Debian's
 * default): the owner's primary group, named as the owner, with no other
 * members listed. */
bool config_private_group(gid_t gid, uid_t owner);

/* Read, parse and check the file at `path` (at most CONFIG_MAX_SIZE). */
#define CONFIG_MAX_SIZE (1024 * 1024)
enum isnap_status config_load(const char *path, const char *home, uid_t me,
			      struct config *out, struct isnap_error *err);

/* The account called `name`, or NULL. */
const struct config_account *config_find(const struct config *c,
					 const char *name);

void config_free(struct config *c);

/* $XDG_CONFIG_HOME/imapsnap/config, or ~/.config/imapsnap/config when
 * XDG_CONFIG_HOME is unset, empty or relative (as the XDG Base Directory
 * specification says).  Pass getenv()'s answers.  Returns false when
 * neither variable helps or `size` is too small. */
bool config_default_path(const char *xdg_config_home, const char *home,
			 char *buf, size_t size);

/* "2024-02-01" → midnight UTC of that day.  Returns false for anything
 * else (other forms, impossible dates such as 2023-02-29). */
bool config_parse_date(const char *s, int64_t *out);

#endif
