#!/usr/bin/env bash
# sshfs: an sshd of its own on 127.0.0.1 (throw-away keys in the state directory, root by key
# only), exporting a directory on the disk that holds the state directory, and $MOUNTS sshfs
# mounts of it.
#
#   sshfs.sh up [STATE_DIR]    prints STATE=... and the system line
#   sshfs.sh down STATE_DIR
#
# Environment: SSHFS_OPTIONS (extra -o options; default none: sshfs as users get it),
# SSH_PORT (first port tried, default 2222).
PEER=sshfs
. "$(dirname "$0")/lib.sh"
up_or_down "$@"
if [ "$1" = down ]; then
    teardown
    rm -rf "$STATE/export"
    rmdir "$STATE"/m* 2>/dev/null || true
    exit 0
fi
require sshfs sshfs
require ssh-keygen openssh-client
sshd=$(command -v sshd || echo /usr/sbin/sshd)
[ -x "$sshd" ] || fail "sshd is missing (apt-get install openssh-server)"
sftp=/usr/lib/openssh/sftp-server
[ -x "$sftp" ] || fail "$sftp is missing (apt-get install openssh-server)"
# sshd wants its privilege separation directory.
[ -d /run/sshd ] || install -d -m 755 /run/sshd
keys=$STATE/keys
mkdir -p "$STATE/export" "$keys"
chmod 700 "$keys"
ssh-keygen -q -t ed25519 -N '' -f "$keys/host" </dev/null
ssh-keygen -q -t ed25519 -N '' -f "$keys/user" </dev/null
cp "$keys/user.pub" "$keys/authorized"
port=$(unused_port "${SSH_PORT:-2222}")
cat >"$keys/sshd_config" <<CONFIG
ListenAddress 127.0.0.1
Port $port
HostKey $keys/host
PidFile none
AuthorizedKeysFile $keys/authorized
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
Subsystem sftp $sftp
CONFIG
"$sshd" -D -e -f "$keys/sshd_config" >"$STATE/sshd.log" 2>&1 &
started sshd $!
until_listening 127.0.0.1 "$port" $!
ssh_options="port=$port,IdentityFile=$keys/user,StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,BatchMode=yes,LogLevel=ERROR"
extra=${SSHFS_OPTIONS:-}
list=""
for i in $(seq "$MOUNTS"); do
    m=$STATE/m$i
    mkdir -p "$m"
    sshfs -f "root@127.0.0.1:$STATE/export" "$m" -o "$ssh_options${extra:+,$extra}" >"$STATE/sshfs$i.log" 2>&1 &
    started "sshfs$i" $!
    mounted "$m"
    until_mounted "$m" $!
    list=$list${list:+,}$m
done
about "sshfs: $(sshfs --version 2>&1 | grep -i "^sshfs version" | head -n 1); $("$sshd" -V 2>&1 | head -n 1) on 127.0.0.1; options: ${extra:-none beyond the key and port}"
echo "sshfs=$list" >"$STATE/system"
echo "STATE=$STATE"
cat "$STATE/system"
