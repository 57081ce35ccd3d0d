#!/usr/bin/env bash
# GlusterFS (Debian 12's packages): a glusterd and a one-brick volume in a network namespace of
# their own (10.231.251.2: gluster refuses a brick named localhost or 127.0.0.1), the brick on
# the disk that holds the state directory, and $MOUNTS FUSE clients here. glusterd's working
# directory is in the state directory; its daemons are stopped by pid, the volume by gluster.
#
#   glusterfs.sh up [STATE_DIR]    prints STATE=... and the system line
#   glusterfs.sh down STATE_DIR
#
# Environment: GLUSTER_CLIENT_OPTIONS (extra glusterfs client options; default none).
PEER=glusterfs
. "$(dirname "$0")/lib.sh"
up_or_down "$@"
volume=rwxfspeer
gluster_cli() { ip netns exec "$(head -n 1 "$STATE/netns")" gluster --mode=script "$@"; }
if [ "$1" = down ]; then
    if [ -f "$STATE/mounts" ]; then
        tac "$STATE/mounts" | while read -r m; do mountpoint -q "$m" && umount "$m"; done
    fi
    if [ -f "$STATE/netns" ]; then
        gluster_cli volume stop "$volume" force >/dev/null 2>&1 || true
        gluster_cli volume delete "$volume" >/dev/null 2>&1 || true
    fi
    teardown
    rm -rf "$STATE/brick"
    rmdir "$STATE"/m? 2>/dev/null || true
    exit 0
fi
require glusterd glusterfs-server
require glusterfs glusterfs-client
require ip iproute2
host_in_netns glusterfs 251
mkdir -p "$STATE/glusterd" "$STATE/brick"
cat >"$STATE/glusterd.vol" <<CONFIG
volume management
    type mgmt/glusterd
    option working-directory $STATE/glusterd
    option transport-type socket
    option transport.socket.bind-address $INNER
    option transport.socket.listen-port 24007
    option event-threads 1
end-volume
CONFIG
ip netns exec "$NETNS" glusterd -N -f "$STATE/glusterd.vol" -l "$STATE/glusterd.log" >"$STATE/glusterd.out" 2>&1 &
started glusterd $!
until_listening "$INNER" 24007 $!
until gluster_cli volume list >/dev/null 2>&1; do
    kill -0 "$(awk '$1 == "glusterd" { print $2 }' "$STATE/pids")" || fail "glusterd exited"
    sleep 0.2
done
gluster_cli volume create "$volume" "$INNER:$STATE/brick/0" force >&2
gluster_cli volume start "$volume" >&2
# The brick's daemon, as gluster reports it, is stopped by pid on the way down too.
brick=$(gluster_cli volume status "$volume" --xml | sed -n 's:.*<pid>\([0-9][0-9]*\)</pid>.*:\1:p' | head -n 1)
[ -n "$brick" ] && started glusterfsd "$brick"
list=""
for i in $(seq "$MOUNTS"); do
    m=$STATE/m$i
    mkdir -p "$m"
    # shellcheck disable=SC2086
    glusterfs -N --volfile-server="$INNER" --volfile-id="$volume" ${GLUSTER_CLIENT_OPTIONS:-} \
        -l "$STATE/client$i.log" "$m" >"$STATE/client$i.out" 2>&1 &
    started "glusterfs$i" $!
    mounted "$m"
    until_mounted "$m" $!
    list=$list${list:+,}$m
done
about "glusterfs: $(glusterfs --version | head -n 1); glusterd in netns $NETNS ($INNER), one brick on $(df --output=fstype "$STATE/brick" | tail -n 1), volume options default; client: glusterfs -N --volfile-server=$INNER ${GLUSTER_CLIENT_OPTIONS:-}"
echo "glusterfs=$list" >"$STATE/system"
echo "STATE=$STATE"
cat "$STATE/system"
