#!/usr/bin/env bash
# A one-node SLURM cluster with accounting on this machine, to try and test the harness's
# SLURM path (launcher=slurm cluster=local) without a real cluster.
#
#   scripts/slurm_local.sh start    install (apt, first time) and start munge, MariaDB,
#                                    slurmdbd, slurmctld, slurmd; idempotent
#   scripts/slurm_local.sh stop     stop them in reverse order, each by its own pid file
#   scripts/slurm_local.sh status   one line per daemon and the node; exit 0 when all are up
#
# Debian/Ubuntu, root (re-run under sudo otherwise), no systemd needed. The cluster is
# `local`, one node (this host at 127.0.0.1) in partition `debug`, with accounting
# (slurmdbd + MariaDB), because Submitit follows jobs with `sacct`: without it a job killed
# from outside is never seen to end. It writes /etc/slurm/{slurm,slurmdbd}.conf and refuses
# to replace ones it did not write. A munge or MariaDB that was already running is used
# as it is and left running by `stop`.
set -euo pipefail

PIDS=/run/hasac-slurm                      # the pid files of every daemon started here
LOGS=/var/log/slurm
CONF=/etc/slurm/slurm.conf
DBD_CONF=/etc/slurm/slurmdbd.conf
MARK="# written by hasac-bench scripts/slurm_local.sh"
DB_SOCKET=/run/mysqld/mysqld.sock
PACKAGES=(slurm-wlm slurmdbd munge mariadb-server)

say() { echo "slurm_local: $*"; }
die() { echo "slurm_local: error: $*" >&2; exit 2; }

