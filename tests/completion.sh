#!/usr/bin/env bash
# `backstop completion bash|zsh` (src/cli/completion_commands.cc): the scripts,
# run in the real shells, complete commands, subcommands, options, choices and
# skip option values; every command of `backstop --help` is offered, since the
# scripts are made from the same definition. zsh: `zsh -n`, then the function
# run with compadd and _files stubbed out (they exist only inside a zsh
# completion widget).
source "$(dirname "$0")/lib.sh"

run "$BACKSTOP_BIN" completion bash
expect_rc 0 "completion bash"
printf '%s\n' "$OUT" >"$WORK/backstop.bash"
bash -n "$WORK/backstop.bash" || fail "the bash script does not parse"

# bash_complete WORD...: what the bash script offers for the command line
# WORD... (the last word is the one being completed), one per line, sorted.
bash_complete() {
  bash -c 'source "$1" || exit 1; shift
    [[ $(complete -p backstop) == *"-F _backstop"* ]] || { echo "not registered"; exit 1; }
    COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _backstop
    printf "%s\n" "${COMPREPLY[@]}"' _ "$WORK/backstop.bash" "$@" | sort
}
has_line() { grep -qx -- "$2" <<<"$1" || fail "$3: '$2' not offered, got: $(echo $1)"; }

expect_eq "$(bash_complete backstop roll)" rollback "backstop roll<TAB>"
C=$(bash_complete backstop rollback --)
has_line "$C" --component "backstop rollback --<TAB>"
has_line "$C" --spec "backstop rollback --<TAB> (a global option)"
expect_eq "$(bash_complete backstop watch p)" pause "backstop watch p<TAB>"
expect_eq "$(bash_complete backstop plan r)" rollback "backstop plan r<TAB>"
# An option's value is not a command: `x.yaml` is skipped, `roll` is the command.
expect_eq "$(bash_complete backstop --spec x.yaml roll)" rollback "after --spec VALUE"
expect_eq "$(bash_complete backstop -f roll.yaml roll)" rollback "after -f VALUE"
expect_eq "$(bash_complete backstop status -o "")" "$(printf 'json\ntext')" "-o<TAB> choices"
expect_eq "$(bash_complete backstop completion "")" "$(printf 'bash\nzsh')" "completion SHELL"
# salvage's own --output takes a file: nothing offered, bash falls back to files.
expect_eq "$(bash_complete backstop salvage --output "")" "" "salvage --output<TAB>"
# Flags take no value: the word after one is completed as a command.
expect_eq "$(bash_complete backstop watch --dry-run p)" pause "after a flag"

# Every command `backstop --help` lists, and each `watch` subcommand.
run "$BACKSTOP_BIN" --help
expect_rc 0 "--help"
COMMANDS=$(awk '/^Subcommands:/ {on = 1; next} on && /^  [a-z]/ {print $1}' <<<"$OUT")
[[ $(wc -l <<<"$COMMANDS") -ge 15 ]] || fail "too few commands read from --help: $COMMANDS"
TOP=$(bash_complete backstop "")
for c in $COMMANDS; do has_line "$TOP" "$c" "backstop <TAB>"; done
run "$BACKSTOP_BIN" watch --help
W=$(bash_complete backstop watch "")
for c in $(awk '/^Subcommands:/ {on = 1; next} on && /^  [a-z]/ {print $1}' <<<"$OUT"); do
  has_line "$W" "$c" "backstop watch <TAB>"
done
for o in $(grep -o -- '--[a-z][a-z-]*' <<<"$OUT" | sort -u); do
  has_line "$(bash_complete backstop watch --)" "$o" "backstop watch --<TAB>"
done

run "$BACKSTOP_BIN" --output json completion zsh
expect_rc 0 "completion zsh --output json"
expect_contains "$OUT" '"shell": "zsh"' "json output"

run "$BACKSTOP_BIN" completion fish
expect_rc 2 "completion fish"

# --- zsh
run "$BACKSTOP_BIN" completion zsh
expect_rc 0 "completion zsh"
printf '%s\n' "$OUT" >"$WORK/_backstop"
if ! command -v zsh >/dev/null; then
  log "zsh is not installed (scripts/install-deps --test installs it): zsh checks skipped"
  exit 0
fi
zsh -n "$WORK/_backstop" || fail "the zsh script does not parse (zsh -n)"
# zsh_complete WORD...: the candidates the zsh function adds, or FILES.
zsh_complete() {
  zsh -f -c 'compdef() { :; }; compadd() { [[ $1 == -- ]] && shift; print -l -- "$@"; }
    _files() { print FILES; }
    source "$1" || exit 1; shift
    words=("$@"); CURRENT=$#; PREFIX=${words[CURRENT]}
    _backstop' _ "$WORK/_backstop" "$@" | grep -x -- "${@: -1}.*" | sort
}
expect_eq "$(zsh_complete backstop roll)" rollback "zsh: backstop roll<TAB>"
has_line "$(zsh_complete backstop rollback --)" --component "zsh: backstop rollback --<TAB>"
expect_eq "$(zsh_complete backstop --spec x.yaml roll)" rollback "zsh: after --spec VALUE"
expect_eq "$(zsh_complete backstop status -o "")" "$(printf 'json\ntext')" "zsh: -o<TAB> choices"
expect_eq "$(zsh_complete backstop salvage --output "")" FILES "zsh: salvage --output<TAB>"
