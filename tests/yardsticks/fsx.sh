#!/usr/bin/env bash
# Run fsx, the file system exerciser, on one file in a directory of the file system under test.
#
#   fsx.sh [-n OPS] [-s SEED] [-c CONFIG] DIR
#
# -n OPS       how many operations (default 100000; fsx alone never stops)
# -s SEED      the random seed (default 1): the same seed and config give the same operations
# -c CONFIG    fsx's configuration (default: fsx.toml beside this script)
# Environment: FSX (the binary; default: from PATH).
#
# The file is DIR/fsx-SEED-PID. When fsx passes, the file and fsx's log go away; when it fails,
# both stay, with fsx's copy of what the file should hold (its "good" file), and the end of the
# log is printed. Last line:
#   fsx: passed|failed ops=N seed=S config=NAME seconds=T
# Exit status 0 only when every operation checked out.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ops=100000
seed=1
config=$here/fsx.toml
exerciser=${FSX:-$(command -v fsx || true)}

give_up() { echo "$1"; echo "fsx: failed ops=$ops seed=$seed config=? seconds=0"; exit 2; }

while getopts "n:s:c:" opt; do
    case $opt in
    n) ops=$OPTARG ;;
    s) seed=$OPTARG ;;
    c) config=$OPTARG ;;
    *) give_up "usage: $0 [-n OPS] [-s SEED] [-c CONFIG] DIR" ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || give_up "usage: $0 [-n OPS] [-s SEED] [-c CONFIG] DIR"
[ -d "$1" ] || give_up "no directory $1"
[ -n "$exerciser" ] && [ -x "$exerciser" ] || give_up "fsx is not installed (cargo install fsx)"
[ -f "$config" ] || give_up "no configuration at $config"

file=$1/fsx-$seed-$$
keep=$(mktemp -d "${TMPDIR:-/tmp}/fsx-$seed.XXXXXX")
name=$(basename "$config" .toml)
start=$(date +%s)
(cd / && "$exerciser" -N "$ops" -S "$seed" -f "$config" -P "$keep" "$file") >"$keep/log" 2>&1
status=$?
seconds=$(($(date +%s) - start))

if [ "$status" = 0 ] && grep -q 'All operations completed A-OK' "$keep/log"; then
    rm -f "$file"
    rm -rf "$keep"
    echo "fsx: passed ops=$ops seed=$seed config=$name seconds=$seconds"
    exit 0
fi
echo "fsx exited with status $status; the end of its log ($keep/log):"
tail -n 20 "$keep/log"
echo "kept: the file $file, fsx's expected copy and log in $keep"
echo "fsx: failed ops=$ops seed=$seed config=$name seconds=$seconds"
exit 1
