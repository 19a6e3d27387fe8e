/* config.c — see config.h.  The file's syntax is libinih's; the meaning of
 * each key is here. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <ini.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "beneath.h"

#define NAME_MAX_LEN 64

enum key_type {
	K_STR,     /* any text */
	K_PATH,    /* absolute, or "~/..." */
	K_GLOBS,   /* appended to a list; may repeat */
	K_DATE,
	K_BOOL,
	K_TIMEOUT,
	K_RETRIES,
	K_CONNECTIONS,
	K_TLS,
};

struct key {
	const char *name;
	enum key_type type;
	size_t off;       /* of the field in struct config_account */
	size_t count_off; /* K_GLOBS: of the count */
};

#define F(field) offsetof(struct config_account, field)
static const struct key keys[] = {
	{ "url", K_STR, F(url), 0 },
	{ "user", K_STR, F(user), 0 },
	{ "password", K_STR, F(password), 0 },
	{ "password_command", K_STR, F(password_command), 0 },
	{ "password_file", K_PATH, F(password_file), 0 },
	{ "password_env", K_STR, F(password_env), 0 },
	{ "oauth2_token_command", K_STR, F(oauth2_token_command), 0 },
	{ "oauth2", K_STR, F(oauth2), 0 },
	{ "oauth2_client_id", K_STR, F(oauth2_client_id), 0 },
	{ "oauth2_client_secret", K_STR, F(oauth2_client_secret), 0 },
	{ "oauth2_scope", K_STR, F(oauth2_scope), 0 },
	{ "oauth2_device_url", K_STR, F(oauth2_device_url), 0 },
	{ "oauth2_authorize_url", K_STR, F(oauth2_authorize_url), 0 },
	{ "oauth2_token_url", K_STR, F(oauth2_token_url), 0 },
	{ "oauth2_token_file", K_PATH, F(oauth2_token_file), 0 },
	{ "oauth2_cacert", K_PATH, F(oauth2_cacert), 0 },
	{ "oauth2_flow", K_STR, F(oauth2_flow), 0 },
	{ "destination", K_PATH, F(destination), 0 },
	{ "format", K_STR, F(format), 0 },
	{ "include", K_GLOBS, F(include), F(n_include) },
	{ "exclude", K_GLOBS, F(exclude), F(n_exclude) },
	{ "since", K_DATE, F(since), 0 },
	{ "before", K_DATE, F(before), 0 },
	{ "tls", K_TLS, F(tls), 0 },
	{ "cacert", K_PATH, F(cacert), 0 },
	{ "insecure", K_BOOL, F(insecure), 0 },
	{ "timeout", K_TIMEOUT, F(timeout_sec), 0 },
	{ "retries", K_RETRIES, F(retries), 0 },
	{ "connections", K_CONNECTIONS, F(connections), 0 },
	{ "metrics_file", K_PATH, F(metrics_file), 0 },
	{ "max_messages", K_STR, F(max_messages), 0 },
	{ "max_bytes", K_STR, F(max_bytes), 0 },
	{ "max_wait", K_STR, F(max_wait), 0 },
	{ "commit_interval", K_STR, F(commit_interval), 0 },
};
#undef F
#define NKEYS (sizeof keys / sizeof keys[0])

struct parser {
	const char *where, *home;
	struct config *cfg;
	struct config_account defaults;
	struct config_account *cur; /* NULL while reading the defaults */
	char section[NAME_MAX_LEN + 1];
	unsigned long seen;         /* bit i: keys[i] given in this section */
	/* The reader's position, so that messages can name the line. */
	const char *text;
	size_t pos;
	unsigned line;
	unsigned section_line;      /* of the last [NAME] read */
	bool indented;              /* the line starts with white space */
	struct isnap_error *err;
	bool failed;
};

static enum isnap_status oom(struct isnap_error *err)
{
	return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
}

static int fail_oom(struct parser *p)
{
	if (!p->failed)
		oom(p->err);
	p->failed = true;
	return 0;
}

