#!/usr/bin/env zsh
# zsh-complete.zsh DIR WORDS... — what zsh's completion offers for the
# command line WORDS (the last word being completed), with the completion
# functions of DIR first in fpath: one candidate a line.
#
# Completion only runs inside the line editor, so this starts an
# interactive zsh on a pseudo-terminal (zsh/zpty), types the line and a
# TAB, and has compadd write what it is given to a file.  Used by
# tests/integration/test_completion.py.
emulate -L zsh
zmodload zsh/zpty || exit 2
dir=${1:A}; shift
out=$(mktemp) || exit 2
zpty complete zsh -f -i
zpty -w complete "PS1=''; fpath=($dir \$fpath)"
zpty -w complete "autoload -U compinit; compinit -u -D"
# Record every match offered; -O, -A and -D only ask compadd to match.
zpty -w complete "compadd() { if [[ \${@[(I)-[OAD]]} -eq 0 ]]; then local -a __h; builtin compadd -A __h \"\$@\"; print -rl -- \$__h >> $out; fi; builtin compadd \"\$@\"; }"
zpty -w complete "zstyle ':completion:*' list-prompt ''; zstyle ':completion:*' menu no"
zpty -w complete "comppostfuncs=(exit)"
zpty -w complete "bindkey '^I' complete-word"
zpty -n -w complete "$*"$'\t'
# Wait for the completion to run and zsh to exit (at most 10 s).
integer i
for (( i = 0; i < 100; i++ )); do
  zpty -t complete 2>/dev/null || break
  zpty -r -t complete line 2>/dev/null
  sleep 0.1
done
zpty -d complete
sort -u $out
rm -f $out
