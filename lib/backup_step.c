/*
 * backup_step.c — what the steps of planning may call (backup_step.h).
 */
#include "backup_step.h"

#include <stdarg.h>
#include <stdio.h>

#include "backup_events.h"

enum isnap_status plan_send(struct folder_plan *fp, const char *command,
			    char tag[16], struct isnap_error *err)
{
	enum isnap_status st;

	st = sched_send(fp->s, fp->u, PLAN_STEP_COOKIE + fp->step, command,
			err);
	if (st)
		return st;
	fp->step_cmds++;
	if (tag)
		snprintf(tag, 16, "%s",
			 imap_pipeline_last_tag(sched_session_pipe(fp->s)));
	return ISNAP_OK;
}

void plan_notice(struct folder_plan *fp, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	backup_notice(fp->c->ev, "%s", buf);
}
