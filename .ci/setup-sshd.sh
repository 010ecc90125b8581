#!/usr/bin/env bash
# An OpenSSH server on loopback for the SSHCluster tests (idempotent; run as root).
#
# Installs openssh-server/openssh-client (Debian) if missing, makes a client key pair and a
# host key under $OXIDASK_SSH_DIR (default $HOME/.cache/oxidask-ssh), authorizes the client
# key for root through this server's own AuthorizedKeysFile (~/.ssh is not touched), and
# starts `sshd` with its own config on 127.0.0.1:$OXIDASK_SSH_PORT (default 2222): keys
# only, no passwords, loopback only. A server already answering there is left as it is.
#
#   bash .ci/setup-sshd.sh
#   ssh -i ~/.cache/oxidask-ssh/id_ed25519 -p 2222 -o BatchMode=yes \
#       -o UserKnownHostsFile=~/.cache/oxidask-ssh/known_hosts root@127.0.0.1 true
set -euo pipefail

DIR="${OXIDASK_SSH_DIR:-$HOME/.cache/oxidask-ssh}"
PORT="${OXIDASK_SSH_PORT:-2222}"

if ! command -v ssh >/dev/null || ! [ -x /usr/sbin/sshd ]; then
    export DEBIAN_FRONTEND=noninteractive
    # Installing the package must not start the system's own sshd on port 22.
    made_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
        made_policy=1
    fi
    apt-get update -qq
    apt-get install -y -qq openssh-server openssh-client >/dev/null
    [ -z "$made_policy" ] || rm -f /usr/sbin/policy-rc.d
fi

mkdir -p "$DIR" /run/sshd
chmod 700 "$DIR"
[ -f "$DIR/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C oxidask-test -f "$DIR/id_ed25519"
[ -f "$DIR/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$DIR/ssh_host_ed25519_key"
cp "$DIR/id_ed25519.pub" "$DIR/authorized_keys"
chmod 600 "$DIR/authorized_keys"
echo "[127.0.0.1]:$PORT $(cut -d' ' -f1,2 "$DIR/ssh_host_ed25519_key.pub")" > "$DIR/known_hosts"

cat > "$DIR/sshd_config" <<CONF
ListenAddress 127.0.0.1
Port $PORT
HostKey $DIR/ssh_host_ed25519_key
PidFile $DIR/sshd.pid
AuthorizedKeysFile $DIR/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowTcpForwarding no
X11Forwarding no
PrintMotd no
MaxStartups 100:30:200
MaxSessions 100
Subsystem sftp internal-sftp
CONF

ssh_ok() {
    ssh -q -i "$DIR/id_ed25519" -p "$PORT" -o BatchMode=yes -o ConnectTimeout=5 \
        -o UserKnownHostsFile="$DIR/known_hosts" -o StrictHostKeyChecking=yes \
        root@127.0.0.1 true 2>/dev/null
}

if ssh_ok; then
    echo "sshd already running on 127.0.0.1:$PORT ($DIR)"
    exit 0
fi
# A server of ours that does not answer (stale keys or config) is replaced.
if [ -f "$DIR/sshd.pid" ] && kill -0 "$(cat "$DIR/sshd.pid")" 2>/dev/null; then
    kill "$(cat "$DIR/sshd.pid")" && sleep 0.5
fi
/usr/sbin/sshd -t -f "$DIR/sshd_config"
/usr/sbin/sshd -f "$DIR/sshd_config" -E "$DIR/sshd.log"
for _ in $(seq 50); do
    if ssh_ok; then
        echo "sshd running on 127.0.0.1:$PORT (key $DIR/id_ed25519, known hosts $DIR/known_hosts)"
        exit 0
    fi
    sleep 0.2
done
echo "setup-sshd: sshd did not answer on 127.0.0.1:$PORT; its log:" >&2
cat "$DIR/sshd.log" >&2 || true
exit 1
