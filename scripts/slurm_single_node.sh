#!/usr/bin/env bash
# A single-node SLURM on this machine (with accounting, which `sacct` and so submitit need), for the tests of the
# slurm executor (tests/test_executors.py) and for trying the cluster workflow of docs/cluster.md by hand.
#   bash scripts/slurm_single_node.sh start    write the config, start munged, MariaDB, slurmdbd, slurmctld, slurmd
#                                             and wait until the node is idle (idempotent)
#   bash scripts/slurm_single_node.sh stop     stop what `start` started
#   bash scripts/slurm_single_node.sh status   sinfo, or why it is down
# Needs root and Debian's slurm-wlm, slurmdbd, munge and mariadb-server (.ci/run installs them). Every command
# must see the config: export SLURM_CONF=$dir/slurm.conf (`start` prints the line). Partitions: debug (default), long.
# The node has two GPUs in its configuration (GresTypes=gpu, Gres=gpu:2, gres.conf naming two empty files), so jobs
# that ask for GPUs (--gpus-per-node) are scheduled and see SLURM_GPUS_ON_NODE; there is no CUDA behind them, which
# is how the benchmark's "no GPU in this job" error is tested from this GPU-less host.
# No cgroups in a container: proctrack/linuxproc, task/none. Environment: nnUNet_mamba_slurm_dir (the folder for
# config, state and logs; default /var/lib/nnunetv2_mamba-slurm).
set -euo pipefail
dir="${nnUNet_mamba_slurm_dir:-/var/lib/nnunetv2_mamba-slurm}"
export SLURM_CONF="$dir/slurm.conf"
host="$(hostname -s)"
timeout_s=60

fail() { echo "[slurm_single_node] $*" >&2; exit 1; }

write_config() {
    mkdir -p "$dir/state" "$dir/spool" "$dir/gpus"
    touch "$dir/gpus/gpu0" "$dir/gpus/gpu1"  # the node's two "GPU devices": empty files, no CUDA behind them
    local memory_mb cpus
    memory_mb="$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')"
    cpus="$(nproc)"
    cat > "$dir/slurm.conf" <<EOF
ClusterName=nnunetv2mamba
SlurmctldHost=$host(127.0.0.1)
AuthType=auth/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
MpiDefault=none
ReturnToService=2
KillWait=5
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
JobAcctGatherType=jobacct_gather/none
GresTypes=gpu
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory_mb Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=long Nodes=$host MaxTime=INFINITE State=UP
EOF
    echo "Name=gpu File=$dir/gpus/gpu[0-1]" > "$dir/gres.conf"
    # slurmdbd reads slurmdbd.conf beside slurm.conf and refuses it unless only its user can read it.
    cat > "$dir/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=$host
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=$dir/slurmdbd.pid
LogFile=$dir/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=nnunetv2_mamba_slurm_acct
EOF
    chmod 600 "$dir/slurmdbd.conf"
}

# (sinfo retries for a minute where slurm.conf is missing: look for it and the controller first)
running() { [ -f "$SLURM_CONF" ] && pgrep -x slurmctld >/dev/null; }
node_idle() { running && sinfo -h -N -o %t 2>/dev/null | grep -qx 'idle\|mix\|alloc'; }

wait_for() {  # wait_for DAEMON COMMAND...: retry COMMAND for $timeout_s seconds while DAEMON runs
    local daemon="$1"; shift
    for _ in $(seq "$timeout_s"); do
        "$@" >/dev/null 2>&1 && return 0
        pgrep -x "$daemon" >/dev/null || break
        sleep 1
    done
    fail "$daemon did not come up within ${timeout_s}s; its log: $(tail -n 5 "$dir/$daemon.log" 2>/dev/null)"
}

start() {
    [ "$(id -u)" = 0 ] || fail "needs root (it starts system daemons)"
    for tool in munged mariadbd slurmdbd slurmctld slurmd sinfo; do
        command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] ||
            fail "$tool is missing: apt-get install -y slurm-wlm slurmdbd munge mariadb-server"
    done
    # running only if accounting runs too (submitit reads job states through sacct): a cluster whose MariaDB was
    # stopped under it is started again below, daemon by daemon
    if node_idle && pgrep -x mariadbd >/dev/null && pgrep -x slurmdbd >/dev/null; then
        echo "export SLURM_CONF=$SLURM_CONF"; return
    fi
    write_config
    [ -f /etc/munge/munge.key ] || { mungekey --create 2>/dev/null || /usr/sbin/create-munge-key -f; }
    pgrep -x munged >/dev/null || service munge start >/dev/null || fail "munged did not start"
    pgrep -x mariadbd >/dev/null || service mariadb start >/dev/null || fail "MariaDB did not start"
    wait_for mariadbd mariadb -e "select 1"
    pgrep -x slurmdbd >/dev/null || slurmdbd || fail "slurmdbd did not start: $(tail -n 5 "$dir/slurmdbd.log")"
    sleep 1  # slurmdbd forks before it reads its config: let a fatal error end it before wait_for looks
    wait_for slurmdbd sacctmgr -n list cluster
    pgrep -x slurmctld >/dev/null || slurmctld || fail "slurmctld did not start: $(tail -n 5 "$dir/slurmctld.log")"
    wait_for slurmctld scontrol ping
    pgrep -x slurmd >/dev/null || slurmd || fail "slurmd did not start: $(tail -n 5 "$dir/slurmd.log")"
    wait_for slurmd node_idle
    echo "export SLURM_CONF=$SLURM_CONF"
}

stop() {
    local daemon
    for daemon in slurmd slurmctld slurmdbd; do
        [ -f "$dir/$daemon.pid" ] && kill "$(cat "$dir/$daemon.pid")" 2>/dev/null || true
    done
    service mariadb stop >/dev/null 2>&1 || true
    service munge stop >/dev/null 2>&1 || true
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) running && sinfo || fail "SLURM is not running (bash scripts/slurm_single_node.sh start); logs in $dir" ;;
    *) echo "usage: bash scripts/slurm_single_node.sh {start|stop|status}" >&2; exit 2 ;;
esac
