#!/usr/bin/env bash
# Start a single-node SLURM cluster (munged, slurmctld, slurmd) and a MongoDB
# wire-protocol server (mongoeco) on 127.0.0.1, for cluster tests.
#
# Env (all optional):
#   AMORPH_CI_DIR         state folder (default /tmp/amorph-ci)
#   AMORPH_CI_MONGO_PORT  wire server port (default 27217)
#   AMORPH_CI_MONGO_SQLITE=1  back the server with SQLite instead of memory
#   AMORPH_CI_SLURM_CPUS  CPUs the node advertises (default: nproc; more => oversubscribe)
#   AMORPH_CI_SLURMCTLD_PORT / AMORPH_CI_SLURMD_PORT (default 6817 / 6818)
#   AMORPH_CI_SKIP_INSTALL=1  do not run install.sh
# Writes $AMORPH_CI_DIR/pids/<name>.pid for each daemon, logs in $AMORPH_CI_DIR/log,
# and $AMORPH_CI_DIR/env.sh (SLURM_CONF, AMORPH_CI_MONGO_HOST/PORT/URI).
# On failure it calls stop.sh, so nothing is left running.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CI_DIR="${AMORPH_CI_DIR:-/tmp/amorph-ci}"
MONGO_PORT="${AMORPH_CI_MONGO_PORT:-27217}"
VENV="${AMORPH_CI_VENV:-/opt/amorph-ci/mongoeco-venv}"
CTLD_PORT="${AMORPH_CI_SLURMCTLD_PORT:-6817}"
SLURMD_PORT="${AMORPH_CI_SLURMD_PORT:-6818}"
NCPU="$(nproc)"
CPUS="${AMORPH_CI_SLURM_CPUS:-$NCPU}"
export AMORPH_CI_DIR="$CI_DIR"

