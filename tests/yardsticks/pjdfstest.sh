#!/usr/bin/env bash
# Run pjdfstest, the POSIX conformance suite, in a directory of the file system under test.
#
#   pjdfstest.sh [-o OTHER_FS_DIR] DIR [FILTER...]
#
# DIR          where the suite makes its files (it must be reachable by the users nobody and
#              daemon: every directory above it needs o+x, and a FUSE mount needs allow_other)
# -o DIR       a directory on another file system, for the cross-device (EXDEV) tests
# FILTER       only the tests whose names contain one of these (e.g. rename, chown::)
# Environment: PJDFSTEST (the binary; default: from PATH), PJDFSTEST_CONFIG (default:
# pjdfstest.toml beside this script). Run as root, or every test that changes owners or
# switches users is skipped.
#
# Prints the suite's output, then each failed test, and as its last line
#   pjdfstest: P passed, F failed, S skipped
# Exit status 0 only when the suite ran to its summary and nothing failed.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
config=${PJDFSTEST_CONFIG:-$here/pjdfstest.toml}
suite=${PJDFSTEST:-$(command -v pjdfstest || true)}
other=""

verdict() { echo "pjdfstest: $1 passed, $2 failed, $3 skipped"; }
give_up() { echo "$1"; verdict 0 1 0; exit 2; }

while getopts "o:" opt; do
    case $opt in
    o) other=$OPTARG ;;
    *) give_up "usage: $0 [-o OTHER_FS_DIR] DIR [FILTER...]" ;;
    esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || give_up "usage: $0 [-o OTHER_FS_DIR] DIR [FILTER...]"
dir=$1
shift
[ -d "$dir" ] || give_up "no directory $dir"
[ -n "$suite" ] && [ -x "$suite" ] || give_up "pjdfstest is not installed (cargo install pjdfstest)"
[ -f "$config" ] || give_up "no configuration at $config"

args=(-c "$config" -p "$dir")
[ -n "$other" ] && args+=(-s "$other")

# From / : the suite's working directory must not hold the file system under test busy.
# Colours off, so that the result column can be read.
output=$(cd / && NO_COLOR=1 "$suite" "${args[@]}" "$@" 2>&1 | sed 's/\x1b\[[0-9;]*m//g')
echo "$output"

summary=$(grep -E '^Summary:' <<<"$output" | tail -n 1)
[ -n "$summary" ] || give_up "pjdfstest stopped before its summary"
count() { sed -nE "s/.*[ :]([0-9]+) $1.*/\1/p" <<<"$summary"; }
passed=$(count passed)
skipped=$(count skipped)
failed=$(count failed)

failures=$(grep -E '[[:space:]](FAILED|PASSED UNEXPECTEDLY)$' <<<"$output" | awk '{ print $1 }')
if [ -n "$failures" ]; then
    echo "failed:"
    sed 's/^/  /' <<<"$failures"
fi
verdict "${passed:-0}" "${failed:-1}" "${skipped:-0}"
[ "${failed:-1}" = 0 ] && [ -z "$failures" ]