static int fail(struct parser *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int fail(struct parser *p, const char *fmt, ...)
{
	char msg[ISNAP_ERROR_MAX];
	va_list ap;

	if (p->failed)
		return 0; /* the first error is the one to show */
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	isnap_fail(p->err, ISNAP_EUSAGE, "%s:%u: %s", p->where, p->line, msg);
	p->failed = true;
	return 0;
}

/* libinih reads lines through this, into a buffer of `num` bytes.  A line
 * that does not fit would be cut in two and the rest read as a line of its
 * own (a command cut short, a glob taken as a key): refuse it instead. */
static char *reader(char *str, int num, void *stream)
{
	struct parser *p = stream;
	const char *s = p->text + p->pos, *nl;
	size_t len;

	if (!*s || p->failed)
		return NULL;
	nl = strchr(s, '\n');
	len = nl ? (size_t)(nl - s) + 1 : strlen(s);
	p->line++;
	p->indented = *s == ' ' || *s == '\t';
	if (s[strspn(s, " \t")] == '[')
		p->section_line = p->line;
	if (len + 1 > (size_t)num) {
		fail(p, "the line is longer than %d characters", num - 2);
		return NULL;
	}
	memcpy(str, s, len);
	str[len] = '\0';
	p->pos += len;
	return str;
}

static bool is_secret(const struct key *k)
{
	return k->off == offsetof(struct config_account, password) ||
	       k->off == offsetof(struct config_account, oauth2_client_secret);
}

static char **glob_list(struct config_account *a, const struct key *k,
			size_t **count)
{
	*count = (size_t *)((char *)a + k->count_off);
	return *(char ***)((char *)a + k->off);
}

static int append(char ***list, size_t *n, const char *value)
{
	char **v = realloc(*list, (*n + 1) * sizeof *v);
	if (!v)
		return -1;
	*list = v;
	if (!(v[*n] = strdup(value)))
		return -1;
	(*n)++;
	return 0;
}

static void account_free(struct config_account *a)
{
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];
		if (k->type == K_GLOBS) {
			size_t *n;
			char **v = glob_list(a, k, &n);
			for (size_t j = 0; j < *n; j++)
				free(v[j]);
			free(v);
		} else if (k->type == K_STR || k->type == K_PATH) {
			char **s = (char **)((char *)a + k->off);
			if (*s && is_secret(k))
				explicit_bzero(*s, strlen(*s));
			free(*s);
		}
	}
	free(a->name);
	memset(a, 0, sizeof *a);
}

/* A new account starts as a deep copy of the defaults. */
static int account_copy(struct config_account *to,
			const struct config_account *from)
{
	*to = *from;
	to->name = NULL;
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];
		if (k->type == K_GLOBS) {
			size_t *n;
			char **v = glob_list(to, k, &n);
			size_t count = *n;
			*(char ***)((char *)to + k->off) = NULL;
			*n = 0;
			for (size_t j = 0; j < count; j++)
				if (append((char ***)((char *)to + k->off), n,
					   v[j]))
					return -1;
		} else if (k->type == K_STR || k->type == K_PATH) {
			char **s = (char **)((char *)to + k->off);
			if (*s && !(*s = strdup(*s)))
				return -1;
		}
	}
	return 0;
}

static bool valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > NAME_MAX_LEN || s[0] == '-')
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			 "0123456789._@-") == n;
}

static int begin_section(struct parser *p, const char *section)
{
	unsigned line = p->line;
	struct config *c = p->cfg;
	struct config_account *v;

	/* Messages about the section name the line of its header. */
	p->line = p->section_line;
	if (!valid_name(section))
		return fail(p,
			    "[%s]: an account name is 1 to %d letters, digits "
			    "and . _ @ - (not starting with -)",
			    section, NAME_MAX_LEN);
	if (config_find(c, section))
		return fail(p, "[%s] appears twice", section);
	v = realloc(c->v, (c->n + 1) * sizeof *v);
	if (!v)
		return fail_oom(p);
	c->v = v;
	p->cur = &v[c->n];
	memset(p->cur, 0, sizeof *p->cur);
	c->n++;
	if (account_copy(p->cur, &p->defaults) ||
	    !(p->cur->name = strdup(section)))
		return fail_oom(p);
	p->cur->line = p->line;
	snprintf(p->section, sizeof p->section, "%s", section);
	p->seen = 0;
	p->line = line;
	return 1;
}

static bool parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	for (size_t i = 0; i < 4; i++) {
		if (!strcasecmp(v, yes[i]))
			return *out = true, true;
		if (!strcasecmp(v, no[i]))
			return *out = false, true;
	}
	return false;
}

/* "~/x" → "$HOME/x"; anything else must be absolute already: a relative
 * path would depend on where cron or systemd happens to start us. */
