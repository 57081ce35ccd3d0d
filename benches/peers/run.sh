#!/usr/bin/env bash
# rwxfs beside the peers users would pick instead, in one run: set up each system, run
# `rwxfs bench --mounts` (every workload verifies what it wrote) on each in turn, repetition
# after repetition with the order rotated, so that the systems share the machine's moods; then
# tear everything down, on error and Ctrl-C too.
#
#   run.sh OUT_DIR [rwxfs bench options...]     e.g. run.sh /tmp/peers --size 1G
#
# Environment: SYSTEMS (default "rwxfs passthrough sshfs moosefs glusterfs": the scripts beside
# this one), REPS (default 3), RWXFS (the binary; default: the release build of this checkout),
# and each set-up's own variables (MOUNTS, TMPFS_SIZE, SSHFS_OPTIONS, MFSMOUNT_OPTIONS, ...).
# OUT_DIR gets one JSON report per system and repetition (NAME.REP.json), about.txt (versions
# and exact options) and the set-ups' state directories (their logs).
here=$(cd "$(dirname "$0")" && pwd)
PEER=run
. "$here/lib.sh"
out=${1:?usage: $0 OUT_DIR [rwxfs bench options...]}
shift
mkdir -p "$out"
out=$(cd "$out" && pwd)
bin=${RWXFS:-$here/../../target/release/rwxfs}
export RWXFS=$bin
[ -x "$bin" ] || fail "$bin is missing (cargo build --release, or set RWXFS)"
systems=(${SYSTEMS:-rwxfs passthrough sshfs moosefs glusterfs})
up=()
down_all() {
    local i
    for ((i = ${#up[@]} - 1; i >= 0; i--)); do
        "$here/${up[$i]}.sh" down "$out/${up[$i]}" || note "tearing down ${up[$i]} failed"
    done
}
trap down_all EXIT
trap 'exit 130' INT TERM
declare -A mounts
: >"$out/about.txt"
for s in "${systems[@]}"; do
    [ -x "$here/$s.sh" ] || fail "no set-up $here/$s.sh"
    note "setting up $s"
    up+=("$s")
    "$here/$s.sh" up "$out/$s" >/dev/null
    mounts[$s]=$(cut -d= -f2 "$out/$s/system")
    cat "$out/$s/about" >>"$out/about.txt"
done
echo "kernel $(uname -r), $(nproc) cores" >>"$out/about.txt"
n=${#systems[@]}
for rep in $(seq "${REPS:-3}"); do
    for k in $(seq 0 $((n - 1))); do
        s=${systems[$(((k + rep - 1) % n))]}
        note "repetition $rep: $s"
        "$bin" bench --mounts "${mounts[$s]}" --json "$@" >"$out/$s.$rep.json"
    done
done
note "done: $out"
