/*
 * archive_lib.c — see archive_lib.h.
 */
#define ARCHIVE_LIB_NO_MACROS
#include "store/archive_lib.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

struct archive_lib archive_lib;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static bool loaded;
static char load_error[512];

static void load(void)
{
	/* RTLD_LOCAL: its symbols serve this table only.  Never closed: the
	 * table stays valid until the process ends. */
	void *h = dlopen(ARCHIVE_LIB_SONAME, RTLD_NOW | RTLD_LOCAL);
	const char *missing = NULL;

	if (!h) {
		const char *e = dlerror();

		snprintf(load_error, sizeof load_error,
			 "cannot load libarchive (%s); archive formats need it",
			 e ? e : ARCHIVE_LIB_SONAME);
		return;
	}
	/* POSIX allows converting dlsym's void * to a function pointer. */
#define ARCHIVE_LIB_RESOLVE(f)                                            \
	*(void **)&archive_lib.f = dlsym(h, #f);                          \
	if (!archive_lib.f && !missing)                                   \
		missing = #f;
	ARCHIVE_LIB_FUNCTIONS(ARCHIVE_LIB_RESOLVE)
#undef ARCHIVE_LIB_RESOLVE
	if (missing) {
		snprintf(load_error, sizeof load_error,
			 "%s has no %s; archive formats need libarchive 3.4 or "
			 "later", ARCHIVE_LIB_SONAME, missing);
		memset(&archive_lib, 0, sizeof archive_lib);
		return;
	}
	loaded = true;
}

bool archive_lib_load(const char **why)
{
	pthread_once(&load_once, load);
	if (!loaded && why)
		*why = load_error;
	return loaded;
}
