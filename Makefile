# imapsnap — batch IMAP export and backup.
#
#   make            build build/imapsnap and build/libimapsnap.a
#   make check      unit tests (Criterion) and integration tests (real Dovecot)
#   make demo       back up a throwaway local Dovecot with sample mail
#   make deb        the Debian package, into build/deb/
#   make install    PREFIX=/usr/local DESTDIR= (the program, man pages and
#                   completions; libimapsnap.a is internal, see
#                   docs/decisions.md)
#   make clean
#
# Dependencies come from pkg-config; `make deps` installs them on Debian.

PREFIX  ?= /usr/local
DESTDIR ?=
BUILD   ?= build
CC      ?= cc
PKG_CONFIG ?= pkg-config

PKGS       := libcurl libarchive zlib libcrypto jansson inih
# libarchive is compiled against but not linked: lib/store/archive_lib.c
# loads it with dlopen when an archive format is used, so that Maildir and
# mbox runs do not pay for it and its dependencies (~3 MB resident).
LINK_PKGS  := $(filter-out libarchive,$(PKGS))
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell $(PKG_CONFIG) --libs $(LINK_PKGS) 2>/dev/null)
# The unit tests also call libarchive directly, to build and read archives.
TEST_CFLAGS := $(shell $(PKG_CONFIG) --cflags criterion 2>/dev/null)
TEST_LIBS   := $(shell $(PKG_CONFIG) --libs criterion libarchive 2>/dev/null)

WERROR  ?=
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -pthread -Wall -Wextra $(WERROR) -Ilib $(PKG_CFLAGS)
LDLIBS  += $(PKG_LIBS) -pthread

LIB_SRC  := $(sort $(shell find lib -name '*.c'))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CMD_SRC  := $(sort $(wildcard cmd/imapsnap/*.c))
CMD_OBJ  := $(CMD_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(sort $(wildcard tests/unit/test_*.c))
TEST_BIN := $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all check unit integration demo install clean deps depcheck bench fuzz deb
all: $(BUILD)/imapsnap

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libimapsnap.a: $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/imapsnap: $(CMD_OBJ) $(BUILD)/libimapsnap.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(CMD_OBJ) $(BUILD)/libimapsnap.a $(LDLIBS)

# Each unit test is its own binary, linked against the static library so that
# it pulls in only the modules it uses.
$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libimapsnap.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(TEST_CFLAGS) $(LDFLAGS) -MMD -MP -o $@ $< $(BUILD)/libimapsnap.a $(LDLIBS) $(TEST_LIBS)

deps:
	@sh contrib/install-deps.sh

# The backup engine's files call one another one way only (a cycle fails;
# docs/decisions.md, "The backup engine").
depcheck: all
	@python3 contrib/dev/deps.py --build $(BUILD) backup scheduler imap/ \
		> $(BUILD)/deps.txt || { cat $(BUILD)/deps.txt; exit 1; }
	@tail -1 $(BUILD)/deps.txt

unit: $(TEST_BIN)
	@set -e; for t in $(TEST_BIN); do echo "== $$t"; $$t --jobs 2; done

integration: $(BUILD)/imapsnap
	python3 tests/integration/run.py --binary $(BUILD)/imapsnap

check: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory depcheck
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory integration

demo: deps
	@$(MAKE) --no-print-directory all
	sh contrib/demo/demo.sh $(BUILD)/imapsnap

# imapsnap against mbsync on a private Dovecot (docs/performance.md); not
# part of check.  BENCH_QUICK=1 for fewer repetitions.
bench: all
	sh contrib/bench/run.sh $(BUILD)/imapsnap

# The libFuzzer targets in tests/fuzz (clang, libclang-rt-14-dev), each run
# for FUZZ_SECONDS; crashes land in $(BUILD)/fuzz/crashes.  Not part of check.
FUZZ_SECONDS ?= 30
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) BUILD=$(BUILD) sh tests/fuzz/run.sh

# Where `make install` puts things; the Debian package (debian/rules) sets
# the completion directories to Debian's vendor ones.
BINDIR      ?= $(PREFIX)/bin
MANDIR      ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d

install: $(BUILD)/imapsnap
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5
	install -d $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	install -m 755 $(BUILD)/imapsnap $(DESTDIR)$(BINDIR)/imapsnap
	install -m 644 docs/imapsnap.1 $(DESTDIR)$(MANDIR)/man1/imapsnap.1
	install -m 644 docs/imapsnap.conf.5 $(DESTDIR)$(MANDIR)/man5/imapsnap.conf.5
	install -m 644 contrib/bash-completion/imapsnap $(DESTDIR)$(BASHCOMPDIR)/imapsnap
	install -m 644 contrib/zsh/_imapsnap $(DESTDIR)$(ZSHCOMPDIR)/_imapsnap
	install -m 644 contrib/fish/imapsnap.fish $(DESTDIR)$(FISHCOMPDIR)/imapsnap.fish

# The Debian package (debian/): dpkg-buildpackage -us -uc -b on a copy of
# this tree in build/deb/, where the .deb lands (and not in the parent
# directory).  As root, installs the build dependencies with apt-get.
deb:
	sh contrib/build-deb.sh $(BUILD)/deb

clean:
	rm -rf $(BUILD) demo-backup

# (Not build/deb: make deb's copy of the tree, with its own build.)
-include $(shell find $(BUILD) -path $(BUILD)/deb -prune -o -name '*.d' -type f -print 2>/dev/null)