static int set_path(struct parser *p, const struct key *k, const char *v,
		    char **out)
{
	if (v[0] == '~' && (v[1] == '/' || v[1] == '\0')) {
		size_t n;
		if (!p->home || p->home[0] != '/')
			return fail(p, "%s: ~ needs $HOME set to an absolute "
				    "path", k->name);
		n = strlen(p->home) + strlen(v);
		if (!(*out = malloc(n)))
			return fail_oom(p);
		snprintf(*out, n, "%s%s", p->home, v + 1);
		return 1;
	}
	if (v[0] != '/')
		return fail(p, "%s: give an absolute path or one starting with "
			    "~/ (not %s)", k->name, v);
	if (!(*out = strdup(v)))
		return fail_oom(p);
	return 1;
}

static int set_value(struct parser *p, struct config_account *a,
		     const struct key *k, const char *v)
{
	void *field = (char *)a + k->off;

	switch (k->type) {
	case K_STR:
	case K_PATH: {
		char **s = field;
		if (!*v)
			return fail(p, "%s: empty value", k->name);
		if (*s && is_secret(k))
			explicit_bzero(*s, strlen(*s));
		free(*s);
		*s = NULL;
		if (k->type == K_PATH)
			return set_path(p, k, v, s);
		if (!(*s = strdup(v)))
			return fail_oom(p);
		return 1;
	}
	case K_GLOBS: {
		size_t *n;
		glob_list(a, k, &n);
		if (!*v)
			return fail(p, "%s: empty glob", k->name);
		if (append(field, n, v))
			return fail_oom(p);
		return 1;
	}
	case K_DATE:
		if (!config_parse_date(v, field))
			return fail(p, "%s: %s is not a date (YYYY-MM-DD)",
				    k->name, v);
		return 1;
	case K_BOOL:
		if (!parse_bool(v, field))
			return fail(p, "%s: %s is not yes or no", k->name, v);
		return 1;
	case K_TIMEOUT: {
		char *end;
		long t;
		errno = 0;
		t = strtol(v, &end, 10);
		if (errno || end == v || *end || t < 1 || t > 86400)
			return fail(p, "%s: %s is not a number of seconds from "
				    "1 to 86400", k->name, v);
		*(long *)field = t;
		return 1;
	}
	case K_RETRIES: {
		char *end;
		long n;
		errno = 0;
		n = strtol(v, &end, 10);
		if (errno || end == v || *end || n < 0 || n > 100)
			return fail(p, "%s: %s is not a number from 0 to 100",
				    k->name, v);
		*(unsigned *)field = (unsigned)n;
		a->has_retries = true;
		return 1;
	}
	case K_CONNECTIONS: {
		char *end;
		long n;
		errno = 0;
		n = strtol(v, &end, 10);
		if (errno || end == v || *end || n < 1 || n > 64)
			return fail(p, "%s: %s is not a number from 1 to 64",
				    k->name, v);
		*(unsigned *)field = (unsigned)n;
		return 1;
	}
	case K_TLS:
		if (!strcmp(v, "none"))
			*(enum imap_tls *)field = IMAP_TLS_NONE;
		else if (!strcmp(v, "starttls") || !strcmp(v, "required"))
			*(enum imap_tls *)field = IMAP_TLS_REQUIRED;
		else
			return fail(p, "tls: %s: expected starttls or none",
				    v);
		return 1;
	}
	return 0;
}

static int handler(void *user, const char *section, const char *name,
		   const char *value)
{
	struct parser *p = user;
	const struct key *k = NULL;
	size_t i;

	if (p->failed)
		return 0;
	if (*section && (!p->cur || strcmp(section, p->section)) &&
	    !begin_section(p, section))
		return 0;
	for (i = 0; i < NKEYS && !k; i++)
		if (!strcmp(keys[i].name, name))
			k = &keys[i];
	if (!k)
		return fail(p, "unknown key '%s'", name);
	i = (size_t)(k - keys);
	if (p->seen & (1UL << i) && k->type != K_GLOBS) {
		if (p->indented)
			return fail(p, "a line starting with white space "
				    "continues the one before; only include "
				    "and exclude take several values");
		return fail(p, "%s given twice%s%s%s", name,
			    *section ? " in [" : "", section,
			    *section ? "]" : "");
	}
	p->seen |= 1UL << i;
	if (memchr(value, '\r', strlen(value)))
		return fail(p, "%s: carriage return in the value", name);
	return set_value(p, p->cur ? p->cur : &p->defaults, k, value);
}