log() { echo "[amorph-ci start] $*" >&2; }
fail() {
    log "FAILED: $*"
    for f in "$CI_DIR"/log/*.log; do [[ -f $f ]] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }; done
    bash "$HERE/stop.sh" || true
    exit 1
}
alive() { [[ -f "$CI_DIR/pids/$1.pid" ]] && kill -0 "$(cat "$CI_DIR/pids/$1.pid")" 2>/dev/null; }
# wait_for SECONDS NAME CMD...: until CMD succeeds; fail early if daemon NAME died
wait_for() {
    local secs=$1 name=$2; shift 2
    local end=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        alive "$name" || fail "$name exited (see $CI_DIR/log/$name.log)"
        ((SECONDS < end)) || fail "timeout (${secs}s) waiting for $name: $*"
        sleep 0.5
    done
}
# launch NAME CMD...: run CMD in its own session, record its PID
launch() {
    local name=$1; shift
    setsid "$@" >"$CI_DIR/log/$name.log" 2>&1 </dev/null &
    echo $! >"$CI_DIR/pids/$name.pid"
}

[[ $EUID == 0 ]] || { log "must run as root"; exit 1; }
[[ "${AMORPH_CI_SKIP_INSTALL:-0}" == 1 ]] || bash "$HERE/install.sh"

# Already running (all daemons alive)? Then nothing to do.
if alive munged && alive slurmctld && alive slurmd && alive mongo && [[ -f "$CI_DIR/env.sh" ]]; then
    log "already running in $CI_DIR"
    exit 0
fi
bash "$HERE/stop.sh" >/dev/null 2>&1 || true   # clean leftovers of a half start

# Fresh cluster state (job ids restart at 1), logs and database every start.
rm -rf "$CI_DIR/slurm" "$CI_DIR/log" "$CI_DIR/mongo"
mkdir -p "$CI_DIR"/{pids,log,munge,slurm/state,slurm/spool,mongo}
chown munge:munge "$CI_DIR/munge"
chmod 755 "$CI_DIR/munge"
# munged runs as user munge: every folder above its socket must be traversable.
setpriv --reuid=munge --regid=munge --init-groups test -w "$CI_DIR/munge" \
    || fail "user munge cannot reach $CI_DIR/munge (choose an AMORPH_CI_DIR outside 0700 folders)"

# --- munge -------------------------------------------------------------------
MUNGE_SOCK="$CI_DIR/munge/munge.socket"
launch munged setpriv --reuid=munge --regid=munge --init-groups \
    munged --foreground --force --socket="$MUNGE_SOCK" --pid-file="$CI_DIR/munge/munged.pid" \
    --log-file="$CI_DIR/munge/munged.log" --seed-file="$CI_DIR/munge/munged.seed" \
    --key-file=/etc/munge/munge.key
wait_for 20 munged bash -c "munge -n -S '$MUNGE_SOCK' | unmunge -S '$MUNGE_SOCK'"

# --- slurm ---------------------------------------------------------------------
MEM_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
CONF="$CI_DIR/slurm/slurm.conf"
S="$CI_DIR/slurm"
{
    echo "ClusterName=amorphci"
    echo "SlurmctldHost=localhost(127.0.0.1)"
    echo "SlurmctldPort=$CTLD_PORT"
    echo "SlurmdPort=$SLURMD_PORT"
    echo "SlurmUser=root"
    echo "SlurmdUser=root"
    echo "AuthType=auth/munge"
    echo "CredType=cred/munge"
    echo "AuthInfo=socket=$MUNGE_SOCK"
    echo "ProctrackType=proctrack/linuxproc"
    echo "TaskPlugin=task/none"
    echo "JobAcctGatherType=jobacct_gather/none"
    echo "AccountingStorageType=accounting_storage/none"
    echo "JobCompType=jobcomp/none"
    echo "SchedulerType=sched/backfill"
    echo "SchedulerParameters=sched_interval=2"
    echo "SelectType=select/cons_tres"
    echo "SelectTypeParameters=CR_Core"
    echo "MpiDefault=none"
    echo "MailProg=/bin/true"
    echo "ReturnToService=2"
    echo "KillWait=5"
    echo "MinJobAge=300"
    echo "InactiveLimit=0"
    echo "SlurmctldTimeout=30"
    echo "SlurmdTimeout=60"
    echo "StateSaveLocation=$S/state"
    echo "SlurmdSpoolDir=$S/spool"
    echo "SlurmctldPidFile=$S/slurmctld.pid"
    echo "SlurmdPidFile=$S/slurmd.pid"
    echo "SlurmctldLogFile=$CI_DIR/log/slurmctld-daemon.log"
    echo "SlurmdLogFile=$CI_DIR/log/slurmd-daemon.log"
    echo "SlurmctldDebug=info"
    echo "SlurmdDebug=info"
    ((CPUS > NCPU)) && echo "SlurmdParameters=config_overrides"
    echo "NodeName=localhost NodeHostname=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN"
    echo "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO"
} >"$CONF"
export SLURM_CONF="$CONF"

launch slurmctld slurmctld -D -c -f "$CONF"
wait_for 30 slurmctld scontrol ping
launch slurmd slurmd -D -N localhost -f "$CONF"
node_idle() { [[ "$(sinfo -h -N -n localhost -o %T 2>/dev/null)" == idle* ]]; }
wait_for 60 slurmd node_idle

# --- MongoDB wire server -------------------------------------------------------------
MONGO_ARGS=(--host 127.0.0.1 --port "$MONGO_PORT")
[[ "${AMORPH_CI_MONGO_SQLITE:-0}" == 1 ]] && MONGO_ARGS+=(--sqlite "$CI_DIR/mongo/db.sqlite")
launch mongo "$VENV/bin/python" "$HERE/mongo_wire.py" "${MONGO_ARGS[@]}"
wait_for 30 mongo "$VENV/bin/python" -c "
import pymongo
c = pymongo.MongoClient('127.0.0.1', $MONGO_PORT, directConnection=True, serverSelectionTimeoutMS=1000)
c.admin.command('ping')"

for name in munged slurmctld slurmd mongo; do alive "$name" || fail "$name died"; done

cat >"$CI_DIR/env.sh" <<ENV
export AMORPH_CI_DIR="$CI_DIR"
export SLURM_CONF="$CONF"
export AMORPH_CI_MONGO_HOST=127.0.0.1
export AMORPH_CI_MONGO_PORT=$MONGO_PORT
export AMORPH_CI_MONGO_URI="mongodb://127.0.0.1:$MONGO_PORT/?directConnection=true"
ENV
log "up: SLURM_CONF=$CONF mongo=127.0.0.1:$MONGO_PORT (source $CI_DIR/env.sh)"
