/* oom_after.c — an LD_PRELOAD shim that makes one allocation fail, counted
 * from the moment a path holding a marker is first opened, for tests of
 * what imapsnap does when memory runs out in the middle of a folder
 * (tests/integration/test_reliability.py).
 *
 *   IMAPSNAP_FAULT_OOM_MARK=S     arm when openat(2) or mkdirat(2) is
 *                                 given a path containing S
 *   IMAPSNAP_FAULT_OOM_AFTER=N    once armed, the N-th malloc, calloc or
 *                                 realloc (1 = the first) that the program
 *                                 itself calls (not a library it uses:
 *                                 libcrypto, for one, allocates and copes
 *                                 by itself) returns NULL with ENOMEM; the
 *                                 ones before and after work
 *   IMAPSNAP_FAULT_OOM_REPORT=F   at exit, write "armed A failed B\n" to F
 *                                 (A, B: 0 or 1), so that a test knows
 *                                 whether its failure happened
 *
 * glibc's __libc_* allocators stand behind ours, so that no dlsym (which
 * allocates) is needed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

void *__libc_malloc(size_t n);
void *__libc_calloc(size_t k, size_t n);
void *__libc_realloc(void *p, size_t n);

static atomic_int armed, failed;
static atomic_long count;
/* Where the program's own code is loaded. */
static uintptr_t prog_lo, prog_hi;

static int find_program(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	(void)data;
	/* The first object listed is the program. */
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
		if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
			continue;
		if (!prog_lo || lo < prog_lo)
			prog_lo = lo;
		if (lo + ph->p_memsz > prog_hi)
			prog_hi = lo + ph->p_memsz;
	}
	return 1;
}

static void arm(const char *path)
{
	const char *mark = getenv("IMAPSNAP_FAULT_OOM_MARK");

	if (mark && *mark && path && strstr(path, mark) &&
	    !atomic_load(&armed)) {
		dl_iterate_phdr(find_program, NULL);
		atomic_store(&armed, 1);
	}
}

static int fail_now(uintptr_t caller)
{
	static long after = -1;

	if (!atomic_load(&armed) || atomic_load(&failed) ||
	    caller < prog_lo || caller >= prog_hi)
		return 0;
	if (after < 0) {
		const char *s = getenv("IMAPSNAP_FAULT_OOM_AFTER");
		after = s ? atol(s) : 0;
	}
	if (after <= 0 || atomic_fetch_add(&count, 1) + 1 != after)
		return 0;
	atomic_store(&failed, 1);
	errno = ENOMEM;
	return 1;
}

#define CALLER ((uintptr_t)__builtin_return_address(0))

void *malloc(size_t n)
{
	return fail_now(CALLER) ? NULL : __libc_malloc(n);
}

void *calloc(size_t k, size_t n)
{
	return fail_now(CALLER) ? NULL : __libc_calloc(k, n);
}

void *realloc(void *p, size_t n)
{
	return fail_now(CALLER) ? NULL : __libc_realloc(p, n);
}

int openat(int dir, const char *path, int flags, ...)
{
	mode_t mode = 0;

	if (flags & (O_CREAT | O_TMPFILE)) {
		va_list ap;
		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	arm(path);
	return (int)syscall(SYS_openat, dir, path, flags, mode);
}

int mkdirat(int dir, const char *path, mode_t mode)
{
	arm(path);
	return (int)syscall(SYS_mkdirat, dir, path, mode);
}

__attribute__((destructor)) static void report(void)
{
	const char *to = getenv("IMAPSNAP_FAULT_OOM_REPORT");
	char line[64];
	int fd, n;

	if (!to)
		return;
	n = snprintf(line, sizeof line, "armed %d failed %d\n",
		     atomic_load(&armed), atomic_load(&failed));
	fd = (int)syscall(SYS_openat, AT_FDCWD, to,
			  O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd >= 0) {
		if (write(fd, line, (size_t)n) < 0) {
			/* nothing to do about it */
		}
		close(fd);
	}
}