# --- pid files --------------------------------------------------------------------------
alive() {  # alive <pid file>: the process named in it exists
  local pid
  [ -s "$1" ] && pid=$(cat "$1") && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

stop_by_pidfile() {  # stop_by_pidfile <name> <pid file>
  local name=$1 file=$2 pid
  if ! alive "$file"; then
    rm -f "$file"
    say "$name: not running"
    return
  fi
  pid=$(cat "$file")
  kill -TERM "$pid"
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "$name (pid $pid) ignored SIGTERM for 10 s; SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
  say "$name: stopped (pid $pid)"
}

wait_for() {  # wait_for <what> <seconds> <command...>
  local what=$1 seconds=$2
  shift 2
  for _ in $(seq 1 $((seconds * 5))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  die "$what did not come up within ${seconds}s (logs in $LOGS)"
}

# --- install ----------------------------------------------------------------------------
install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return
  command -v apt-get >/dev/null || die "needs apt-get (Debian/Ubuntu) to install ${missing[*]}"
  say "installing ${missing[*]} (about a minute)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# --- configuration ----------------------------------------------------------------------
ours_or_absent() {  # a config file we may (over)write
  [ ! -e "$1" ] || grep -qF "$MARK" "$1" ||
    die "$1 exists and was not written by this script; it runs only its own one-node cluster"
}

node_line() {  # what `slurmd -C` says about this machine, as our node
  local host=$1 hw mem
  hw=$(slurmd -C | head -1 | sed -E 's/^NodeName=[^ ]+ //; s/ RealMemory=[0-9]+//')
  mem=$(( $(free -m | awk '/^Mem:/ {print $2}') - 1024 ))
  [ "$mem" -ge 512 ] || mem=512
  echo "NodeName=$host NodeAddr=127.0.0.1 $hw RealMemory=$mem State=UNKNOWN"
}

write_configs() {
  local host
  host=$(hostname -s)
  ours_or_absent "$CONF"
  ours_or_absent "$DBD_CONF"
  mkdir -p /etc/slurm
  cat >"$CONF" <<EOF
$MARK
ClusterName=local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=cred_expire=10
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$PIDS/slurmctld.pid
SlurmdPidFile=$PIDS/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobCompType=jobcomp/none
InactiveLimit=0
MinJobAge=300
KillWait=10
Waittime=0
$(node_line "$host")
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  (umask 077 && cat >"$DBD_CONF" <<EOF
$MARK
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurm-local
StorageLoc=slurm_acct_db
LogFile=$LOGS/slurmdbd.log
PidFile=$PIDS/slurmdbd.pid
EOF
  )
  chmod 600 "$DBD_CONF"
}

# --- daemons ----------------------------------------------------------------------------
munge_works() { munge -n | unmunge; }

start_munge() {
  if munge_works >/dev/null 2>&1; then
    say "munge: running"
    return
  fi
  [ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key
  chmod 400 /etc/munge/munge.key
  install -d -o munge -g munge -m 755 /run/munge
  # in the foreground (its pid is $!), as user munge, in its own session
  setsid setpriv --reuid=munge --regid=munge --init-groups munged --foreground \
    >>"$LOGS/munged.log" 2>&1 </dev/null &
  echo $! >"$PIDS/munged.pid"
  wait_for munge 10 munge_works
  say "munge: started (pid $(cat "$PIDS/munged.pid"))"
}

db_works() { mariadb-admin --socket="$DB_SOCKET" ping; }

start_mariadb() {
  if db_works >/dev/null 2>&1; then
    say "mariadb: running"
  else
    install -d -o mysql -g mysql -m 755 /run/mysqld
    [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql >/dev/null
    setsid mariadbd --user=mysql --socket="$DB_SOCKET" >>"$LOGS/mariadbd.log" 2>&1 </dev/null &
    echo $! >"$PIDS/mariadbd.pid"
    wait_for mariadb 60 db_works
    say "mariadb: started (pid $(cat "$PIDS/mariadbd.pid"))"
  fi
  mariadb --socket="$DB_SOCKET" -e "
    CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm-local';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
}

start_slurm_daemon() {  # start_slurm_daemon <name> <ready check...>
  local name=$1
  shift
  if alive "$PIDS/$name.pid"; then
    say "$name: running (pid $(cat "$PIDS/$name.pid"))"
    return
  fi
  "$name"
  wait_for "$name" 30 "$@"
  say "$name: started (pid $(cat "$PIDS/$name.pid"))"
}

node_ready() {
  local state
  state=$(sinfo -h -N -o '%T' | head -1)
  [ "$state" = idle ] || [ "$state" = mixed ] || [ "$state" = allocated ]
}

start() {
  install_packages
  mkdir -p "$PIDS" "$LOGS" /var/spool/slurmctld /var/spool/slurmd
  chmod 755 "$PIDS"
  write_configs
  start_munge
  start_mariadb
  start_slurm_daemon slurmdbd sacctmgr -n show cluster
  start_slurm_daemon slurmctld scontrol ping
  start_slurm_daemon slurmd node_ready
  say "cluster 'local' is up: $(sinfo -h -o '%P %D node(s) %T %c CPUs')"
  say "try: python -m harness.run suite=smoke launcher=slurm cluster=local"
}

stop() {
  stop_by_pidfile slurmd "$PIDS/slurmd.pid"
  stop_by_pidfile slurmctld "$PIDS/slurmctld.pid"
  stop_by_pidfile slurmdbd "$PIDS/slurmdbd.pid"
  stop_by_pidfile mariadb "$PIDS/mariadbd.pid"
  stop_by_pidfile munge "$PIDS/munged.pid"
}

status() {  # each daemon: does it answer, and was it started here
  local down=0 name check owner
  for name in munged mariadbd slurmdbd slurmctld slurmd; do
    case $name in
      munged) check=munge_works ;;
      mariadbd) check=db_works ;;
      slurmdbd) check="sacctmgr -n show cluster" ;;
      slurmctld) check="scontrol ping" ;;
      slurmd) check=node_ready ;;
    esac
    owner="not started by this script"
    alive "$PIDS/$name.pid" && owner="pid $(cat "$PIDS/$name.pid")"
    if command -v "${check%% *}" >/dev/null && $check >/dev/null 2>&1; then
      say "$name: up ($owner)"
    else
      say "$name: down"
      down=$((down + 1))
    fi
  done
  [ "$down" -eq 0 ] || return 3
  say "$(sinfo --version), cluster $(scontrol show config | awk '/^ClusterName/ {print $3}'):" \
    "$(sinfo -h -o '%P %D node(s) %T %c CPUs')"
}

case "${1:-}" in
  start | stop | status) ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || die "must run as root (no sudo here)"
  exec sudo "$0" "$@"
fi
"$1"
