"""A second potential's opinion on a production run: a few single points, not another MD run.

Frames sampled from the equilibrated part of the production trajectory are evaluated by the engine
that made them and by a second one, at the same volume. The difference of their mean virial
pressures, ΔP, divided by the bulk modulus B0 of the stage's P(V) fit, is the relative shift of
the zero-pressure volume the second potential would imply (ΔV/V ≈ ΔP/B0); with the force RMS
difference it says how far two surrogates of the same functional disagree on this system.
"""

from __future__ import annotations

import importlib.util
import logging

import numpy as np

from amorph.errors import AmorphError
from amorph.md.engine import EngineSpec, PointComparison
from amorph.results.schemas import SecondOpinionDoc
from amorph.trajectory import Trajectory

logger = logging.getLogger(__name__)

# the built-in potential asked when the first one is another family; None: ask nobody
AUTOMATIC = {
    "chgnet": "sevennet",
    "chgnet-ase": "sevennet",
    "m3gnet": "sevennet",
    "m3gnet-ase": "sevennet",
    "sevennet": "chgnet",
    "sevennet-ase": "chgnet",
    "vasp": "chgnet",
}
PACKAGES = {"sevennet": "sevenn", "chgnet": "chgnet"}


def second_engine(choice: EngineSpec | str | None, first: EngineSpec) -> EngineSpec | None:
    """The engine of the second opinion: ``choice`` ("auto", "none", an engine kind, a spec).

    ``"auto"`` picks another built-in potential than ``first`` (SevenNet-0 for CHGNet and M3GNet,
    CHGNet for SevenNet and VASP), or none for user-supplied engines or when its package is absent.
    """
    if isinstance(choice, EngineSpec):
        return choice
    if choice in (None, "none"):
        return None
    if choice != "auto":
        return EngineSpec.parse(choice, device=first.device)
    kind = AUTOMATIC.get(first.kind)
    if kind is None or importlib.util.find_spec(PACKAGES[kind]) is None:
        return None
    return EngineSpec(kind, device=first.device)


def sample_frames(trajectory: Trajectory, count: int, equilibration_fraction: float) -> list[int]:
    """``count`` frame indices evenly spread over the part after ``equilibration_fraction``."""
    start = min(int(trajectory.n_frames * equilibration_fraction), trajectory.n_frames - 1)
    return sorted({round(float(i)) for i in np.linspace(start, trajectory.n_frames - 1, count)})


def second_opinion(
    trajectory: Trajectory,
    first: EngineSpec,
    second: EngineSpec,
    bulk_modulus_GPa: float,
    frames: int = 12,
    equilibration_fraction: float = 0.5,
) -> SecondOpinionDoc | None:
    """Both engines' single points on frames of ``trajectory``, compared.

    None when the second engine cannot model these elements (the log says why).

    Parameters
    ----------
    trajectory
        The production run of ``first``.
    first, second
        The engine that ran it and the engine asked for a second opinion.
    bulk_modulus_GPa
        Converts the mean pressure difference into a relative volume shift; NaN without a
        positive value.
    frames, equilibration_fraction
        Number of frames, evenly spread over the part of the run after this fraction.
    """
    indices = sample_frames(trajectory, frames, equilibration_fraction)
    structures = [trajectory.structure(i) for i in indices]
    try:
        engine = second.load()
        engine.check_elements(sorted(set(trajectory.symbols)))
    except AmorphError as exc:
        logger.warning("no second opinion from %s: %s", second.label, exc)
        return None
    ours, theirs = first.load().evaluate(structures), engine.evaluate(structures)
    compared = PointComparison.of(theirs, ours)
    first_pressure = float(np.mean([p.virial_pressure_GPa for p in ours]))
    return SecondOpinionDoc(
        engine=second.label,
        engine_model=second.model,
        n_frames=len(indices),
        pressure_GPa=first_pressure + compared.pressure.mean,
        pressure_sem_GPa=compared.pressure.sem,
        first_pressure_GPa=first_pressure,
        force_rms_difference_eV_A=compared.force_rmse_eV_A,
        force_rms_eV_A=compared.reference_force_rms_eV_A,
        volume_shift=compared.pressure.mean / bulk_modulus_GPa if bulk_modulus_GPa > 0 else np.nan,
    )
