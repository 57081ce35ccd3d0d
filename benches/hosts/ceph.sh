# A throwaway Ceph cluster in the hub namespace: one monitor and one bluestore OSD on a sparse
# file in STATE/ceph, at $HUB_IP, with its own configuration and keyrings (nothing under
# /etc/ceph is read or changed), one replica, pool "rwxfs". Sourced by run.sh; the daemons are
# recorded in STATE/pids and stopped by teardown, and `ceph_remove` deletes its files.
#
# Needs STATE, HUB_IP and in_ns/hub_ns (net.sh). OSD_SIZE: the OSD's block file (default 12G,
# sparse: it takes what is written).

CEPH_POOL=rwxfs

# ceph_conf: the cluster's configuration file, for --ceph-conf.
ceph_conf() { echo "$STATE/ceph/ceph.conf"; }

# in_hub PROGRAM ARGS...: run a Ceph tool where the cluster is, to completion.
in_hub() { in_ns "$(hub_ns)" "$@"; }

ceph_config() { # ceph_config DIR FSID
    cat <<CONFIG
[global]
fsid = $2
mon_host = v2:$HUB_IP:3300
public_addr = $HUB_IP
ms_bind_ipv6 = false
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
auth_allow_insecure_global_id_reclaim = false
keyring = $1/admin.keyring
run_dir = $1/run
admin_socket = $1/run/\$name.asok
pid_file = $1/run/\$name.pid
log_file = $1/log/\$name.log
client_mount_timeout = 60
osd_pool_default_size = 1
osd_pool_default_min_size = 1
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
mon_warn_on_pool_no_redundancy = false
osd_crush_chooseleaf_type = 0
[mon]
mon_data = $1/mon
mon_data_avail_warn = 1
mon_data_avail_crit = 0
[osd]
osd_data = $1/osd
osd_objectstore = bluestore
bluestore_block_path = $1/osd.block
bluestore_block_create = true
bluestore_block_size = $(numfmt --from=iec "${OSD_SIZE:-12G}")
osd_memory_target = 2147483648
CONFIG
}

# ceph_up: make and start the cluster; returns once an object is written to its pool (which
# waits for the monitor, the OSD and the pool's placement groups).
ceph_up() {
    local d=$STATE/ceph conf fsid osd n
    conf=$(ceph_conf)
    mkdir -p "$d"/{run,log,mon,osd}
    fsid=$(cat /proc/sys/kernel/random/uuid)
    ceph_config "$d" "$fsid" >"$conf"
    ceph-authtool "$d/mon.keyring" --create-keyring --gen-key -n mon. --cap mon 'allow *' >/dev/null
    ceph-authtool "$d/admin.keyring" --create-keyring --gen-key -n client.admin \
        --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
    ceph-authtool "$d/mon.keyring" --import-keyring "$d/admin.keyring" >/dev/null
    monmaptool --create --addv a "[v2:$HUB_IP:3300]" --fsid "$fsid" "$d/monmap" >/dev/null
    ceph-mon -c "$conf" --mkfs -i a --monmap "$d/monmap" --keyring "$d/mon.keyring"
    spawn_in "$(hub_ns)" ceph-mon -c "$conf" -i a -f </dev/null >/dev/null 2>&1 &
    started ceph-mon $!
    osd=$(cat /proc/sys/kernel/random/uuid)
    # The client waits for the monitor to answer.
    n=$(in_hub ceph -c "$conf" osd new "$osd")
    in_hub ceph -c "$conf" auth get-or-create "osd.$n" mon 'allow profile osd' osd 'allow *' \
        -o "$d/osd/keyring" >/dev/null
    in_hub ceph-osd -c "$conf" -i "$n" --keyring "$d/osd/keyring" --mkfs --osd-uuid "$osd" >"$d/osd-mkfs.log" 2>&1
    spawn_in "$(hub_ns)" ceph-osd -c "$conf" -i "$n" --keyring "$d/osd/keyring" -f </dev/null >/dev/null 2>&1 &
    started ceph-osd $!
    in_hub ceph -c "$conf" osd pool create "$CEPH_POOL" 32 >"$d/osd-mkfs.log" 2>&1
    echo probe >"$d/probe"
    in_hub rados -c "$conf" -p "$CEPH_POOL" put probe "$d/probe"
    about "ceph: $(ceph --version | cut -d' ' -f1-3), one monitor and one bluestore OSD (its" \
        "block a sparse file on $(df --output=fstype "$d" | tail -n 1)), one replica, Ceph's" \
        "default OSD settings but a 2 GiB memory target, at $HUB_IP in the hub"
}

# ceph_remove: the cluster's files (after teardown stopped its daemons).
ceph_remove() {
    rm -rf "$STATE/ceph"
}
