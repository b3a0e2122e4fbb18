#!/usr/bin/env bash
# Stop everything start.sh (and the tests) recorded in $AMORPH_CI_DIR/pids:
# TERM, then KILL after a grace period; also cancels/kills leftover SLURM jobs.
# Safe to call twice, and after a failed or partial start.
set -euo pipefail

CI_DIR="${AMORPH_CI_DIR:-/tmp/amorph-ci}"
GRACE="${AMORPH_CI_STOP_GRACE:-5}"
PIDS_DIR="$CI_DIR/pids"
log() { echo "[amorph-ci stop] $*" >&2; }

# Cancel SLURM jobs first, while slurmctld still runs (best effort).
if [[ -f "$CI_DIR/slurm/slurm.conf" && -f "$PIDS_DIR/slurmctld.pid" ]] \
    && kill -0 "$(cat "$PIDS_DIR/slurmctld.pid")" 2>/dev/null; then
    SLURM_CONF="$CI_DIR/slurm/slurm.conf" timeout 10 scancel --full --quiet --partition=debug 2>/dev/null || true
fi

# descendants PID: print all descendant PIDs of PID (via /proc)
descendants() {
    local kids
    kids=$(ps -o pid= --ppid "$1" 2>/dev/null || true)
    for k in $kids; do echo "$k"; descendants "$k"; done
}

declare -a targets=()
# add_pidfile FILE: target its PID, unless that PID now belongs to a process started
# after the file was written (PID reused after a crash/reboot: not ours).
add_pidfile() {
    local f=$1 pid etimes
    [[ -f $f ]] || return 0
    pid=$(cat "$f" 2>/dev/null || true)
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    etimes=$(ps -o etimes= -p "$pid" 2>/dev/null | tr -d ' ') || return 0
    [[ -n $etimes ]] || return 0
    if (($(date +%s) - etimes > $(stat -c %Y "$f") + 5)); then
        log "pid $pid in $f is a newer process: left alone"
        return 0
    fi
    targets+=("$pid")
}
if [[ -d "$PIDS_DIR" ]]; then
    # Extra pid files (runner, qlaunch, ...) first; then mongo, slurmd, slurmctld, munged.
    for f in "$PIDS_DIR"/*.pid; do
        case $(basename "$f" .pid) in munged|slurmctld|slurmd|mongo) continue ;; esac
        add_pidfile "$f"
    done
    for name in mongo slurmd slurmctld munged; do add_pidfile "$PIDS_DIR/$name.pid"; done
fi
# slurmstepd processes of this cluster (they hold our slurmd log open) and, below,
# their children: job processes left over.
for pid in $(ps -eo pid=,comm= | awk '$2 == "slurmstepd" {print $1}'); do
    for fd in /proc/"$pid"/fd/*; do
        if [[ "$(readlink "$fd" 2>/dev/null)" == "$CI_DIR"/* ]]; then targets+=("$pid"); break; fi
    done
done

# Expand to descendants (job scripts, python workers) so nothing is orphaned.
declare -a all=()
for pid in "${targets[@]}"; do
    kill -0 "$pid" 2>/dev/null || continue
    all+=("$pid")
    while read -r d; do [[ -n $d ]] && all+=("$d"); done < <(descendants "$pid")
done

if ((${#all[@]})); then
    log "TERM ${all[*]}"
    kill -TERM "${all[@]}" 2>/dev/null || true
    end=$((SECONDS + GRACE))
    while ((SECONDS < end)); do
        alive=0
        for pid in "${all[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.3
    done
    for pid in "${all[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then log "KILL $pid"; kill -KILL "$pid" 2>/dev/null || true; fi
    done
fi
rm -f "$PIDS_DIR"/*.pid "$CI_DIR/env.sh" 2>/dev/null || true
log "stopped"
