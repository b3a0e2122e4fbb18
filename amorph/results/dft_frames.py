"""DFT-labelled frames for ``amorph tune``: from the store's audits, or from files users bring
(extended XYZ with energies, forces and stresses; vasprun.xml; OUTCAR)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pymatgen.io.ase import AseAtomsAdaptor

from amorph.constants import EV_A3_TO_GPA
from amorph.errors import InputError
from amorph.potentials.tuning import LabelledFrame
from amorph.results.reader import Database, StageEntry
from amorph.results.schemas import AuditDoc
from amorph.trajectory import Trajectory


def frames_from_store(database: Database, formulas: list[str] | None) -> list[LabelledFrame]:
    """The DFT frames of the audits of ``formulas``' stages (every audited stage for None)."""
    wanted: list[str | None] = list(formulas) if formulas else [None]
    stages = [stage for formula in wanted for stage in database.stages(formula)]
    frames = frames_of_audits(stages)
    if not frames:
        what = ", ".join(formulas) if formulas else "any composition"
        raise InputError(
            f"no audited stage of {what} in {database.description}: run `amorph audit` first"
        )
    return frames


def frames_from_file(path: Path) -> list[LabelledFrame]:
    """The labelled frames of an extended XYZ file, vasprun.xml or OUTCAR (read by ASE); the level
    of theory is VASP's for VASP files, else the ``dft_settings`` (JSON) of each frame's info."""
    from ase.io import read

    path = Path(path)
    try:
        images = read(path, index=":")
    except Exception as exc:  # ASE raises many kinds for a file it cannot parse
        raise InputError(f"cannot read DFT frames from {path}: {exc}") from None
    vasp = path.name.startswith(("vasprun", "OUTCAR"))
    frames = []
    for index, atoms in enumerate(images if isinstance(images, list) else [images]):
        where = f"{path.name} frame {index}"
        calc = atoms.calc
        results = {} if calc is None else calc.results
        missing = [k for k in ("energy", "forces", "stress") if k not in results]
        if missing:
            raise InputError(f"{where} has no {' or '.join(missing)}: a tuning needs all three")
        stress = np.asarray(results["stress"])
        if stress.shape == (6,):
            xx, yy, zz, yz, xz, xy = stress
            stress = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
        given = atoms.info.get("dft_settings", '{"code": "unknown"}')
        settings = {"code": "vasp"} if vasp else json.loads(given)
        frames.append(
            LabelledFrame(
                AseAtomsAdaptor.get_structure(atoms),
                float(results["energy"]),
                np.asarray(results["forces"]),
                stress * EV_A3_TO_GPA,
                {"file": str(path), "index": index},
                settings,
            )
        )
    return frames


def frames_of_audits(stages: list[StageEntry]) -> list[LabelledFrame]:
    """The DFT frames of the audits of ``stages`` (none for a stage without one), each with its
    structure from the stage's production trajectory."""
    return [
        frame
        for stage in stages
        if stage.audit is not None
        for frame in audit_frames(stage.audit, stage.trajectory(), stage.source)
    ]


def audit_frames(audit: AuditDoc, trajectory: Trajectory, name: str = "") -> list[LabelledFrame]:
    """The DFT frames of ``audit``, their structures from the audited stage's ``trajectory``
    (``name``: the stage, for the error an audit without forces or stresses raises)."""
    if not audit.dft_stresses_GPa or not audit.dft_forces_eV_A:
        raise InputError(
            f"the audit of {name or audit.formula} has no DFT forces or stresses (an older amorph "
            "wrote it): audit it again with `amorph audit`"
        )
    return [
        LabelledFrame(
            trajectory.structure(index),
            audit.dft_energies_eV[k],
            np.asarray(audit.dft_forces_eV_A[k]),
            np.asarray(audit.dft_stresses_GPa[k]),
            {
                "formula": audit.formula,
                "temperature_K": audit.temperature_K,
                "stage_uuid": audit.stage_uuid,
                "index": index,
            },
            audit.dft_settings,
        )
        for k, index in enumerate(audit.frame_indices)
    ]
