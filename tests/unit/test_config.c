/* Unit tests for lib/config.c. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

static struct config cfg;
static struct isnap_error err;

static void reset(void)
{
	memset(&cfg, 0, sizeof cfg);
	isnap_error_clear(&err);
}

static void cleanup(void)
{
	config_free(&cfg);
}

TestSuite(config, .init = reset, .fini = cleanup);

static enum isnap_status parse(const char *text)
{
	config_free(&cfg);
	isnap_error_clear(&err);
	return config_parse(text, "cfg", "/home/me", &cfg, &err);
}

/* Parsing must fail with a message holding `want`. */
static void refused(const char *text, const char *want)
{
	enum isnap_status st = parse(text);
	cr_assert_eq(st, ISNAP_EUSAGE, "accepted:\n%s", text);
	cr_assert_eq(err.status, ISNAP_EUSAGE);
	cr_assert_not_null(strstr(err.msg, want), "message '%s' lacks '%s'",
			   err.msg, want);
	cr_assert_eq(cfg.n, 0, "a refused config must come back empty");
	cr_assert_null(cfg.v);
}

#define ACCOUNT "[a]\nurl = imaps://h\ndestination = /b/a\n"
#define CRED "password_command = pass show a\n"

Test(config, one_account_every_key)
{
	cr_assert_eq(parse("# comment\n; comment too\n"
			   "[work]\n"
			   "url = imaps://imap.example.org:993\n"
			   "user = me@example.org\n"
			   "password_command = pass show mail/work\n"
			   "destination = /srv/backup/work\n"
			   "format = maildir\n"
			   "include = INBOX\n"
			   "include = Archive/*\n"
			   "exclude = Trash\n"
			   "since = 2024-01-01\n"
			   "before = 2024-03-01\n"
			   "tls = none\n"
			   "cacert = /etc/ssl/ca.pem\n"
			   "insecure = yes\n"
			   "timeout = 120\n"
			   "retries = 0\n"),
		     ISNAP_OK, "%s", err.msg);
	cr_assert_eq(cfg.n, 1);
	const struct config_account *a = &cfg.v[0];
	cr_assert_str_eq(a->name, "work");
	cr_assert_eq(a->line, 3, "the line of [work]");
	cr_assert_str_eq(a->url, "imaps://imap.example.org:993");
	cr_assert_str_eq(a->user, "me@example.org");
	cr_assert_str_eq(a->password_command, "pass show mail/work");
	cr_assert_null(a->password);
	cr_assert_null(a->password_file);
	cr_assert_null(a->password_env);
	cr_assert_null(a->oauth2_token_command);
	cr_assert_str_eq(a->destination, "/srv/backup/work");
	cr_assert_str_eq(a->format, "maildir");
	cr_assert_eq(a->n_include, 2);
	cr_assert_str_eq(a->include[0], "INBOX");
	cr_assert_str_eq(a->include[1], "Archive/*");
	cr_assert_eq(a->n_exclude, 1);
	cr_assert_str_eq(a->exclude[0], "Trash");
	cr_assert_eq(a->since, 1704067200);
	cr_assert_eq(a->before, 1709251200);
	cr_assert_eq(a->tls, IMAP_TLS_NONE);
	cr_assert_str_eq(a->cacert, "/etc/ssl/ca.pem");
	cr_assert(a->insecure);
	cr_assert_eq(a->timeout_sec, 120);
	cr_assert(a->has_retries);
	cr_assert_eq(a->retries, 0);
	cr_assert_not(cfg.holds_password);
	cr_assert_eq(config_find(&cfg, "work"), a);
	cr_assert_null(config_find(&cfg, "home"));
}

Test(config, unset_keys_are_empty)
{
	cr_assert_eq(parse(ACCOUNT CRED), ISNAP_OK, "%s", err.msg);
	const struct config_account *a = &cfg.v[0];
	cr_assert_null(a->user);
	cr_assert_null(a->format);
	cr_assert_null(a->cacert);
	cr_assert_eq(a->n_include + a->n_exclude, 0);
	cr_assert_eq(a->since + a->before, 0);
	cr_assert_eq(a->tls, IMAP_TLS_REQUIRED);
	cr_assert_not(a->insecure);
	cr_assert_eq(a->timeout_sec, 0);
	cr_assert_not(a->has_retries);
}

