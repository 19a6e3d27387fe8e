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
# Nothing listed on the terminal: nobody reads it, and a long listing
# would fill the pty and stall zsh.  After the completion, exit.
zpty -w complete "unsetopt AUTO_LIST LIST_AMBIGUOUS LIST_BEEP BEEP"
zpty -w complete "__done() { compstate[list]=''; print -r -- '<<done>>' >> $out; exit; }; comppostfuncs=(__done)"
zpty -w complete "bindkey '^I' complete-word"
zpty -n -w complete "$*"$'\t'
# Wait for the completion to run and zsh to exit (at most 10 s).
integer i
for (( i = 0; i < 200; i++ )); do
  grep -qx '<<done>>' $out 2>/dev/null && break
  sleep 0.05
done
zpty -d complete
grep -vx '<<done>>' $out | sort -u
grep -qx '<<done>>' $out
rc=$?
rm -f $out
exit $rc
