# Helpers for the peer set-ups; sourced, never run.
#
# Every set-up keeps what it started in its state directory, so that `down` stops exactly that:
#   STATE/mounts   mount points, one a line, in the order made (unmounted last first)
#   STATE/pids     "NAME PID START" a line, processes started (stopped by pid, last first; START,
#                  the process's start time, keeps a pid the kernel gave another process since)
#   STATE/netns    network namespaces made (deleted last)
#   STATE/about    versions and the exact options, for the report
#   STATE/system   NAME=M1,M2,... : the mounts of one shared volume, for `rwxfs bench --mounts`
set -euo pipefail

fail() { echo "$(basename "$0"): $*" >&2; exit 1; }
note() { echo "[$(date -u +%T)] $(basename "$0"): $*" >&2; }
require() { # require PROGRAM DEBIAN_PACKAGE
    command -v "$1" >/dev/null || fail "$1 is missing (apt-get install $2)"
}

# state NAME [DIR]: DIR (made if needed), else a new one under $TMPDIR.
state() {
    local dir=${2:-}
    if [ -z "$dir" ]; then dir=$(mktemp -d "${TMPDIR:-/tmp}/rwxfs-peer-$1.XXXXXX"); fi
    mkdir -p "$dir"
    (cd "$dir" && pwd)
}

# start_time PID: when the process PID started (clock ticks since boot), empty if it is gone.
start_time() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    # The fields after the command name (which may hold spaces) start at its closing ")".
    set -- ${stat##*) }
    echo "${20}"
}
started() { echo "$1 $2 $(start_time "$2")" >>"$STATE/pids"; }

# running PID: PID is a process that has not exited (a zombie, exited but not yet reaped by
# the script that started it, has).
running() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    set -- ${stat##*) }
    [ "$1" != Z ]
}
mounted() { echo "$1" >>"$STATE/mounts"; }
about() { echo "$*" >>"$STATE/about"; }

# until_mounted DIR PID: wait for the event (DIR becomes a mount point), or for PID to die.
until_mounted() {
    while ! mountpoint -q "$1"; do
        kill -0 "$2" 2>/dev/null || fail "the process that was to mount $1 exited (see its log in $STATE)"
        sleep 0.1
    done
}

# until_listening HOST PORT PID: wait until HOST:PORT accepts a connection, or PID dies.
until_listening() {
    while ! (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; do
        kill -0 "$3" 2>/dev/null || fail "the process that was to listen on $1:$2 exited (see $STATE)"
        sleep 0.1
    done
}

# unused_port FROM: the first port from FROM on that nothing on 127.0.0.1 listens on.
unused_port() {
    local p=$1
    while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
    echo "$p"
}

# stop NAME PID [START]: SIGTERM, then SIGKILL if it is still there after 20 s. That pid only,
# and only while it is the process that started at START.
stop() {
    local i
    if [ -n "${3:-}" ] && [ "$(start_time "$2")" != "$3" ]; then return 0; fi
    kill -TERM "$2" 2>/dev/null || return 0
    for i in $(seq 200); do
        running "$2" || return 0
        sleep 0.1
    done
    note "$1 ($2) ignored SIGTERM: SIGKILL"
    kill -KILL "$2" 2>/dev/null || true
}

# teardown: what STATE records, in reverse: mounts, then processes, then namespaces.
teardown() {
    local m name pid ns
    if [ -f "$STATE/mounts" ]; then
        tac "$STATE/mounts" | while read -r m; do
            # From the mount table, not a stat of the mount (which asks its server, maybe gone).
            awk -v m="$m" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo || continue
            umount "$m" 2>/dev/null || { sleep 1; umount "$m" 2>/dev/null; } || umount -l "$m"
        done
        rm -f "$STATE/mounts"
    fi
    if [ -f "$STATE/pids" ]; then
        tac "$STATE/pids" | while read -r name pid start; do stop "$name" "$pid" "$start"; done
        rm -f "$STATE/pids"
    fi
    if [ -f "$STATE/netns" ]; then
        tac "$STATE/netns" | while read -r ns; do ip netns delete "$ns" 2>/dev/null || true; done
        rm -f "$STATE/netns"
    fi
}

# up_or_down "$@": the common command line, `up [STATE_DIR]` or `down STATE_DIR`.
up_or_down() {
    case "${1:-}" in
    up) STATE=$(state "$PEER" "${2:-}") ;;
    down) [ -n "${2:-}" ] || fail "down needs the state directory"; STATE=$(state "$PEER" "$2") ;;
    *) echo "usage: $0 up [STATE_DIR] | down STATE_DIR" >&2; exit 2 ;;
    esac
    export STATE
}

# Five mounts of every peer: four writers, each through its own, and one to read back through.
MOUNTS=${MOUNTS:-5}

# host_in_netns NAME N: a network namespace of this set-up's own, linked to this host by a veth
# pair: the host side is 10.231.N.1, the namespace's side 10.231.N.2 (the address range the
# project's test hosts use; nothing leaves the machine). Servers that refuse loopback peers
# (MooseFS) or loopback brick names (GlusterFS) run in it, their clients stay outside.
host_in_netns() {
    local ns=rwxfs-peer-$1 host=rwxp$2h inner=rwxp$2n
    ip netns add "$ns"
    echo "$ns" >>"$STATE/netns"
    ip link add "$host" type veth peer name "$inner"
    ip link set "$inner" netns "$ns"
    ip addr add "10.231.$2.1/30" dev "$host"
    ip link set "$host" up
    ip -n "$ns" addr add "10.231.$2.2/30" dev "$inner"
    ip -n "$ns" link set "$inner" up
    ip -n "$ns" link set lo up
    NETNS=$ns
    INNER=10.231.$2.2
}
