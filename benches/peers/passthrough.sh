#!/usr/bin/env bash
# The FUSE ceiling: a FUSE passthrough (bindfs, libfuse3) of one directory on a tmpfs, mounted
# $MOUNTS times by as many daemons. Every call crosses FUSE and nothing else (no network, no
# disk), which bounds what any FUSE file system can do on this machine.
#
#   passthrough.sh up [STATE_DIR]    prints STATE=... and the system line
#   passthrough.sh down STATE_DIR
#
# Environment: TMPFS_SIZE (default 8g), BINDFS_OPTIONS (default --multithreaded -o big_writes:
# bindfs is built on libfuse 2, which without big_writes gets every write in pieces of 4 KiB and
# writes at a fifth of the speed; with it, 128 KiB, the most libfuse 2 takes).
PEER=passthrough
. "$(dirname "$0")/lib.sh"
up_or_down "$@"
if [ "$1" = down ]; then
    teardown
    rmdir "$STATE"/m* "$STATE/under" 2>/dev/null || true
    exit 0
fi
require bindfs bindfs
options=${BINDFS_OPTIONS:---multithreaded -o big_writes}
mkdir -p "$STATE/under"
mount -t tmpfs -o "size=${TMPFS_SIZE:-8g}" rwxfs-peer-tmpfs "$STATE/under"
mounted "$STATE/under"
list=""
for i in $(seq "$MOUNTS"); do
    m=$STATE/m$i
    mkdir -p "$m"
    # shellcheck disable=SC2086
    bindfs -f $options "$STATE/under" "$m" >"$STATE/bindfs$i.log" 2>&1 &
    started "bindfs$i" $!
    mounted "$m"
    until_mounted "$m" $!
    list=$list${list:+,}$m
done
about "passthrough: $(bindfs --version 2>&1 | head -n 1), bindfs -f $options DIR MNT, DIR on tmpfs (size ${TMPFS_SIZE:-8g}), $MOUNTS daemons"
echo "passthrough=$list" >"$STATE/system"
echo "STATE=$STATE"
cat "$STATE/system"
