/*
 * progress.c — the live progress line on a terminal:
 *
 *   INBOX: 1200/5000 messages, 38.2 MiB, 12.1 MiB/s, ETA 0:12
 *
 * The byte total of a folder is not known before its messages arrive
 * (only a dry run asks for sizes), so the ETA is by message count.  The
 * line is redrawn at most ten times a second, cut to the terminal's width
 * so that it never wraps, and cleared before anything else is printed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "output.h"

#define REDRAW_INTERVAL 0.1
/* Rates over less than this are noise; no ETA is shown until then. */
#define RATE_MIN_SECONDS 0.5

double progress_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void progress_init(struct progress *p, bool enabled)
{
	memset(p, 0, sizeof *p);
	p->enabled = enabled;
}

static void eta_text(double seconds, char *buf, size_t size)
{
	unsigned long s = (unsigned long)(seconds + 0.5);
	if (s >= 100 * 3600)
		snprintf(buf, size, ">99 h");
	else if (s >= 3600)
		snprintf(buf, size, "%lu:%02lu:%02lu", s / 3600, s / 60 % 60,
			 s % 60);
	else
		snprintf(buf, size, "%lu:%02lu", s / 60, s % 60);
}

/* Cut `buf` after `width` columns, on a character boundary. */
static void cut(char *buf, size_t width)
{
	size_t cols = 0;
	for (char *s = buf; *s;) {
		size_t n = 1;
		char one[5] = "";
		while (((unsigned char)s[n] & 0xC0) == 0x80 && n < 4)
			n++;
		memcpy(one, s, n);
		cols += out_width(one);
		if (cols > width) {
			*s = '\0';
			return;
		}
		s += n;
	}
}

/* Seconds per message and bytes per second: this folder's once it has
 * run long enough to tell, else the run's so far (short folders). */
static bool rates(const struct progress *p, double now, double *per_msg,
		  double *bytes_per_sec)
{
	double fs = now - p->folder_start, rs = now - p->run_start;

	if (fs >= RATE_MIN_SECONDS && p->done > 0) {
		*per_msg = fs / (double)p->done;
		*bytes_per_sec = (double)p->bytes / fs;
		return true;
	}
	if (p->run_start > 0 && rs >= RATE_MIN_SECONDS && p->run_done > 0) {
		*per_msg = rs / (double)p->run_done;
		*bytes_per_sec = (double)p->run_bytes / rs;
		return true;
	}
	return false;
}

void progress_format(const struct progress *p, double now, size_t width,
		     char *buf, size_t size)
{
	char done[32], rate[32], eta[32] = "", *name;
	double per_msg, bps;
	int n;

	out_human_size(p->bytes, done, sizeof done);
	if (rates(p, now, &per_msg, &bps)) {
		out_human_size((uint64_t)bps, rate, sizeof rate);
		strcat(rate, "/s");
		if (p->total > p->done) {
			char t[24];
			eta_text(per_msg * (double)(p->total - p->done), t,
				 sizeof t);
			snprintf(eta, sizeof eta, ", ETA %s", t);
		}
	} else {
		snprintf(rate, sizeof rate, "-/s");
	}
	name = out_safe_dup(p->folder);
	n = snprintf(buf, size, "%s: %llu/%llu messages, %s, %s%s",
		     name ? name : "?", (unsigned long long)p->done,
		     (unsigned long long)p->total, done, rate, eta);
	free(name);
	if (n < 0)
		buf[0] = '\0';
	if (width)
		cut(buf, width);
}

static size_t terminal_width(void)
{
	struct winsize ws;
	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1)
		return ws.ws_col - 1; /* the last column would wrap on some */
	return 79;
}

static void draw(struct progress *p, double now)
{
	char line[1024];

	progress_format(p, now, terminal_width(), line, sizeof line);
	/* \r and erase-to-end: the new line overwrites the old one. */
	fprintf(stderr, "\r%s\033[K", line);
	fflush(stderr);
	p->shown = true;
	p->last_draw = now;
}

/* Keep the folder shown now for later, if it has messages to come. */
static void stash(struct progress *p)
{
	struct progress_other *o;

	if (!p->folder[0] || p->done >= p->total)
		return;
	if (p->n_others == p->alloc_others) {
		size_t na = p->alloc_others ? 2 * p->alloc_others : 8;
		o = realloc(p->others, na * sizeof *o);
		if (!o)
			return; /* only the display loses it */
		p->others = o;
		p->alloc_others = na;
	}
	o = &p->others[p->n_others];
	if (!(o->name = strdup(p->folder)))
		return;
	o->total = p->total;
	o->done = p->done;
	o->bytes = p->bytes;
	o->start = p->folder_start;
	p->n_others++;
}

void progress_folder(struct progress *p, const char *folder, uint64_t total)
{
	if (!p->enabled)
		return;
	stash(p);
	snprintf(p->folder, sizeof p->folder, "%s", folder);
	p->total = total;
	p->done = 0;
	p->bytes = 0;
	p->folder_start = progress_now();
	/* The clock starts with the first folder, not at login. */
	if (p->run_start == 0)
		p->run_start = p->folder_start;
	if (total)
		draw(p, p->folder_start);
}

void progress_message(struct progress *p, uint64_t bytes)
{
	double now;

	if (!p->enabled)
		return;
	p->done++;
	p->run_done++;
	p->bytes += bytes;
	p->run_bytes += bytes;
	now = progress_now();
	if (now - p->last_draw >= REDRAW_INTERVAL || p->done == p->total)
		draw(p, now);
}

void progress_message_in(struct progress *p, const char *folder,
			 uint64_t bytes)
{
	if (!p->enabled)
		return;
	if (strncmp(p->folder, folder, sizeof p->folder - 1)) {
		for (size_t i = 0; i < p->n_others; i++) {
			struct progress_other o = p->others[i];
			if (strcmp(o.name, folder))
				continue;
			p->others[i] = p->others[--p->n_others];
			stash(p);
			snprintf(p->folder, sizeof p->folder, "%s", o.name);
			p->total = o.total;
			p->done = o.done;
			p->bytes = o.bytes;
			p->folder_start = o.start;
			free(o.name);
			break;
		}
	}
	progress_message(p, bytes);
}

void progress_free(struct progress *p)
{
	for (size_t i = 0; i < p->n_others; i++)
		free(p->others[i].name);
	free(p->others);
	p->others = NULL;
	p->n_others = p->alloc_others = 0;
}

void progress_clear(struct progress *p)
{
	if (!p->shown)
		return;
	fputs("\r\033[K", stderr);
	fflush(stderr);
	p->shown = false;
}
