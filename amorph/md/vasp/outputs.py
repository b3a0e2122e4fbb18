"""Saying in one line what a VASP run left, and reading its outputs into amorph's objects.

Per MD step: positions, cells, energies (``e_0_energy``) and temperatures (VASP's kinetic energy
over 3N - 3 degrees of freedom) come from vasprun.xml through
:func:`amorph.trajectory.formats.read_vasprun`, the reader the analysis uses; pressures from OUTCAR:
VASP's stress ("in kB") and "external pressure" leave out the kinetic term, which its "Total+kin."
tensor adds (NaN without stress, ``ISIF = 0``). Both are returned, so that ``RunStats`` applies the
pipeline's pressure convention to VASP runs as to the ML engines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pymatgen.core import Structure
from pymatgen.io.vasp import Incar, Poscar

from amorph.errors import EngineError, TrajectoryError
from amorph.trajectory import Trajectory
from amorph.trajectory.formats import read_vasprun

KBAR_TO_GPA = 0.1
OUTPUT_FILES = ("OSZICAR", "OUTCAR", "vasprun.xml")
_NUMBER = re.compile(r"[-+]?\d+\.\d+(?:[eE][-+]?\d+)?")


def ionic_steps_done(directory: Path) -> int:
    """Ionic steps VASP finished, from OSZICAR (written step by step, so even after a kill)."""
    path = directory / "OSZICAR"
    if not path.exists():
        return 0
    return sum(" F=" in line for line in path.read_text(errors="replace").splitlines())


def progress(directory: Path, expected_steps: int | None = None) -> str:
    """What VASP left in ``directory``, in words: ionic steps done."""
    if not any((directory / name).exists() for name in OUTPUT_FILES):
        return f"VASP wrote no output in {directory}"
    of = f" of {expected_steps}" if expected_steps is not None else ""
    return f"VASP ran {ionic_steps_done(directory)}{of} ionic steps in {directory}"


def check_finished(directory: Path, expected_steps: int | None = None) -> None:
    """Raise ``EngineError`` unless VASP ran ``expected_steps`` steps, its output complete."""
    complete = (
        _closed_xml(directory / "vasprun.xml")
        and (directory / "CONTCAR").exists()
        and (expected_steps is None or ionic_steps_done(directory) == expected_steps)
    )
    if not complete:
        raise EngineError(progress(directory, expected_steps) + last_words(directory))


@dataclass
class MDOutput:
    """One finished VASP MD run: every ionic step, and the CONTCAR state to continue from."""

    steps: Trajectory  # positions unwrapped from the first step; energies and temperatures per step
    virial_pressures_GPa: np.ndarray
    total_pressures_GPa: np.ndarray
    end_structure: Structure
    end_velocities: np.ndarray  # Å/fs


def read_md_output(directory: Path) -> MDOutput:
    """The finished run in ``directory``: its steps, pressures (NaN without stress) and CONTCAR
    state; ``EngineError`` if they cannot be read or do not agree."""
    try:
        steps = read_vasprun(directory / "vasprun.xml")
    except TrajectoryError as exc:
        raise EngineError(f"unreadable VASP output: {exc}") from None
    if Incar.from_file(directory / "INCAR").get("ISIF", 0) == 0:  # no stress (inputs "paper")
        virial = total = np.full(steps.n_frames, np.nan)
    else:
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


def last_words(directory: Path) -> str:
    """The last line VASP printed, as '; vasp.out: ...'."""
    path = directory / "vasp.out"
    lines = (
        [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
        if path.exists()
        else []
    )
    return f"; vasp.out: {lines[-1]}" if lines else ""
