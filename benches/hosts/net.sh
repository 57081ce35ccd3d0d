# Hosts played by network namespaces, each behind a rate-limited link; sourced by run.sh.
#
# A hub namespace holds a bridge (10.233.0.1/24, where the Ceph cluster listens). Every host is
# a namespace of its own, linked to the bridge by a veth pair: the host's end has its address,
# the other end is a port of the bridge. A host's link is limited both ways by a token bucket
# (tc tbf): on its own end (what it sends: its uplink) and on its bridge port (what it receives:
# its downlink), so a host's traffic to the cluster and to every other host shares its link, as
# a machine's NIC is shared. The hub itself is not limited: it stands for the storage network
# behind the OSD. Everything made is recorded in STATE (netns, links) and undone by teardown.
#
# Needs STATE (peers/lib.sh's state directory) and TAG (unique to this run, a few digits).

HUB_IP=10.233.0.1

# hub_ns: the namespace of the hub.
hub_ns() { echo "rwxfs-bh$TAG-hub"; }

# in_ns NS PROGRAM ARGS...: run PROGRAM in namespace NS's network only: its mounts are made
# in this mount namespace, where every other process sees them (unlike under `ip netns exec`).
in_ns() {
    local ns=$1
    shift
    nsenter "--net=/run/netns/$ns" -- "$@"
}

# spawn_in NS PROGRAM ARGS... &: as in_ns, for a background start, in a session of its own (a
# Ctrl-C at the terminal reaches the script, which stops everything in order, and not the
# daemons at once): the subshell, setsid and nsenter exec PROGRAM, so $! is PROGRAM's pid.
spawn_in() {
    local ns=$1
    shift
    exec setsid nsenter "--net=/run/netns/$ns" -- "$@"
}

# make_hub: the hub namespace and its bridge.
make_hub() {
    local hub
    hub=$(hub_ns)
    ip netns add "$hub"
    echo "$hub" >>"$STATE/netns"
    ip -n "$hub" link set lo up
    ip -n "$hub" link add br0 type bridge
    ip -n "$hub" addr add "$HUB_IP/24" dev br0
    ip -n "$hub" link set br0 up
}

# limit NS DEV RATE: a token bucket of RATE (tc's units: 100mbit) on DEV's egress, unless
# RATE is "none". The burst (256 KiB) holds the largest segment a veth hands over at once.
limit() {
    [ "$3" = none ] && return 0
    tc -n "$1" qdisc add dev "$2" root tbf rate "$3" burst 256kb latency 100ms
}

# make_host NAME N RATE: host NAME (a namespace) at 10.233.0.N on the bridge, its link
# limited to RATE each way. Records "NAME NAMESPACE PORT IP" in STATE/links.
make_host() {
    local name=$1 n=$2 rate=$3 hub ns dev port
    hub=$(hub_ns)
    ns=rwxfs-bh$TAG-$name
    dev=rbh$TAG$name
    port=rbp$TAG$name
    ip netns add "$ns"
    echo "$ns" >>"$STATE/netns"
    ip link add "$port" netns "$hub" type veth peer name "$dev" netns "$ns"
    ip -n "$hub" link set "$port" master br0
    ip -n "$hub" link set "$port" up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "10.233.0.$n/24" dev "$dev"
    ip -n "$ns" link set "$dev" up
    limit "$ns" "$dev" "$rate"
    limit "$hub" "$port" "$rate"
    echo "$name $ns $port 10.233.0.$n" >>"$STATE/links"
}

# host_field NAME FIELD: a field of host NAME's line in STATE/links (2 namespace, 3 port, 4 ip).
host_field() {
    awk -v n="$1" -v f="$2" '$1 == n { print $f }' "$STATE/links"
}
