#!/usr/bin/env bash
# The libraries GPAW builds against for MPI runs (Open MPI, ScaLAPACK, libxc, OpenBLAS), from
# Debian's packages; idempotent. The test command then builds GPAW with inputs/gpaw_siteconfig.py
# (set as GPAW_CONFIG by .ci/run). Without them GPAW still builds, serial, with its own PBE.
set -euo pipefail
packages=(libxc-dev libopenblas-dev libopenmpi-dev openmpi-bin libscalapack-openmpi-dev)
missing=()
for package in "${packages[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if (( ${#missing[@]} )); then
    echo "[amorph-ci dft] installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
