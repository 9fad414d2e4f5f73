#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the real-SLURM test (tests/test_slurm.py) and for trying
# profiles/slurm locally. Needs root and Debian's slurm-wlm, munge, slurmdbd and mariadb-server
# (`cluster.sh install`). Every daemon runs from DIR and is stopped by the PID it wrote there.
#   cluster.sh install            apt-get the packages
#   cluster.sh start DIR          start munged, mariadbd, slurmdbd, slurmctld, slurmd; prints SLURM_CONF=...
#   cluster.sh stop DIR           stop them (by PID), in reverse order
# Partitions: `cpu` (default) and `gpu`; the node counts one GPU (gres gpu:1 on /dev/null), so `--gpus=1`
# jobs are scheduled and get CUDA_VISIBLE_DEVICES=0 without a real device. Accounting (sacct) is on.
set -euo pipefail

cmd=${1:?usage: cluster.sh install|start DIR|stop DIR}

install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends slurm-wlm munge slurmdbd mariadb-server >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null 2>&1
    apt-get install -y -qq --no-install-recommends slurm-wlm munge slurmdbd mariadb-server >/dev/null
  }
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local t=$1 what=$2; shift 2
  for _ in $(seq $((t * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "cluster.sh: $what did not come up within ${t}s (logs in $dir)" >&2
  return 1
}

start() {
  dir=$(mkdir -p "$1" && cd "$1" && pwd)
  host=$(hostname -s)
  cpus=$(nproc)
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
  mkdir -p "$dir"/{state,spool,mysql}
  # munge: the key comes with the package; the socket folder belongs to the munge user
  [ -s /etc/munge/munge.key ] || { mungekey --create >/dev/null 2>&1 || /usr/sbin/create-munge-key -f >/dev/null; }
  chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge && chown munge:munge /run/munge
  runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/glueslim-munged.pid --force
  cp /run/munge/glueslim-munged.pid "$dir/munged.pid"
  # mariadb for slurmdbd (accounting: sacct), its own data folder
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
  chown mysql:mysql "$dir/mysql"
  mariadb-install-db --user=mysql --datadir="$dir/mysql" --auth-root-authentication-method=socket >"$dir/mysql-install.log" 2>&1
  (setsid mariadbd --user=mysql --datadir="$dir/mysql" --pid-file="$dir/mysql/mariadbd.pid" \
     --socket=/run/mysqld/mysqld.sock --skip-networking --log-error="$dir/mysql/mariadbd.log" </dev/null >/dev/null 2>&1 &)
  wait_for 60 mariadbd mariadb --socket=/run/mysqld/mysqld.sock -e "select 1"

  cat >"$dir/slurm.conf" <<CONF
ClusterName=glueslim
SlurmctldHost=$host
AuthType=auth/munge
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
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
DefMemPerCPU=500
GresTypes=gpu
ReturnToService=2
MinJobAge=600
JobAcctGatherType=jobacct_gather/none
AccountingStoreFlags=job_comment
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
AccountingStorageTRES=gres/gpu
NodeName=$host CPUs=$cpus RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$host Default=NO MaxTime=INFINITE State=UP
CONF
  printf 'AutoDetect=off\nName=gpu File=/dev/null\n' >"$dir/gres.conf"
  cat >"$dir/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=glueslim_slurm_acct
PidFile=$dir/slurmdbd.pid
LogFile=$dir/slurmdbd.log
CONF
  chmod 600 "$dir/slurmdbd.conf"
  export SLURM_CONF="$dir/slurm.conf"
  slurmdbd
  wait_for 30 slurmdbd sacctmgr -i list cluster
  sacctmgr -i add cluster glueslim >/dev/null 2>&1 || true
  sacctmgr -i add account glueslim Cluster=glueslim >/dev/null 2>&1 || true
  sacctmgr -i add user root Account=glueslim >/dev/null 2>&1 || true
  slurmctld
  wait_for 30 slurmctld scontrol ping
  slurmd
  wait_for 30 "an idle node" sh -c "sinfo -h -N -o %T | grep -q idle"
  echo "SLURM_CONF=$SLURM_CONF"
}

stop() {
  dir=$(cd "$1" && pwd)
  for f in "$dir"/slurmd.pid "$dir"/slurmctld.pid "$dir"/slurmdbd.pid "$dir"/mysql/mariadbd.pid "$dir"/munged.pid; do
    [ -s "$f" ] || continue
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
  done
}

case "$cmd" in
  install) install ;;
  start) start "${2:?usage: cluster.sh start DIR}" ;;
  stop) stop "${2:?usage: cluster.sh stop DIR}" ;;
  *) echo "usage: cluster.sh install|start DIR|stop DIR" >&2; exit 2 ;;
esac
