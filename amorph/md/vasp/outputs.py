"""Running VASP, saying in one line why a run failed, and reading its outputs into amorph's objects.

Per MD step: positions, cells, energies (``e_0_energy``) and temperatures (VASP's kinetic energy
over 3N - 3 degrees of freedom) come from vasprun.xml through
:func:`amorph.trajectory.formats.read_vasprun`, the reader the analysis uses; pressures from OUTCAR:
VASP's stress ("in kB") and "external pressure" leave out the kinetic term, which its "Total+kin."
tensor adds. Both are returned, so that ``RunStats`` applies the pipeline's pressure convention to
VASP runs as to the ML engines.
"""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pymatgen.core import Structure
from pymatgen.io.vasp import Incar, Oszicar, Poscar

from amorph.errors import EngineError, TrajectoryError
from amorph.trajectory import Trajectory
from amorph.trajectory.formats import read_vasprun

KBAR_TO_GPA = 0.1
OUTPUT_FILES = ("OSZICAR", "OUTCAR", "vasprun.xml")
_NUMBER = re.compile(r"[-+]?\d+\.\d+(?:[eE][-+]?\d+)?")
_VASP_DEFAULT_NELM = 60


def run_vasp(command: str, directory: Path) -> int:
    """Run ``command`` in ``directory`` (stdout and stderr to ``vasp.out``); return its status."""
    args = shlex.split(command)
    try:
        with open(directory / "vasp.out", "wb") as out:
            return subprocess.run(
                args, cwd=directory, stdout=out, stderr=subprocess.STDOUT, check=False
            ).returncode
    except (FileNotFoundError, PermissionError) as exc:
        raise EngineError(
            f"cannot run the VASP command {command!r} ({exc.strerror}): set $AMORPH_VASP_CMD "
            "or the engine option 'command'"
        ) from None


def ionic_steps_done(directory: Path) -> int:
    """Ionic steps VASP finished, from OSZICAR (written step by step, so even after a kill)."""
    path = directory / "OSZICAR"
    if not path.exists():
        return 0
    return sum(" F=" in line for line in path.read_text(errors="replace").splitlines())


def check_finished(directory: Path, returncode: int, expected_steps: int | None = None) -> None:
    """Raise ``EngineError`` unless VASP ran ``expected_steps`` steps cleanly, output complete."""
    if not any((directory / name).exists() for name in OUTPUT_FILES):
        raise EngineError(
            f"VASP wrote no output in {directory} "
            f"({_exit_text(returncode)}{_last_words(directory)})"
        )
    steps = ionic_steps_done(directory)
    complete = (
        returncode == 0
        and _closed_xml(directory / "vasprun.xml")
        and (directory / "CONTCAR").exists()
        and (expected_steps is None or steps == expected_steps)
    )
    if not complete:
        of = f" of {expected_steps}" if expected_steps is not None else ""
        raise EngineError(
            f"VASP stopped after {steps}{of} ionic steps in {directory} ({_exit_text(returncode)})"
        )


def check_electronic_convergence(directory: Path, every_step: bool) -> None:
    """Raise ``EngineError`` if an ionic step (any with ``every_step``, else the last) used all NELM
    SCF steps."""
    nelm = int(Incar.from_file(directory / "INCAR").get("NELM", _VASP_DEFAULT_NELM))
    counts = [len(steps) for steps in Oszicar(directory / "OSZICAR").electronic_steps]
    checked = range(1, len(counts) + 1) if every_step else range(len(counts), len(counts) + 1)
    unconverged = [step for step in checked if counts[step - 1] >= nelm]
    if unconverged:
        shown = ", ".join(map(str, unconverged[:5])) + (" ..." if len(unconverged) > 5 else "")
        raise EngineError(
            f"VASP's electronic SCF did not converge within NELM = {nelm} at ionic step(s) "
            f"{shown} in {directory}"
        )


@dataclass
class MDOutput:
    """One finished VASP MD run: every ionic step, and the CONTCAR state to continue from."""

    steps: Trajectory  # positions unwrapped from the first step; energies and temperatures per step
    virial_pressures_GPa: np.ndarray
    total_pressures_GPa: np.ndarray
    end_structure: Structure
    end_velocities: np.ndarray  # Å/fs


def read_md_output(directory: Path) -> MDOutput:
    try:
        steps = read_vasprun(directory / "vasprun.xml")
    except TrajectoryError as exc:
        raise EngineError(f"unreadable VASP output: {exc}") from None
    virial, total = read_outcar_pressures(directory / "OUTCAR")
    if len(virial) != steps.n_frames:
        raise EngineError(
            f"{directory}: OUTCAR has {len(virial)} stress blocks for {steps.n_frames} ionic steps"
        )
    contcar = Poscar.from_file(directory / "CONTCAR", check_for_potcar=False, read_velocities=True)
    if not contcar.velocities:
        raise EngineError(f"{directory}: CONTCAR has no velocities to continue the MD from")
    return MDOutput(
        steps, virial, total, contcar.structure, np.array(contcar.velocities, dtype=float)
    )


def read_outcar_pressures(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Per ionic step, in GPa: VASP's "external pressure" (stress "in kB" minus the Pulay stress, no
    kinetic term) and the pressure of its "Total+kin." tensor minus the Pulay stress."""
    stress, pulay, with_kinetic = [], [], []
    for line in path.read_text(errors="replace").splitlines():
        text = line.strip()
        if text.startswith("in kB"):
            stress.append(_diagonal_mean(text))
        elif text.startswith("external pressure"):
            pulay.append(float(_NUMBER.findall(text.partition("Pullay stress")[2])[0]))
        elif text.startswith("Total+kin."):
            with_kinetic.append(_diagonal_mean(text))
    if not len(stress) == len(pulay) == len(with_kinetic):
        raise EngineError(
            f"{path}: {len(stress)} stress tensors but {len(with_kinetic)} 'Total+kin.' lines "
            "(an MD run with ISIF >= 1 writes both every step)"
        )
    pulay_kbar = np.array(pulay)
    return (
        (np.array(stress) - pulay_kbar) * KBAR_TO_GPA,
        (np.array(with_kinetic) - pulay_kbar) * KBAR_TO_GPA,
    )


def _diagonal_mean(line: str) -> float:
    return float(np.mean([float(x) for x in _NUMBER.findall(line)[:3]]))


def _closed_xml(path: Path) -> bool:
    if not path.exists():
        return False
    with open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - 64))
        return b"</modeling>" in handle.read()


def _exit_text(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


def _last_words(directory: Path) -> str:
    path = directory / "vasp.out"
    lines = (
        [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
        if path.exists()
        else []
    )
    return f"; vasp.out: {lines[-1]}" if lines else ""
