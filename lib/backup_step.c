/*
 * backup_step.c — what the steps of planning may call (backup_step.h).
 */
#include "backup_step.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

void uid_values_take(struct uid_values *uv, const struct imap_response *r,
		     const char *item)
{
	const struct imap_arg *items;
	uint32_t uid = 0;
	uint64_t value = 0;
	bool has_value = false;

	if (r->kind != IMAP_RESP_UNTAGGED || strcmp(r->name, "FETCH") ||
	    r->nargs != 1 || r->args[0].type != IMAP_ARG_LIST)
		return;
	items = &r->args[0];
	for (size_t i = 0; i + 1 < items->count; i += 2) {
		if (imap_arg_is_atom(&items->list[i], "UID"))
			imap_arg_uint32(&items->list[i + 1], &uid);
		else if (imap_arg_is_atom(&items->list[i], item))
			has_value = imap_arg_uint64(&items->list[i + 1],
						    &value);
	}
	if (!uid || !has_value)
		return;
	if (uv->n == uv->cap) {
		size_t cap = uv->cap ? uv->cap * 2 : 256;
		struct uid_value *v = realloc(uv->v, cap * sizeof *v);
		if (!v) {
			uv->oom = true;
			return;
		}
		uv->v = v;
		uv->cap = cap;
	}
	uv->v[uv->n].uid = uid;
	uv->v[uv->n].value = value;
	uv->n++;
}

void uid_values_free(struct uid_values *uv)
{
	free(uv->v);
	memset(uv, 0, sizeof *uv);
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