Test(config, defaults_apply_to_every_account)
{
	cr_assert_eq(parse("timeout = 30\n"
			   "retries = 7\n"
			   "exclude = Trash\n"
			   "cacert = ~/ca.pem\n"
			   "[one]\n"
			   "url = imap://h1\ndestination = /b/1\n" CRED
			   "exclude = Junk\n"
			   "[two]\n"
			   "url = imap://h2\ndestination = /b/2\n" CRED
			   "timeout = 5\n"
			   "cacert = /other.pem\n"),
		     ISNAP_OK, "%s", err.msg);
	cr_assert_eq(cfg.n, 2);
	cr_assert_eq(cfg.v[0].timeout_sec, 30);
	cr_assert_eq(cfg.v[1].timeout_sec, 5, "an account overrides");
	cr_assert(cfg.v[0].has_retries && cfg.v[1].has_retries);
	cr_assert_eq(cfg.v[1].retries, 7);
	cr_assert_str_eq(cfg.v[0].cacert, "/home/me/ca.pem");
	cr_assert_str_eq(cfg.v[1].cacert, "/other.pem");
	/* Globs add to the defaults' */
	cr_assert_eq(cfg.v[0].n_exclude, 2);
	cr_assert_str_eq(cfg.v[0].exclude[0], "Trash");
	cr_assert_str_eq(cfg.v[0].exclude[1], "Junk");
	cr_assert_eq(cfg.v[1].n_exclude, 1);
	cr_assert_str_eq(cfg.v[1].exclude[0], "Trash");
	/* Deep copies: the two accounts do not share strings. */
	cr_assert_neq(cfg.v[0].exclude[0], cfg.v[1].exclude[0]);
}

Test(config, continuation_lines_add_globs)
{
	cr_assert_eq(parse(ACCOUNT CRED "include = INBOX\n"
			   "  Sent\n"
			   "\tArchive/*\n"),
		     ISNAP_OK, "%s", err.msg);
	cr_assert_eq(cfg.v[0].n_include, 3);
	cr_assert_str_eq(cfg.v[0].include[1], "Sent");
	cr_assert_str_eq(cfg.v[0].include[2], "Archive/*");
}

Test(config, continuation_of_a_single_value_is_refused)
{
	refused(ACCOUNT CRED "user = me\n  more\n",
		"cfg:6: a line starting with white space continues");
}

Test(config, inline_comment_and_whitespace)
{
	cr_assert_eq(parse("[a]\n  url   =   imaps://h   ; the server\n"
			   "destination=/b/a\n"
			   "password_command = a;b\n"),
		     ISNAP_OK, "%s", err.msg);
	cr_assert_str_eq(cfg.v[0].url, "imaps://h");
	cr_assert_str_eq(cfg.v[0].password_command, "a;b",
			 "';' without a space before it is no comment");
}

Test(config, every_credential_source)
{
	static const char *const keys[] = {
		"password", "password_command", "password_file",
		"password_env", "oauth2_token_command",
	};
	static const char *const vals[] = {
		"s3cret", "pass x", "/pw", "PW_VAR", "get-token",
	};
	for (size_t i = 0; i < 5; i++) {
		char text[256];
		snprintf(text, sizeof text, ACCOUNT "%s = %s\n", keys[i],
			 vals[i]);
		cr_assert_eq(parse(text), ISNAP_OK, "%s: %s", keys[i],
			     err.msg);
		const struct config_account *a = &cfg.v[0];
		const char *got[] = { a->password, a->password_command,
				      a->password_file, a->password_env,
				      a->oauth2_token_command };
		for (size_t j = 0; j < 5; j++) {
			if (j == i)
				cr_assert_str_eq(got[j], vals[i]);
			else
				cr_assert_null(got[j], "%s set by %s",
					       keys[j], keys[i]);
		}
		cr_assert_eq(cfg.holds_password, i == 0);
	}
}

Test(config, missing_pieces)
{
	refused("[a]\ndestination = /b\n" CRED, "[a]: no url");
	refused("[a]\nurl = imaps://h\n" CRED, "[a]: no destination");
	refused(ACCOUNT, "[a]: no credentials");
	refused("", "no account");
	refused("timeout = 5\n", "no account");
}

