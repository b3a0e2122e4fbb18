#!/usr/bin/env bash
# Install what the local CI cluster needs; idempotent and quick when done.
#   - Debian packages: slurmctld slurmd slurm-client munge
#   - a Python 3.13 venv with mongoeco[wire] (the MongoDB wire server)
#   - (optional) the cluster client packages in the main Python env
# Env: AMORPH_CI_VENV (default /opt/amorph-ci/mongoeco-venv)
#      AMORPH_CI_PY313 (Python >= 3.13; default $(pyenv root)/versions/3.13.0/bin/python)
#      AMORPH_CI_CLIENTS=1 also pip-installs AMORPH_CI_CLIENT_REQS into `python` (default 0)
set -euo pipefail

MONGOECO_REQ="mongoeco[wire]==4.11.0"
VENV="${AMORPH_CI_VENV:-/opt/amorph-ci/mongoeco-venv}"
CLIENT_REQS="${AMORPH_CI_CLIENT_REQS:-jobflow-remote>=1.0,<1.1 dask-jobqueue>=0.9 fireworks>=2.0}"

log() { echo "[amorph-ci install] $*" >&2; }

# --- Debian packages ---------------------------------------------------------
need_apt=0
for exe in slurmctld slurmd sbatch squeue scancel sinfo munged mungekey setpriv; do
    command -v "$exe" >/dev/null 2>&1 || { need_apt=1; break; }
done
if [[ $need_apt == 1 ]]; then
    log "installing slurm + munge from apt"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge util-linux >/dev/null
fi
if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating munge key"
    mkdir -p /etc/munge
    mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null || create-munge-key -f
fi
chown munge:munge /etc/munge /etc/munge/munge.key
chmod 700 /etc/munge
chmod 600 /etc/munge/munge.key

# --- mongoeco venv -----------------------------------------------------------
if ! "$VENV/bin/python" -c "import mongoeco.wire.proxy, pymongo, importlib.metadata as m; assert m.version('mongoeco') == '4.11.0'" 2>/dev/null; then
    PY313="${AMORPH_CI_PY313:-}"
    if [[ -z "$PY313" ]]; then
        for cand in "$(pyenv root 2>/dev/null)/versions/3.13.0/bin/python" python3.13 python3.14; do
            if command -v "$cand" >/dev/null 2>&1 || [[ -x "$cand" ]]; then PY313="$cand"; break; fi
        done
    fi
    [[ -n "$PY313" ]] || { log "no Python >= 3.13 found (set AMORPH_CI_PY313)"; exit 1; }
    log "creating $VENV with $PY313"
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    "$PY313" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$MONGOECO_REQ" \
        >"$VENV/pip-install.log" 2>&1 || { cat "$VENV/pip-install.log" >&2; exit 1; }
fi

# --- client packages in the main env (opt-in) --------------------------------
if [[ "${AMORPH_CI_CLIENTS:-0}" == 1 ]]; then
    if ! python -c "import jobflow_remote, dask_jobqueue, fireworks" 2>/dev/null; then
        log "pip install $CLIENT_REQS"
        # shellcheck disable=SC2086
        python -m pip install -q $CLIENT_REQS
    fi
fi
log "ok"
