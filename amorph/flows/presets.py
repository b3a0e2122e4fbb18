"""The protocol presets (the paper's, a short demo) and the options that adjust them.

:func:`protocol_maker` is what ``amorph run``, ``campaign`` and ``submit`` build their flows with:
a preset's :class:`~amorph.flows.melt_quench.MeltQuenchMaker` with options applied through
jobflow's ``update_kwargs`` to every Maker they concern.
"""

from __future__ import annotations

from typing import Any

from amorph.errors import InputError
from amorph.flows.audit import AuditMaker
from amorph.flows.cell import RandomCellMaker
from amorph.flows.melt_quench import MeltQuenchMaker, TemperatureStageMaker
from amorph.flows.production import ProductionMaker
from amorph.flows.stage import MDStageMaker
from amorph.flows.tune import TuneLoop
from amorph.flows.volume import CheckRunMaker, VolumeSearchMaker
from amorph.md.engine import EngineSpec, MDSettings


def demo_maker(**overrides: Any) -> MeltQuenchMaker:
    """Small and short: 32 atoms, 0.3 ps search/check runs, 0.6 ps production, 5000 K and 2000 K."""
    md = MDSettings(thermostat_time_fs=20.0)  # short runs need a thermostat much faster than them
    # A 0.3 ps, 32-atom run's pressure has a standard error about the tolerance's size, so the
    # sequential test needs more runs to decide (scripts/model_check_runs.py): 6 × 0.3 ps is still
    # less than half of one of the paper's 4 ps check runs.
    check = CheckRunMaker(duration_ps=0.3, md=md, pressure_tolerance_GPa=1.0, max_attempts=6)
    stage = TemperatureStageMaker(
        volume_search=VolumeSearchMaker(duration_ps=0.3, md=md),
        check=check,
        production=ProductionMaker(duration_ps=0.6, chunk_ps=0.2, md=md),
    )
    settings = {
        "quench_temperatures": (2000.0,),
        "cell": RandomCellMaker(atoms=32),
        "stage": stage,
        **overrides,
    }
    return MeltQuenchMaker(**settings)


PRESETS = {"paper": MeltQuenchMaker, "demo": demo_maker}


def protocol_maker(
    preset: str = "paper",
    *,
    engine: EngineSpec | None = None,
    seed: int | None = None,
    temperatures: list[float] | None = None,
    atoms: int | None = None,
    volume_per_atom: float | None = None,
    min_distance: float | None = None,
    pressure_convention: str | None = None,
    eos_ps: float | None = None,
    check_ps: float | None = None,
    production_ps: float | None = None,
    chunk_ps: float | None = None,
    run_dir: str | None = None,
    store_trajectory: bool | None = None,
    second_opinion: EngineSpec | str | None = None,
    audit: AuditMaker | None = None,
    tune: TuneLoop | None = None,
) -> MeltQuenchMaker:
    """The ``preset``'s maker with the given options (None: the preset's value).

    Parameters
    ----------
    preset
        ``"paper"`` or ``"demo"``.
    engine
        Engine of every MD stage.
    seed
        Seed of the packing and of every MD stage.
    temperatures
        The melt temperature and the quench temperatures, in any order (the hottest is the melt).
    atoms, volume_per_atom, min_distance
        The random cell: about ``atoms`` atoms (whole formula units), its starting volume per atom
        in Å³ (default: an offline estimate) and the smallest interatomic distance in Å.
    pressure_convention
        ``"virial"`` (the paper's) or ``"total"``, for every MD stage.
    eos_ps, check_ps, production_ps, chunk_ps
        Run lengths in ps of the volume-search runs, the check runs, the production run and the
        production checkpoint interval.
    run_dir
        Absolute folder for the MD files (see :class:`MeltQuenchMaker`).
    store_trajectory
        Put production trajectories into the store's data store.
    second_opinion
        ``"auto"``, ``"none"``, an engine kind or spec: the second potential asked about every
        production run (see :class:`~amorph.flows.melt_quench.TemperatureStageMaker`).
    audit
        The DFT audit of every stage (:mod:`amorph.flows.audit`).
    tune
        The audit/tune loop (:mod:`amorph.flows.tune`); it needs ``audit``.
    """
    if preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
    maker = PRESETS[preset]()
    melt, quenches = None, None
    if temperatures:
        melt, *rest = sorted(temperatures, reverse=True)
        quenches = tuple(rest)
    updates = [
        (MeltQuenchMaker, {"run_dir": run_dir, "tune": tune}),
        (MeltQuenchMaker, {"melt_temperature": melt, "quench_temperatures": quenches}),
        (TemperatureStageMaker, {"second_opinion": second_opinion, "audit": audit}),
        (RandomCellMaker, {"atoms": atoms, "volume_per_atom": volume_per_atom, "seed": seed}),
        (RandomCellMaker, {"min_distance": min_distance}),
        (MDStageMaker, {"engine": engine, "seed": seed}),
        (VolumeSearchMaker, {"duration_ps": eos_ps}),
        (CheckRunMaker, {"duration_ps": check_ps}),
        (ProductionMaker, {"duration_ps": production_ps, "chunk_ps": chunk_ps}),
        (ProductionMaker, {"store_trajectory": store_trajectory}),
    ]
    for maker_class, values in updates:
        values = {k: v for k, v in values.items() if v is not None}
        if values:
            maker = maker.update_kwargs(values, class_filter=maker_class)
    if pressure_convention is not None:
        maker = maker.update_kwargs(
            {"_set": {"md->pressure_convention": pressure_convention}},
            class_filter=MDStageMaker,
            dict_mod=True,
        )
    return maker