Test(config, two_credential_sources)
{
	refused(ACCOUNT CRED "password_file = /pw\n", "only one of");
	refused("password_env = X\n" ACCOUNT CRED, "only one of");
}

Test(config, unknown_key_names_the_line)
{
	refused(ACCOUNT CRED "\nfrobnicate = 1\n", "cfg:6: unknown key 'frobnicate'");
}

Test(config, duplicates)
{
	refused(ACCOUNT CRED "url = imap://x\n", "cfg:5: url given twice in [a]");
	refused("timeout = 1\ntimeout = 2\n" ACCOUNT CRED,
		"cfg:2: timeout given twice");
	refused(ACCOUNT CRED "[b]\nurl = imap://x\n[a]\nuser = y\n",
		"cfg:7: [a] appears twice");
	refused(ACCOUNT CRED "[b]\nurl = imaps://h\n" CRED
		"destination = /b/a\n",
		"[a] and [b] have the same destination /b/a");
}

Test(config, account_names)
{
	refused("[two words]\nurl = imap://h\n", "account name");
	refused("[-x]\nurl = imap://h\n", "account name");
	refused("[a/b]\nurl = imap://h\n", "account name");
	cr_assert_eq(parse("[me@work.example-1_x]\nurl = imap://h\n"
			   "destination = /d\n" CRED),
		     ISNAP_OK, "%s", err.msg);
}

Test(config, bad_values)
{
	refused(ACCOUNT CRED "since = 2024-13-01\n", "since: 2024-13-01 is not a date");
	refused(ACCOUNT CRED "since = 1.2.2024\n", "is not a date");
	refused(ACCOUNT CRED "since = 2024-03-01\nbefore = 2024-03-01\n",
		"since must be a day before before");
	refused(ACCOUNT CRED "insecure = maybe\n", "insecure: maybe is not yes or no");
	refused(ACCOUNT CRED "timeout = 0\n", "timeout: 0 is not");
	refused(ACCOUNT CRED "timeout = 86401\n", "timeout: 86401 is not");
	refused(ACCOUNT CRED "timeout = 5s\n", "timeout: 5s is not");
	refused(ACCOUNT CRED "tls = maybe\n", "tls: maybe");
	refused(ACCOUNT CRED "retries = 101\n", "retries: 101 is not a number");
	refused(ACCOUNT CRED "retries = -1\n", "retries: -1 is not a number");
	refused(ACCOUNT CRED "user =\n", "user: empty value");
	refused(ACCOUNT CRED "include =\n", "include: empty glob");
	refused("[a]\nurl = http://h\ndestination = /d\n" CRED,
		"must start with imap:// or imaps://");
}

Test(config, paths)
{
	refused("[a]\nurl = imap://h\ndestination = backup\n" CRED,
		"destination: give an absolute path");
	refused(ACCOUNT "password_file = pw.txt\n", "password_file: give an absolute path");
	refused(ACCOUNT CRED "cacert = ~root/ca.pem\n", "cacert: give an absolute path");
	cr_assert_eq(parse("[a]\nurl = imap://h\ndestination = ~\n" CRED),
		     ISNAP_OK, "%s", err.msg);
	cr_assert_str_eq(cfg.v[0].destination, "/home/me");
	cr_assert_eq(parse("[a]\nurl = imap://h\ndestination = ~/mail/a\n"
			   "password_file = ~/.pw\n"),
		     ISNAP_OK, "%s", err.msg);
	cr_assert_str_eq(cfg.v[0].destination, "/home/me/mail/a");
	cr_assert_str_eq(cfg.v[0].password_file, "/home/me/.pw");

	config_free(&cfg);
	cr_assert_eq(config_parse("[a]\nurl = imap://h\ndestination = ~/x\n" CRED,
				  "cfg", NULL, &cfg, &err),
		     ISNAP_EUSAGE);
	cr_assert_not_null(strstr(err.msg, "$HOME"), "%s", err.msg);
}

Test(config, syntax_error_names_the_line)
{
	refused(ACCOUNT CRED "this line has no equals sign\n",
		"cfg:5: expected NAME = VALUE");
	refused(ACCOUNT "[unclosed\n", "cfg:4:");
}

/* libinih reads into a fixed buffer; a longer line must be refused, not
 * cut in two (the cut-off rest would be read as a line of its own). */
