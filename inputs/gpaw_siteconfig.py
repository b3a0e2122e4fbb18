"""GPAW build settings for amorph (``GPAW_CONFIG=inputs/gpaw_siteconfig.py pip install ...``).

GPAW finds MPI (mpicc/mpic++), libxc and BLAS by itself; its parallel plane-wave code also needs
ScaLAPACK, which it only uses when told: here, when MPI and a ScaLAPACK library are installed
(Debian: libopenmpi-dev openmpi-bin libscalapack-openmpi-dev). Without MPI, GPAW builds serial and
amorph runs it on one rank.
"""

import shutil
from pathlib import Path

_FOLDERS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib")
if shutil.which("mpicc"):
    for _name in ("scalapack-openmpi", "scalapack"):
        if any(Path(folder, f"lib{_name}.so").exists() for folder in _FOLDERS):
            scalapack = True
            libraries += [_name]  # noqa: F821 - defined by GPAW's setup.py, which runs this file
            break
