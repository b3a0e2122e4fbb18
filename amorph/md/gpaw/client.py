"""The GPAW side of a parallel session, run on every MPI rank by the engine.

It is started as:

    mpiexec -n N python -m amorph.md.gpaw.client REQUEST SOCKET

REQUEST is a JSON file (GPAW's keyword arguments, the atoms, the log file, the folder of generated
datasets); rank 0 answers amorph over the Unix socket SOCKET until amorph closes it. An error is
printed and ends every rank (MPI aborts on an exception in one of them).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(request: str, socket: str) -> None:
    """GPAW on the atoms of ``request``, answering amorph over ``socket`` (every rank runs it)."""
    import gpaw
    from ase import Atoms
    from ase.calculators.socketio import SocketClient
    from gpaw.mpi import world

    from amorph.md.gpaw.engine import GpawCalculator

    task = json.loads(Path(request).read_text())
    gpaw.setup_paths.insert(0, task["datasets"])
    atoms = Atoms(task["numbers"], positions=task["positions"], cell=task["cell"], pbc=True)
    log = Path(task["log"]) if task["log"] else None
    atoms.calc = GpawCalculator(task["parameters"], log, communicator=world)
    SocketClient(unixsocket=socket, comm=world).run(atoms, use_stress=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