Test(config, long_line_refused)
{
	char text[1024];
	char cmd[401];
	memset(cmd, 'x', 400);
	cmd[400] = '\0';
	/* The rest of the line, once cut, would read as "k=v". */
	memcpy(cmd + 300, "=value", 6);
	snprintf(text, sizeof text, ACCOUNT "password_command = %s\n", cmd);
	refused(text, "cfg:4: the line is longer than");
}

Test(config, carriage_returns)
{
	/* CRLF files are fine: libinih strips trailing white space. */
	cr_assert_eq(parse("[a]\r\nurl = imap://h\r\ndestination = /d\r\n"
			   "password_env = PW\r\n"),
		     ISNAP_OK, "%s", err.msg);
	cr_assert_str_eq(cfg.v[0].url, "imap://h");
	cr_assert_str_eq(cfg.v[0].password_env, "PW");
}

Test(config, check_mode)
{
	struct isnap_error e = { 0 };
	uid_t me = 1000;

	cr_assert_eq(config_check_mode("f", 0600, me, me, false, true, &e), ISNAP_OK);
	cr_assert_eq(config_check_mode("f", 0400, me, me, false, true, &e), ISNAP_OK);
	cr_assert_eq(config_check_mode("f", 0644, me, me, false, false, &e), ISNAP_OK);
	cr_assert_eq(config_check_mode("f", 0664, me, me, true, false, &e),
		     ISNAP_OK,
		     "group write in a user private group (Debian's default)");
	cr_assert_eq(config_check_mode("f", 0664, me, me, false, false, &e),
		     ISNAP_EUSAGE, "group write for a group others are in");
	cr_assert_not_null(strstr(e.msg, "its group may write it"), "%s",
			   e.msg);
	cr_assert_not_null(strstr(e.msg, "chmod g-w f"), "%s", e.msg);
	cr_assert_eq(config_check_mode("f", 0620, 0, me, false, false, &e),
		     ISNAP_EUSAGE, "root's file, but the group may write it");
	cr_assert_eq(config_check_mode("f", 0600, 0, me, false, true, &e), ISNAP_OK,
		     "root may own it");

	cr_assert_eq(config_check_mode("f", 0640, me, me, false, true, &e),
		     ISNAP_EUSAGE);
	cr_assert_not_null(strstr(e.msg, "holds a password and is readable by "
				  "its group; run chmod 600 f"), "%s", e.msg);
	cr_assert_eq(config_check_mode("f", 0604, me, me, false, true, &e),
		     ISNAP_EUSAGE);
	cr_assert_not_null(strstr(e.msg, "readable by others"), "%s", e.msg);
	cr_assert_eq(config_check_mode("f", 0644, me, me, false, true, &e),
		     ISNAP_EUSAGE);
	cr_assert_not_null(strstr(e.msg, "group and others"), "%s", e.msg);
	cr_assert_eq(config_check_mode("f", 0602, me, me, false, false, &e),
		     ISNAP_EUSAGE);
	cr_assert_not_null(strstr(e.msg, "anyone may write it"), "%s", e.msg);
	cr_assert_eq(config_check_mode("f", 0600, 1001, me, false, false, &e),
		     ISNAP_EUSAGE);
	cr_assert_not_null(strstr(e.msg, "owned by uid 1001"), "%s", e.msg);
}

/* config_load: the file's own mode decides. */
static char dir[64], path[128];

static void file_setup(void)
{
	reset();
	strcpy(dir, "/tmp/test_config.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/config", dir);
}

static void file_teardown(void)
{
	config_free(&cfg);
	unlink(path);
	rmdir(dir);
}

TestSuite(config_file, .init = file_setup, .fini = file_teardown);

static void write_config(const char *text, size_t len, mode_t mode)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(text, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(chmod(path, mode), 0);
}

Test(config_file, private_password_file_loads)
{
	static const char text[] = ACCOUNT "password = s3cret\n";
	write_config(text, sizeof text - 1, 0600);
	cr_assert_eq(config_load(path, "/h", getuid(), &cfg, &err), ISNAP_OK,
		     "%s", err.msg);
	cr_assert_str_eq(cfg.v[0].password, "s3cret");
	cr_assert(cfg.holds_password);
}

