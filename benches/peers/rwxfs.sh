#!/usr/bin/env bash
# rwxfs itself, set up as the peers are: one `rwxfs serve` on an image on the disk that holds
# the state directory, on a free port of 127.0.0.1, and $MOUNTS mounts of it.
#
#   rwxfs.sh up [STATE_DIR]    prints STATE=... and the system line
#   rwxfs.sh down STATE_DIR
#
# Environment: RWXFS (the binary; default: the release build of this checkout),
# IMAGE_SIZE (default 8G).
PEER=rwxfs
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
up_or_down "$@"
if [ "$1" = down ]; then
    teardown
    rm -f "$STATE/image" "$STATE/image.sessions" "$STATE/image.sessions.lock"
    rmdir "$STATE"/m? 2>/dev/null || true
    exit 0
fi
bin=${RWXFS:-$here/../../target/release/rwxfs}
[ -x "$bin" ] || fail "$bin is missing (cargo build --release, or set RWXFS)"
"$bin" mkfs "$STATE/image" --size "${IMAGE_SIZE:-8G}" --force >&2
port=$(unused_port 7720)
"$bin" serve --image "$STATE/image" --listen "127.0.0.1:$port" 2>"$STATE/serve.log" &
started serve $!
until_listening 127.0.0.1 "$port" $!
list=""
for i in $(seq "$MOUNTS"); do
    m=$STATE/m$i
    mkdir -p "$m"
    "$bin" mount --foreground "127.0.0.1:$port" "$m" 2>"$STATE/mount$i.log" &
    started "mount$i" $!
    mounted "$m"
    until_mounted "$m" $!
    list=$list${list:+,}$m
done
about "rwxfs: $("$bin" --version 2>&1 | head -n 1); rwxfs serve on a ${IMAGE_SIZE:-8G} image on $(df --output=fstype "$STATE" | tail -n 1); $MOUNTS x rwxfs mount 127.0.0.1:$port MNT"
echo "rwxfs=$list" >"$STATE/system"
echo "STATE=$STATE"
cat "$STATE/system"
