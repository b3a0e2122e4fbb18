"""The GPAW engine: an ASE engine whose calculator is GPAW, made per cell and per cutoff.

With one MPI rank GPAW runs inside amorph's process. With more, each session starts
``mpi_command`` (``mpiexec -n N``) on :mod:`amorph.md.gpaw.client`, which runs GPAW on all ranks and
answers amorph over a Unix socket (ASE's i-PI protocol: positions and cell in; energy, forces and
virial out); its wave functions stay in memory from one MD step to the next, as in-process. The
MD itself (chunks, checkpoints, resume, blow-ups) is the lifecycle of every engine
(:class:`~amorph.md.ase.ASEEngine`). Energies are GPAW's free energies, the ones its forces
differentiate. An SCF that does not converge in ``max_scf_iterations``, or MPI ranks that stop,
end the run with one line naming the step.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.socketio import SocketIOCalculator
from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor

from amorph.constants import EV_A3_TO_GPA
from amorph.errors import EngineError
from amorph.files import dies_with_this_process
from amorph.md.ase import ASEEngine
from amorph.md.engine import BasisStress, EngineSpec
from amorph.md.gpaw.settings import GpawSettings


class GpawCalculator(Calculator):
    """GPAW with keyword arguments ``parameters`` as a plain ASE calculator: energy (the free
    energy), forces and stress together; an unconverged SCF is an ``EngineError``."""

    # a class constant, though ASE's BaseCalculator annotates it without ClassVar (RUF012)
    implemented_properties: ClassVar[list[str]] = ["energy", "free_energy", "forces", "stress"]  # type: ignore[misc]

    def __init__(self, parameters: dict[str, Any], log: Path | None = None, communicator=None):
        super().__init__()
        from gpaw import GPAW

        self.log = log
        self.gpaw = GPAW(**parameters, txt=str(log) if log else None, communicator=communicator)

    def calculate(
        self, atoms: Atoms | None = None, properties=("energy",), system_changes=all_changes
    ) -> None:
        """Energy, forces and stress from GPAW; an unconverged SCF raises ``EngineError``."""
        from gpaw import KohnShamConvergenceError

        super().calculate(atoms, properties, system_changes)
        try:
            energy = self.gpaw.get_potential_energy(self.atoms, force_consistent=True)
            forces = self.gpaw.get_forces(self.atoms)
            stress = self.gpaw.get_stress(self.atoms)
        except KohnShamConvergenceError:
            where = f" (GPAW's log: {self.log})" if self.log else ""
            raise EngineError(
                f"GPAW's SCF did not converge in {self.gpaw.params.maxiter} iterations{where}"
            ) from None
        self.results = {"energy": energy, "free_energy": energy, "forces": forces, "stress": stress}


class MPIGpawCalculator(SocketIOCalculator):
    """GPAW on ``ranks`` MPI processes behind ASE's socket calculator; they start at the first
    calculation and stop when it closes (or when amorph's process dies)."""

    def __init__(self, parameters: dict[str, Any], settings: GpawSettings, log: Path | None):
        self.gpaw_parameters, self.settings = parameters, settings  # ASE owns .parameters
        self.folder = Path(tempfile.mkdtemp(prefix="amorph-gpaw-"))
        self.errors = log.with_suffix(".mpi.log") if log else self.folder / "mpi.log"
        self.log_path = log
        super().__init__(
            unixsocket=f"amorph-{os.getpid()}-{uuid.uuid4().hex[:8]}", launch_client=self._launch
        )

    def _launch(self, atoms: Atoms, properties, port=None, unixsocket=None) -> subprocess.Popen:
        request = self.folder / "request.json"
        request.write_text(
            json.dumps(
                {
                    "parameters": self.gpaw_parameters,
                    "numbers": atoms.numbers.tolist(),
                    "cell": atoms.cell.array.tolist(),
                    "positions": atoms.positions.tolist(),
                    "log": str(self.log_path) if self.log_path else None,
                    "datasets": str(self.settings.dataset_dir),
                }
            )
        )
        command = shlex.split(self.settings.mpi_command.format(ranks=self.settings.n_ranks))
        command += [sys.executable, "-m", "amorph.md.gpaw.client", str(request), unixsocket]
        environment = {
            **os.environ,
            "GPAW_MPI_BACKEND": "cgpaw",
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
        }
        if os.geteuid() == 0:  # Open MPI refuses root unless told
            environment |= {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
        with open(self.errors, "w") as output:
            return subprocess.Popen(
                command,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=environment,
                preexec_fn=dies_with_this_process(signal.SIGTERM),  # mpiexec stops its ranks
            )

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        """As ASE's socket calculator; ranks that stop are an ``EngineError`` saying why."""
        try:
            super().calculate(atoms, properties, system_changes)
        except OSError:  # the socket closed, or the launcher exited
            try:  # the ranks print their error after rank 0 has closed the socket
                self.server.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.server.proc.kill()
            raise EngineError(f"GPAW's MPI ranks stopped: {self._reason()}") from None

    def _reason(self) -> str:
        """The first exception the ranks printed, else their last line."""
        text = self.errors.read_text(errors="replace") if self.errors.exists() else ""
        lines = [re.sub(r"^rank=\d+ L\d+: ", "", line).strip() for line in text.splitlines()]
        raised = [line for line in lines if re.match(r"^[\w.]+(Error|Exception)\b", line)]
        reason = (raised or [line for line in lines if line] or ["no output"])[0]
        return f"{reason} (output: {self.errors})"

    def close(self) -> None:
        """Stop ranks that never connected, close the socket and remove the temporary folder."""
        server = self.server
        if (
            server is not None
            and server.proc is not None
            and server.proc.poll() is None
            and server.protocol is None  # never connected: nothing will tell it to stop
        ):
            server.proc.terminate()
        super().close()
        for path in self.folder.iterdir():
            path.unlink()
        self.folder.rmdir()


class GpawEngine(ASEEngine):
    """GPAW behind the engine interface; every setting is on :class:`GpawSettings`."""

    def __init__(self, settings: GpawSettings):
        try:
            import gpaw  # noqa: F401
        except ImportError:
            raise EngineError(
                "the GPAW engine needs GPAW, the dft extra: pip install 'amorph[dft]' "
                '(README, "DFT with GPAW")'
            ) from None
        super().__init__(None, "gpaw")
        self.settings = settings

    def check_elements(self, symbols: list[str]) -> None:
        """:meth:`GpawSettings.check_elements`: each element's minimum cutoff and dataset."""
        self.settings.check_elements(symbols)

    def check_cell(self, structure: Structure) -> None:
        """:meth:`GpawSettings.check`: the elements, and the memory the cell needs."""
        self.settings.check(structure)

    def describe(self, structure: Structure) -> dict[str, Any]:
        """:meth:`GpawSettings.describe`: code, cutoff, k-points, datasets, smearing, spin, SCF."""
        return self.settings.describe(structure)

    @contextmanager
    def session(
        self, structure: Structure, log: Path | None = None, cutoff_eV: float | None = None
    ) -> Iterator[Calculator]:
        """GPAW for ``structure``'s atoms and cell (at ``cutoff_eV``, else the rule's), on
        ``settings.ranks`` ranks, after :meth:`GpawSettings.check`."""
        settings = self.settings
        settings.check(structure)
        parameters = settings.parameters(structure, cutoff_eV)
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
        if settings.n_ranks > 1:
            _check_parallel()
        calculator: Calculator
        if settings.n_ranks == 1:
            _use_datasets(settings.dataset_dir)
            calculator = GpawCalculator(parameters, log)
        else:
            calculator = MPIGpawCalculator(parameters, settings, log)
        try:
            yield self.counter.instrument(calculator)
        finally:
            if isinstance(calculator, MPIGpawCalculator):
                calculator.close()

    def basis_stress(
        self, structure: Structure, work_dir: Path | None = None
    ) -> BasisStress | None:
        """The virial pressure of ``structure`` at the run's cutoff and at the converged one;
        None with ``basis_correction=False``."""
        if not self.settings.basis_correction:
            return None
        symbols = sorted({site.specie.symbol for site in structure})
        cutoffs = self.settings.cutoff(symbols), self.settings.converged_cutoff(symbols)
        pressures = []
        for cutoff in cutoffs:
            log = None if work_dir is None else Path(work_dir) / f"basis-{cutoff:g}eV.log"
            with self.session(structure, log, cutoff) as calculator:
                atoms = AseAtomsAdaptor.get_atoms(structure)
                atoms.calc = calculator
                stress = atoms.get_stress(voigt=False, include_ideal_gas=False)
            pressures.append(float(-np.trace(stress) / 3 * EV_A3_TO_GPA))
        return BasisStress(*cutoffs, *pressures)


def _check_parallel() -> None:
    """Raise ``EngineError`` where this GPAW cannot run in parallel (no MPI, no ScaLAPACK)."""
    from gpaw import cgpaw
    from gpaw.utilities import compiled_with_sl

    if not getattr(cgpaw, "have_mpi", False) or not compiled_with_sl():
        raise EngineError(
            "this GPAW was built without MPI or ScaLAPACK, which its parallel plane-wave code "
            'needs: use ranks=1, or rebuild it (README, "DFT with GPAW")'
        )


def _use_datasets(folder: Path) -> None:
    """Put the folder of generated datasets first on this process's GPAW search path."""
    import gpaw

    if str(folder) not in map(str, gpaw.setup_paths):
        gpaw.setup_paths.insert(0, str(folder))


def gpaw_engine(spec: EngineSpec) -> GpawEngine:
    """The GPAW engine for ``EngineSpec("gpaw", options={...})``; options are
    :class:`GpawSettings` fields."""
    return GpawEngine(GpawSettings.from_options(spec.options))