Test(config_file, readable_password_file_refused)
{
	static const char text[] = ACCOUNT "password = s3cret\n";
	write_config(text, sizeof text - 1, 0644);
	cr_assert_eq(config_load(path, "/h", getuid(), &cfg, &err),
		     ISNAP_EUSAGE);
	cr_assert_not_null(strstr(err.msg, "holds a password"), "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, path), "%s", err.msg);
	cr_assert_null(strstr(err.msg, "s3cret"), "%s", err.msg);
	cr_assert_eq(cfg.n, 0);
}

Test(config_file, readable_file_without_password_loads)
{
	static const char text[] = ACCOUNT CRED;
	write_config(text, sizeof text - 1, 0644);
	cr_assert_eq(config_load(path, "/h", getuid(), &cfg, &err), ISNAP_OK,
		     "%s", err.msg);
	cr_assert_eq(cfg.n, 1);
}

Test(config_file, world_writable_refused)
{
	static const char text[] = ACCOUNT CRED;
	write_config(text, sizeof text - 1, 0666);
	cr_assert_eq(config_load(path, "/h", getuid(), &cfg, &err),
		     ISNAP_EUSAGE);
	cr_assert_not_null(strstr(err.msg, "anyone may write"), "%s", err.msg);
}

Test(config_file, nul_byte_refused)
{
	static const char text[] = ACCOUNT CRED "\0x = y\n";
	write_config(text, sizeof text - 1, 0600);
	cr_assert_eq(config_load(path, "/h", getuid(), &cfg, &err),
		     ISNAP_EUSAGE);
	cr_assert_not_null(strstr(err.msg, "NUL"), "%s", err.msg);
}

Test(config_file, missing_and_directory)
{
	cr_assert_eq(config_load(path, "/h", getuid(), &cfg, &err),
		     ISNAP_EUSAGE);
	cr_assert_not_null(strstr(err.msg, "No such file"), "%s", err.msg);
	cr_assert_eq(config_load(dir, "/h", getuid(), &cfg, &err),
		     ISNAP_EUSAGE);
	cr_assert_not_null(strstr(err.msg, "not a regular file"), "%s",
			   err.msg);
}

Test(config_file, errors_name_the_file)
{
	static const char text[] = ACCOUNT CRED "bogus = 1\n";
	char want[160];
	write_config(text, sizeof text - 1, 0600);
	cr_assert_eq(config_load(path, "/h", getuid(), &cfg, &err),
		     ISNAP_EUSAGE);
	snprintf(want, sizeof want, "%s:5: unknown key", path);
	cr_assert_not_null(strstr(err.msg, want), "%s", err.msg);
}

Test(config, default_path)
{
	char buf[64];
	cr_assert(config_default_path("/x/cfg", "/home/me", buf, sizeof buf));
	cr_assert_str_eq(buf, "/x/cfg/imapsnap/config");
	cr_assert(config_default_path(NULL, "/home/me", buf, sizeof buf));
	cr_assert_str_eq(buf, "/home/me/.config/imapsnap/config");
	cr_assert(config_default_path("", "/home/me", buf, sizeof buf));
	cr_assert_str_eq(buf, "/home/me/.config/imapsnap/config");
	cr_assert(config_default_path("rel", "/home/me", buf, sizeof buf),
		  "a relative XDG_CONFIG_HOME is ignored");
	cr_assert_str_eq(buf, "/home/me/.config/imapsnap/config");
	cr_assert_not(config_default_path(NULL, NULL, buf, sizeof buf));
	cr_assert_not(config_default_path(NULL, "", buf, sizeof buf));
	cr_assert_not(config_default_path("/a-rather-long-directory-name",
					  NULL, buf, 20));
}

Test(config, dates)
{
	int64_t t = -1;
	cr_assert(config_parse_date("1970-01-02", &t));
	cr_assert_eq(t, 86400);
	cr_assert(config_parse_date("2024-02-29", &t));
	cr_assert_eq(t, 1709164800);
	static const char *const bad[] = {
		"2023-02-29", "2024-00-10", "2024-01-32", "2024-1-1",
		"2024-01-01x", "24-01-01", "2024/01/01", "", "1969-12-31",
		"+024-01-01", "2024-01- 1",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		t = 42;
		cr_assert_not(config_parse_date(bad[i], &t), "%s", bad[i]);
		cr_assert_eq(t, 42, "%s: output touched", bad[i]);
	}
}
