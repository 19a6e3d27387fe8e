/*
 * signals.c — SIGTERM, SIGINT and SIGHUP stop a run that moves mail
 * (backup, run, restore, migrate) the way it can be resumed: the first
 * asks the library to stop (interrupt.h), which commits what is complete,
 * writes the state and the manifest's end and returns; the program then
 * exits with status 1, saying it was interrupted.  A second signal exits
 * at once: the crash guarantees hold at every moment (docs/reliability.md),
 * so whatever the first was still doing may be cut short.
 */
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "interrupt.h"

static void on_signal(int signo)
{
	static const char again[] = "imapsnap: interrupted again: exiting "
				    "now\n";

	if (isnap_interrupted()) {
		if (write(STDERR_FILENO, again, sizeof again - 1) < 0)
			(void)0;
		_exit(EXIT_PARTIAL);
	}
	isnap_interrupt(signo);
}

void signals_install(void)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP };
	struct sigaction sa;

	if (isnap_interrupt_init() != 0)
		return; /* no pipe: the signals keep their default */
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	/* System calls go on after the handler (SA_RESTART): the library's
	 * waits watch the pipe instead, and nothing else sees EINTR. */
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaddset(&sa.sa_mask, sigs[i]);
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
		struct sigaction old;
		/* A signal ignored by whoever started us (nohup) stays so. */
		if (sigaction(sigs[i], NULL, &old) == 0 &&
		    old.sa_handler == SIG_IGN)
			continue;
		sigaction(sigs[i], &sa, NULL);
	}
}
