#!/usr/bin/env bash
# MooseFS 3 (Debian 12's packages): a master and one chunkserver in a network namespace of their
# own (10.231.250.2: MooseFS refuses a chunkserver and master that meet over 127.x), chunks on
# the disk that holds the state directory, and $MOUNTS mfsmount clients here. Configuration
# files live in the state directory; nothing under /etc is read or changed. Daemons run in the
# foreground and are stopped by pid.
#
#   moosefs.sh up [STATE_DIR]    prints STATE=... and the system line
#   moosefs.sh down STATE_DIR
#
# Environment: MFSMOUNT_OPTIONS (default mfsnice=0: MooseFS renices itself to -19 otherwise,
# ahead of every other peer), MFS_EMPTY (default /var/lib/mfs/metadata.mfs.empty).
PEER=moosefs
. "$(dirname "$0")/lib.sh"
up_or_down "$@"
if [ "$1" = down ]; then
    teardown
    rm -rf "$STATE/chunks"
    rmdir "$STATE"/m? 2>/dev/null || true
    exit 0
fi
require mfsmaster moosefs-master
require mfschunkserver moosefs-chunkserver
require mfsmount moosefs-client
require ip iproute2
empty=${MFS_EMPTY:-/var/lib/mfs/metadata.mfs.empty}
[ -f "$empty" ] || fail "$empty is missing (moosefs-master ships it; or set MFS_EMPTY)"
mount_options=${MFSMOUNT_OPTIONS:-mfsnice=0}
host_in_netns moosefs 250
mkdir -p "$STATE/master" "$STATE/chunkserver" "$STATE/chunks"
cp "$empty" "$STATE/master/metadata.mfs"
echo "10.231.250.0/30 / rw,alldirs,maproot=0" >"$STATE/exports.cfg"
: >"$STATE/topology.cfg"
echo "$STATE/chunks" >"$STATE/hdd.cfg"
# Ports: MooseFS's defaults, on the namespace's own address.
cat >"$STATE/master.cfg" <<CONFIG
WORKING_USER = root
WORKING_GROUP = root
NICE_LEVEL = 0
DATA_PATH = $STATE/master
EXPORTS_FILENAME = $STATE/exports.cfg
TOPOLOGY_FILENAME = $STATE/topology.cfg
MATOML_LISTEN_HOST = $INNER
MATOCS_LISTEN_HOST = $INNER
MATOCL_LISTEN_HOST = $INNER
CONFIG
cat >"$STATE/chunkserver.cfg" <<CONFIG
WORKING_USER = root
WORKING_GROUP = root
NICE_LEVEL = 0
DATA_PATH = $STATE/chunkserver
HDD_CONF_FILENAME = $STATE/hdd.cfg
BIND_HOST = $INNER
MASTER_HOST = $INNER
CSSERV_LISTEN_HOST = $INNER
CONFIG
ip netns exec "$NETNS" mfsmaster -f -c "$STATE/master.cfg" start >"$STATE/master.log" 2>&1 &
started mfsmaster $!
until_listening "$INNER" 9421 $!
ip netns exec "$NETNS" mfschunkserver -f -c "$STATE/chunkserver.cfg" start >"$STATE/chunkserver.log" 2>&1 &
started mfschunkserver $!
until_listening "$INNER" 9422 $!
list=""
for i in $(seq "$MOUNTS"); do
    m=$STATE/m$i
    mkdir -p "$m"
    mfsmount -f "$m" -o "mfsmaster=$INNER,$mount_options" >"$STATE/mfsmount$i.log" 2>&1 &
    started "mfsmount$i" $!
    mounted "$m"
    until_mounted "$m" $!
    list=$list${list:+,}$m
done
# The volume has room once the chunkserver has reported its disk to the master.
until [ "$(df --output=size "$STATE/m1" | tail -n 1 | tr -d ' ')" -gt 0 ]; do
    kill -0 "$(awk '$1 == "mfschunkserver" { print $2 }' "$STATE/pids")" || fail "the chunkserver exited"
    sleep 0.2
done
# One copy of each chunk: there is one chunkserver.
mfssetgoal -r 1 "$STATE/m1" >/dev/null
about "moosefs: $(mfsmaster -v 2>&1 | head -n 1); one master and one chunkserver in netns $NETNS ($INNER), chunks on $(df --output=fstype "$STATE/chunks" | tail -n 1), goal 1; mfsmount -o mfsmaster=$INNER,$mount_options (the rest default)"
echo "moosefs=$list" >"$STATE/system"
echo "STATE=$STATE"
cat "$STATE/system"
