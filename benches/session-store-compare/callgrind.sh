#!/usr/bin/env bash
# Instructions per operation of one store in one mode, load-independent:
# runs the comparison under callgrind with 1 and with 3 measured rounds and
# divides the difference by the 4000 operations between them (setup, warm-up
# and teardown cancel out). Prints the whole process's count per operation
# and that of the store's `load` and `save` futures alone.
#
# Usage (from this directory, after `cargo build --release`):
#   ./callgrind.sh dbwarden|tower-sessions modified|unmodified|mixed
set -euo pipefail
who=${1:?dbwarden or tower-sessions}
mode=${2:?modified, unmodified or mixed}
out=$(mktemp -d)
for rounds in 1 3; do
    COMPARE_ONLY=$who COMPARE_MODE=$mode COMPARE_ROUNDS=$rounds valgrind --tool=callgrind \
        --callgrind-out-file="$out/$rounds.out" target/release/session-store-compare >/dev/null 2>"$out/$rounds.err"
done
total() { grep -o 'Collected : [0-9]*' "$out/$1.err" | grep -o '[0-9]*$'; }
future() {
    callgrind_annotate --inclusive=yes --auto=no --threshold=100 "$out/$1.out" \
        | grep -E "SessionStore>::$2::\{\{closure\}\} \[" | head -1 | awk '{gsub(",", "", $1); print $1}'
}
per_op() { echo "scale=1; ($1 - $2) / 4000 / 1000" | bc; }
echo "$who $mode, instructions per operation:" \
    "total $(per_op "$(total 3)" "$(total 1)")K," \
    "load $(per_op "$(future 3 load)" "$(future 1 load)")K," \
    "save $(per_op "$(future 3 save)" "$(future 1 save)")K"
rm -r "$out"
