#!/usr/bin/env bash
# bash-complete.sh FILE WORDS... — what the bash completion in FILE offers
# for the command line WORDS (the last word being completed, possibly
# empty): one candidate a line.  Loads bash-completion's own library
# first, as an interactive shell would.  Used by
# tests/integration/test_completion.py.
set -u
file=$1
shift
# shellcheck disable=SC1091
source /usr/share/bash-completion/bash_completion || exit 2
# shellcheck disable=SC1090
source "$file" || exit 2
COMP_WORDS=("$@")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
COMP_LINE="$*"
COMP_POINT=${#COMP_LINE}
COMPREPLY=()
_imapsnap imapsnap "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
printf '%s\n' "${COMPREPLY[@]}" | sort -u
