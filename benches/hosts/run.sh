#!/usr/bin/env bash
# The scaling curve of rwxfs's two safe placements where each mount is a host of its own:
# through the server, every byte crosses the server host's link; in direct mode, each mount
# reads and writes file data on the shared RADOS volume over its own host's link. Hosts are
# network namespaces behind rate-limited links (net.sh), the volume lives in a one-OSD Ceph
# cluster on the hub of their network (ceph.sh). `rwxfs bench --mounts` runs on the mounts of
# each path in turn, repetition after repetition with the order rotated, while sample.py logs
# every link's traffic and the machine's CPU; report.py prints the table. Everything made
# (namespaces, links, cluster, server, mounts) is torn down at the end, on error and on
# Ctrl-C or SIGTERM too.
#
#   run.sh OUT_DIR [rwxfs bench options...]    default options: --only scaling --size 256M
#
# Environment: RATE (each host's link, each way, in tc's units; default 50mbit; "none" for
# unlimited links, to see what the CPU and the OSD alone allow), WRITERS (writer hosts, default
# 8; one more host reads back), REPS (default 3), PATHS (default "server direct"), RWXFS (the
# binary; default: the release build of this checkout), VOLUME_SIZE (default 4G), OSD_SIZE,
# OWNER_LEASE_SECS (the server's --owner-lease-secs, default 300: see below).
# OUT_DIR gets PATH.REP.json (the bench's report), PATH.REP.samples (sample.py's lines),
# about.txt, report.txt and state/ (the daemons' logs).
here=$(cd "$(dirname "$0")" && pwd)
PEER=hosts
. "$here/../peers/lib.sh"
. "$here/net.sh"
. "$here/ceph.sh"
out=${1:?usage: $0 OUT_DIR [rwxfs bench options...]}
shift
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--only scaling --size 256M)
require nsenter util-linux
require tc iproute2
require ceph-osd ceph-osd
mkdir -p "$out"
out=$(cd "$out" && pwd)
bin=${RWXFS:-$here/../../target/release/rwxfs}
[ -x "$bin" ] || fail "$bin is missing (cargo build --release, or set RWXFS)"
rate=${RATE:-50mbit}
writers=${WRITERS:-8}
paths=(${PATHS:-server direct})
for p in "${paths[@]}"; do
    case $p in server | direct) ;; *) fail "PATHS: $p is neither server nor direct" ;; esac
done
STATE=$(state hosts "$out/state")
export STATE
[ ! -s "$STATE/pids" ] && [ ! -s "$STATE/netns" ] ||
    fail "$STATE holds another run's processes or namespaces (run.sh's own clean-up failed?)"
rm -f "$STATE/links" "$STATE/about"
TAG=$(($$ % 100000))
bench_pid=
sampler_pid=

# Clean-up: the bench first, killed outright (what it was writing is thrown away with the
# volume; not waited for: a writer stuck on a mount whose server is gone lets go only when the
# mount's process is stopped), the sampler, then what teardown stops, then both reaped.
down_all() {
    [ -z "$bench_pid" ] || kill -KILL "$bench_pid" 2>/dev/null || true
    [ -z "$sampler_pid" ] || kill -TERM "$sampler_pid" 2>/dev/null || true
    teardown
    ceph_remove
    rm -f "$STATE/links"
    rmdir "$STATE"/server* "$STATE"/direct* 2>/dev/null || true
    wait
}
trap down_all EXIT
set -E
trap 'note "failed (line $LINENO): $BASH_COMMAND"' ERR
trap 'exit 130' INT TERM

# until_reachable HOST IP PORT PID: wait until IP:PORT accepts a connection made from HOST's
# namespace, or PID dies.
until_reachable() {
    while ! in_ns "$(host_field "$1" 2)" bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null; do
        kill -0 "$4" 2>/dev/null || fail "the process that was to listen on $2:$3 exited (see $STATE)"
        sleep 0.2
    done
}

note "hosts: a server and $((writers + 1)) mounts, each link $rate each way"
make_hub
make_host srv 2 "$rate"
for i in $(seq $((writers + 1))); do make_host "m$i" $((10 + i)) "$rate"; done
note "starting the Ceph cluster"
ceph_up
conf=$(ceph_conf)
image=rados://$CEPH_POOL/bench
in_hub "$bin" mkfs "$image" --size "${VOLUME_SIZE:-4G}" --ceph-conf "$conf" >&2
server=$(host_field srv 4):7720
# The server's ownership lease is renewed through its connection to the OSD, behind the data
# writes it has in flight there (up to 128): on a slow link those take longer than the default
# 10 s lease, and the server loses the volume and stops. A long lease keeps it.
spawn_in "$(host_field srv 2)" "$bin" serve --image "$image" --listen "$server" \
    --ceph-conf "$conf" --owner-lease-secs "${OWNER_LEASE_SECS:-300}" 2>"$STATE/serve.log" &
started serve $!
until_reachable m1 "${server%:*}" "${server#*:}" $!
declare -A mounts
for p in "${paths[@]}"; do
    opts=()
    [ "$p" = direct ] && opts=(--direct --ceph-conf "$conf")
    for i in $(seq $((writers + 1))); do
        m=$STATE/$p$i
        mkdir -p "$m"
        spawn_in "$(host_field "m$i" 2)" "$bin" mount --foreground "${opts[@]}" "$server" "$m" \
            2>"$STATE/$p-mount$i.log" &
        started "mount-$p$i" $!
        mounted "$m"
        until_mounted "$m" $!
        mounts[$p]=${mounts[$p]:-}${mounts[$p]:+,}$m
    done
done
{
    echo "$("$bin" --version 2>&1 | head -n 1); kernel $(uname -r), $(nproc) cores"
    echo "links: each host's $rate each way (tc tbf); the hub (the OSD) unlimited"
    echo "server at $server, --owner-lease-secs ${OWNER_LEASE_SECS:-300}; $((writers + 1)) hosts with a mount of each path: ${paths[*]}"
    echo "rwxfs bench --mounts M1,...,M$((writers + 1)) --json ${args[*]}"
    cat "$STATE/about"
    echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$out/about.txt"
n=${#paths[@]}
for rep in $(seq "${REPS:-3}"); do
    for k in $(seq 0 $((n - 1))); do
        p=${paths[$(((k + rep - 1) % n))]}
        note "repetition $rep: $p"
        "$bin" bench --mounts "${mounts[$p]}" --json "${args[@]}" >"$out/$p.$rep.json" &
        bench_pid=$!
        spawn_in "$(hub_ns)" python3 "$here/sample.py" "$STATE" "bench=$bench_pid" >"$out/$p.$rep.samples" &
        sampler_pid=$!
        wait "$bench_pid" || fail "rwxfs bench failed on the $p path (see $out/$p.$rep.json)"
        bench_pid=
        kill -TERM "$sampler_pid"
        wait "$sampler_pid" || true
        sampler_pid=
    done
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/about.txt"
python3 "$here/report.py" "$out" --rate "$rate" | tee "$out/report.txt"
note "done: $out"
