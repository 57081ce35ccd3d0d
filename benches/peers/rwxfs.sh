#!/usr/bin/env bash
# rwxfs itself, set up as the peers are: one `rwxfs serve` on a free port of 127.0.0.1, and
# $MOUNTS mounts of it. The script's name picks the variant (the others are links to it):
#   rwxfs.sh               mounts through the server, the image on the disk of the state directory
#   rwxfs-direct.sh        direct mounts (`rwxfs mount --direct`): file data straight to the image
#   rwxfs-tmpfs.sh         the image on a tmpfs of its own, as the FUSE ceiling's files are
#   rwxfs-direct-tmpfs.sh  both
#   rwxfs-direct-base.sh, rwxfs-direct-tmpfs-base.sh
#                          the same with the binary RWXFS_BASE names: another build, to compare
#                          with this one side by side in one run
#
#   rwxfs.sh up [STATE_DIR]    prints STATE=... and the system line
#   rwxfs.sh down STATE_DIR
#
# Environment: RWXFS (the binary; default: the release build of this checkout),
# IMAGE_SIZE (default 8G), TMPFS_SIZE (the tmpfs variants; default 8g).
PEER=$(basename "$0" .sh)
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
case $PEER in *direct*) direct=--direct ;; *) direct= ;; esac
case $PEER in *tmpfs*) tmpfs=1 ;; *) tmpfs= ;; esac
up_or_down "$@"
if [ "$1" = down ]; then
    teardown
    for d in "$STATE" "$STATE/disk"; do
        rm -f "$d/image" "$d/image.sessions" "$d/image.sessions.lock"
    done
    # The tmpfs goes last, once the server that held the image open is gone.
    if mountpoint -q "$STATE/disk"; then umount "$STATE/disk"; fi
    rmdir "$STATE"/m? "$STATE"/m?? "$STATE/disk" 2>/dev/null || true
    exit 0
fi
bin=${RWXFS:-$here/../../target/release/rwxfs}
case $PEER in *-base) bin=${RWXFS_BASE:?"$PEER runs the build RWXFS_BASE names"} ;; esac
[ -x "$bin" ] || fail "$bin is missing (cargo build --release, or set RWXFS)"
disk=$STATE
if [ -n "$tmpfs" ]; then
    disk=$STATE/disk
    mkdir -p "$disk"
    mount -t tmpfs -o "size=${TMPFS_SIZE:-8g}" rwxfs-peer-tmpfs "$disk"
fi
"$bin" mkfs "$disk/image" --size "${IMAGE_SIZE:-8G}" --force >&2
port=$(unused_port 7720)
"$bin" serve --image "$disk/image" --listen "127.0.0.1:$port" 2>"$STATE/serve.log" &
started serve $!
until_listening 127.0.0.1 "$port" $!
list=""
for i in $(seq "$MOUNTS"); do
    m=$STATE/m$i
    mkdir -p "$m"
    "$bin" mount --foreground $direct "127.0.0.1:$port" "$m" 2>"$STATE/mount$i.log" &
    started "mount$i" $!
    mounted "$m"
    until_mounted "$m" $!
    list=$list${list:+,}$m
done
about "$PEER: $("$bin" --version 2>&1 | head -n 1); rwxfs serve on a ${IMAGE_SIZE:-8G} image on $(df --output=fstype "$disk" | tail -n 1); $MOUNTS x rwxfs mount ${direct:+$direct }127.0.0.1:$port MNT"
echo "$PEER=$list" >"$STATE/system"
echo "STATE=$STATE"
cat "$STATE/system"
