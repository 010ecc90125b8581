#!/usr/bin/env bash
# A real single-node SLURM cluster on this host (Debian's slurm-wlm and munge), for the
# SlurmCluster tests (python/tests/deploy/test_slurm.py). Idempotent: installs what is
# missing, writes /etc/slurm/slurm.conf for one node (this host, its real CPUs and memory,
# select/cons_tres, proctrack/linuxproc, no cgroups), starts munged, slurmctld and slurmd
# when they are not running, and waits until `sinfo` shows the node idle. Needs root.
set -euo pipefail

log() { echo "setup-slurm: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    log "must run as root (installs packages and starts daemons)"
    exit 1
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null \
    || ! command -v sbatch >/dev/null; then
    log "installing slurm-wlm and munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq slurm-wlm munge >/dev/null
fi

NODE=$(hostname -s)
if ! getent hosts "$NODE" >/dev/null; then
    echo "127.0.0.1 $NODE" >>/etc/hosts
fi
CPUS=$(nproc --all)
MEM_MB=$(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo)
# Leave some memory to the system, as a site would.
REAL_MB=$((MEM_MB * 9 / 10))

# munge: a key readable by munge only, the daemon running as munge.
if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile /etc/munge/munge.key 2>/dev/null \
        || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
fi
chown munge:munge /etc/munge/munge.key
chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
chmod 755 /run/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "starting munged"
    runuser -u munge -- /usr/sbin/munged --force
    for _ in $(seq 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.1
    done
    munge -n | unmunge >/dev/null
fi

mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/slurm
CONF=/etc/slurm/slurm.conf
NEW=$(mktemp)
cat >"$NEW" <<CONF
# Written by oxidask's .ci/setup-slurm.sh: one node, this host.
ClusterName=oxidask-ci
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=256
ReturnToService=2
SchedulerType=sched/backfill
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=30
NodeName=$NODE CPUs=$CPUS RealMemory=$REAL_MB State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
CHANGED=0
if ! cmp -s "$NEW" "$CONF"; then
    install -m 644 "$NEW" "$CONF"
    CHANGED=1
fi
rm -f "$NEW"
# No cgroup.conf: nothing here uses cgroups (proctrack/linuxproc, task/none); slurmd only
# probes which cgroup version the host has.

running() { pgrep -x "$1" >/dev/null; }
if [ "$CHANGED" = 1 ]; then
    # A new configuration: restart the daemons that read the old one.
    for d in slurmd slurmctld; do
        if running "$d"; then
            log "restarting $d for the new slurm.conf"
            pkill -x "$d" || true
            for _ in $(seq 50); do running "$d" || break; sleep 0.1; done
        fi
    done
fi
if ! running slurmctld; then
    log "starting slurmctld"
    /usr/sbin/slurmctld
fi
if ! running slurmd; then
    log "starting slurmd"
    /usr/sbin/slurmd
fi

for i in $(seq 300); do
    state=$(sinfo -h -n "$NODE" -o %t 2>/dev/null || true)
    case "$state" in
    idle | mix | alloc) break ;;
    down* | drain* | drng*)
        scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true ;;
    esac
    sleep 0.2
done
state=$(sinfo -h -n "$NODE" -o %t 2>/dev/null || true)
case "$state" in
idle | mix | alloc) log "node $NODE is $state ($CPUS CPUs, ${REAL_MB} MB)" ;;
*)
    log "node $NODE did not become idle (state: ${state:-none}); logs:"
    tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
    exit 1
    ;;
esac
