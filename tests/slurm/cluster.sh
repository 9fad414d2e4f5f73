#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the real-SLURM test (tests/test_slurm.py) and for trying
# profiles/slurm locally. Needs root and Debian's slurm-wlm, munge, slurmdbd and mariadb-server
# (`cluster.sh install`). Every daemon runs from DIR and is stopped by the PID it wrote there.
#   cluster.sh install            apt-get the packages
#   cluster.sh start DIR          start munged, mariadbd, slurmdbd, slurmctld, slurmd; prints SLURM_CONF=...
#   cluster.sh stop DIR           stop them (by PID), in reverse order
# Partitions: `cpu` (default) and `gpu`; the node counts one GPU per CPU (gres gpu:N on /dev/null copies DIR/gpuI),
# so `--gpus=1` jobs are scheduled and get CUDA_VISIBLE_DEVICES without a real device. Accounting (sacct) is
# on. The cluster is configless: slurmd caches the config in /run/slurm/conf, where commands inside a job
# find it; outside, set SLURM_CONF=DIR/slurm.conf.
set -euo pipefail

cmd=${1:?usage: cluster.sh install|start DIR|stop DIR}

install() {
  export DEBIAN_FRONTEND=noninteractive
  # the packages' own services (munge, mariadb, slurm*) are not started: `start` runs its own daemons
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
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
  gpus=$cpus
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
  mkdir -p "$dir"/{state,spool,mysql}
  # munge: the key comes with the package; the socket folder belongs to the munge user
  [ -s /etc/munge/munge.key ] || { mungekey --create >/dev/null 2>&1 || /usr/sbin/create-munge-key -f >/dev/null; }
  chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge && chown munge:munge /run/munge
  runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/glueslim-munged.pid --force
  cp /run/munge/glueslim-munged.pid "$dir/munged.pid"
  # mariadb for slurmdbd (accounting: sacct), its own data folder in DIR. It runs as root: DIR may sit below
  # folders that only root can enter (pytest's tmp_path), and this database lives only as long as the cluster.
  mkdir -p /run/mysqld
  mariadb-install-db --user=root --datadir="$dir/mysql" --auth-root-authentication-method=socket \
    >"$dir/mysql-install.log" 2>&1 || { echo "cluster.sh: mariadb-install-db failed, see $dir/mysql-install.log" >&2
                                         exit 1; }
  (setsid mariadbd --user=root --datadir="$dir/mysql" --pid-file="$dir/mysql/mariadbd.pid" \
     --socket=/run/mysqld/mysqld.sock --skip-networking --log-error="$dir/mysql/mariadbd.log" \
     </dev/null >/dev/null 2>&1 &)
  wait_for 60 mariadbd mariadb --socket=/run/mysqld/mysqld.sock -e "select 1"

  cat >"$dir/slurm.conf" <<CONF
ClusterName=glueslim
SlurmctldHost=$host
AuthType=auth/munge
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmctldParameters=enable_configless
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
NodeName=$host CPUs=$cpus RealMemory=$mem Gres=gpu:$gpus State=UNKNOWN
PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$host Default=NO MaxTime=INFINITE State=UP
CONF
  # one counted GPU per CPU (GPU jobs then run side by side like the others); each needs a File, a character
  # device: DIR/gpuI, a copy of /dev/null (SLURM numbers the GPU I from the name)
  for i in $(seq 0 $((gpus - 1))); do rm -f "$dir/gpu$i"; mknod -m 666 "$dir/gpu$i" c 1 3; done
  printf 'AutoDetect=off\nName=gpu File=%s/gpu[0-%d]\n' "$dir" $((gpus - 1)) >"$dir/gres.conf"
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
  # configless: slurmd fetches the config from slurmctld and caches it in /run/slurm/conf, where SLURM's
  # commands inside a job find it (the SLURM executor's job step drops SLURM_CONF from srun's environment)
  env -u SLURM_CONF slurmd --conf-server "$host:6817"
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
  # slurmd's link to its config cache (configless mode), if it points into DIR
  case "$(readlink /run/slurm/conf 2>/dev/null)" in "$dir"/*) rm -f /run/slurm/conf ;; esac
}

case "$cmd" in
  install) install ;;
  start) start "${2:?usage: cluster.sh start DIR}" ;;
  stop) stop "${2:?usage: cluster.sh stop DIR}" ;;
  *) echo "usage: cluster.sh install|start DIR|stop DIR" >&2; exit 2 ;;
esac