static int check_account(struct parser *p, const struct config_account *a)
{
	int sources = !!a->password + !!a->password_command +
		      !!a->password_file + !!a->password_env +
		      !!a->oauth2_token_command + !!a->oauth2;
	bool oauth2_detail = a->oauth2_client_id || a->oauth2_client_secret ||
			     a->oauth2_scope || a->oauth2_device_url ||
			     a->oauth2_authorize_url || a->oauth2_token_url ||
			     a->oauth2_token_file || a->oauth2_cacert ||
			     a->oauth2_flow;

	p->line = a->line;
	if (!a->url)
		return fail(p, "[%s]: no url", a->name);
	if (strncmp(a->url, "imap://", 7) && strncmp(a->url, "imaps://", 8))
		return fail(p, "[%s]: url %s: it must start with imap:// or "
			    "imaps://", a->name, a->url);
	if (!a->destination)
		return fail(p, "[%s]: no destination", a->name);
	if (sources == 0)
		return fail(p, "[%s]: no credentials: give password_command, "
			    "password_file, password_env, password, oauth2 "
			    "or oauth2_token_command", a->name);
	if (sources > 1)
		return fail(p, "[%s]: give only one of password, "
			    "password_command, password_file, password_env, "
			    "oauth2 and oauth2_token_command", a->name);
	if (oauth2_detail && !a->oauth2)
		return fail(p, "[%s]: the oauth2_* keys need oauth2 = google, "
			    "microsoft or custom", a->name);
	if (a->since && a->before && a->since >= a->before)
		return fail(p, "[%s]: since must be a day before before",
			    a->name);
	for (const struct config_account *b = p->cfg->v; b < a; b++)
		if (!strcmp(a->destination, b->destination))
			return fail(p, "[%s] and [%s] have the same "
				    "destination %s; each account needs its "
				    "own", b->name, a->name, a->destination);
	return 1;
}

enum isnap_status config_parse(const char *text, const char *where,
			       const char *home, struct config *out,
			       struct isnap_error *err)
{
	struct parser p = {
		.where = where,
		.home = home,
		.cfg = out,
		.text = text,
		.err = err,
	};
	int rc;

	memset(out, 0, sizeof *out);
	rc = ini_parse_stream(reader, &p, handler, &p);
	if (rc == -2 && !p.failed) {
		oom(err);
		p.failed = true;
	}
	if (rc && !p.failed) {
		p.line = rc > 0 ? (unsigned)rc : p.line;
		fail(&p, "expected NAME = VALUE, [ACCOUNT] or a comment");
	}
	if (!p.failed && out->n == 0) {
		p.line = p.line ? p.line : 1;
		fail(&p, "no account: add a section such as [work] with url "
		     "and destination");
	}
	for (size_t i = 0; i < out->n && !p.failed; i++) {
		check_account(&p, &out->v[i]);
		if (out->v[i].password || out->v[i].oauth2_client_secret)
			out->holds_password = true;
	}
	account_free(&p.defaults);
	if (p.failed) {
		config_free(out);
		return err ? err->status : ISNAP_EUSAGE;
	}
	return ISNAP_OK;
}

bool config_private_group(gid_t gid, uid_t owner)
{
	struct passwd pw, *p = NULL;
	struct group gr, *g = NULL;
	char pbuf[4096], gbuf[16384];

	if (getpwuid_r(owner, &pw, pbuf, sizeof pbuf, &p) != 0 || !p ||
	    p->pw_gid != gid)
		return false;
	if (getgrgid_r(gid, &gr, gbuf, sizeof gbuf, &g) != 0 || !g)
		return false;
	return strcmp(g->gr_name, p->pw_name) == 0 &&
	       (!g->gr_mem || !g->gr_mem[0]);
}

enum isnap_status config_check_mode(const char *where, mode_t mode,
				    uid_t owner, uid_t me, bool private_group,
				    bool holds_password,
				    struct isnap_error *err)
{
	if (owner != me && owner != 0)
		return isnap_fail(err, ISNAP_EUSAGE,
				  "%s: refused: owned by uid %ld, not by you "
				  "or root",
				  where, (long)owner);
	if (mode & S_IWOTH)
		return isnap_fail(err, ISNAP_EUSAGE,
				  "%s: refused: anyone may write it, and so "
				  "make imapsnap run commands as you; run "
				  "chmod o-w %s",
				  where, where);
	if ((mode & S_IWGRP) && !private_group)
		return isnap_fail(err, ISNAP_EUSAGE,
				  "%s: refused: its group may write it, and so "
				  "make imapsnap run commands as you; run "
				  "chmod g-w %s",
				  where, where);
	if (holds_password && (mode & (S_IRGRP | S_IROTH)))
		return isnap_fail(err, ISNAP_EUSAGE,
				  "%s: refused: it holds a password and is "
				  "readable by %s; run chmod 600 %s, or use "
				  "password_command or password_file",
				  where,
				  (mode & S_IRGRP) && (mode & S_IROTH)
					  ? "group and others"
				  : (mode & S_IRGRP) ? "its group"
						     : "others",
				  where);
	return ISNAP_OK;
}

enum isnap_status config_load(const char *path, const char *home, uid_t me,
			      struct config *out, struct isnap_error *err)
{
	bool private_group;
	struct stat st;
	enum isnap_status rc;
	char *text;
	ssize_t n;
	size_t len = 0;
	int fd;

	memset(out, 0, sizeof *out);
	/* A FIFO given as the file must not block (beneath.h). */
	fd = beneath_open_top_file(path);
	if (fd < 0 && (errno == EISDIR || errno == ENXIO))
		return isnap_fail(err, ISNAP_EUSAGE, "%s: not a regular file",
				  path);
	if (fd < 0)
		return isnap_fail_errno(err, ISNAP_EUSAGE, "%s", path);
	if (fstat(fd, &st) < 0) {
		rc = isnap_fail_errno(err, ISNAP_EUSAGE, "%s", path);
		close(fd);
		return rc;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return isnap_fail(err, ISNAP_EUSAGE, "%s: not a regular file",
				  path);
	}
	if (st.st_size > CONFIG_MAX_SIZE) {
		close(fd);
		return isnap_fail(err, ISNAP_EUSAGE,
				  "%s: larger than %d bytes", path,
				  CONFIG_MAX_SIZE);
	}
	/* Checked before the password is even read, and again below once
	 * we know whether there is one. */
	private_group = (st.st_mode & S_IWGRP) &&
			config_private_group(st.st_gid, st.st_uid);
	rc = config_check_mode(path, st.st_mode, st.st_uid, me, private_group,
			       false, err);
	if (rc) {
		close(fd);
		return rc;
	}
	text = malloc(CONFIG_MAX_SIZE + 1);
	if (!text) {
		close(fd);
		return oom(err);
	}
	while (len < CONFIG_MAX_SIZE &&
	       (n = read(fd, text + len, CONFIG_MAX_SIZE - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = isnap_fail_errno(err, ISNAP_EUSAGE, "%s", path);
			goto out;
		}
		len += (size_t)n;
	}
	text[len] = '\0';
	if (strlen(text) != len) {
		rc = isnap_fail(err, ISNAP_EUSAGE, "%s: holds a NUL byte; not "
				"a text file", path);
		goto out;
	}
	rc = config_parse(text, path, home, out, err);
	if (!rc)
		rc = config_check_mode(path, st.st_mode, st.st_uid, me,
				       private_group, out->holds_password, err);
	if (rc)
		config_free(out);
out:
	explicit_bzero(text, len);
	free(text);
	close(fd);
	return rc;
}

const struct config_account *config_find(const struct config *c,
					 const char *name)
{
	for (size_t i = 0; i < c->n; i++)
		if (c->v[i].name && !strcmp(c->v[i].name, name))
			return &c->v[i];
	return NULL;
}

void config_free(struct config *c)
{
	for (size_t i = 0; i < c->n; i++)
		account_free(&c->v[i]);
	free(c->v);
	memset(c, 0, sizeof *c);
}

bool config_default_path(const char *xdg, const char *home, char *buf,
			 size_t size)
{
	int n;

	if (xdg && xdg[0] == '/')
		n = snprintf(buf, size, "%s/imapsnap/config", xdg);
	else if (home && home[0] == '/')
		n = snprintf(buf, size, "%s/.config/imapsnap/config", home);
	else
		return false;
	return n > 0 && (size_t)n < size;
}

bool config_parse_date(const char *s, int64_t *out)
{
	struct tm tm = { 0 }, back;
	int y, m, d, used = 0;
	time_t t;

	if (strlen(s) != 10 || sscanf(s, "%4d-%2d-%2d%n", &y, &m, &d, &used) != 3 ||
	    used != 10 || s[4] != '-' || s[7] != '-' ||
	    strspn(s, "0123456789-") != 10)
		return false;
	tm.tm_year = y - 1900;
	tm.tm_mon = m - 1;
	tm.tm_mday = d;
	t = timegm(&tm);
	/* timegm normalises 2023-02-29 to March 1st: refuse what moved. */
	if (t == (time_t)-1 || !gmtime_r(&t, &back) || back.tm_year != y - 1900 ||
	    back.tm_mon != m - 1 || back.tm_mday != d || y < 1970)
		return false;
	*out = (int64_t)t;
	return true;
}
