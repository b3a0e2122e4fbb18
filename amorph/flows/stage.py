"""What the MD stages share: their Maker fields, the systems they run (targets), durations to steps,
seeds, and volume scaling.

Every stage job runs a list of :class:`Target` systems (compositions at temperatures) and hands all
their MD runs to its engine in one call, so that a batched engine advances them together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from jobflow import Maker
from monty.json import MSONable
from pymatgen.core import Structure

from amorph.errors import InputError, check_range
from amorph.files import stage_folder
from amorph.md.engine import SEEDS, EngineSpec, MDResult, MDSettings, MDState, MDTask
from amorph.volume.results import HotterStage

DURATIONS_PS = (0.01, 1e5)  # a few steps to 100 ns
SEED_STREAMS = {"eos": 0, "check": 100, "production": 1000}
"""Where the seeds of each kind of run start: the ``n``-th run of a kind at temperature ``T`` gets
``derive_seed(seed, T, SEED_STREAMS[kind] + n)`` (volume-search runs from 0, check runs from 101,
the production run 1000)."""


@dataclass
class Target(MSONable):
    """One system of a stage: its start structure, temperature, and where its MD files go.

    The files go to ``<run_dir>/<formula>/<T>K`` (:func:`~amorph.files.stage_folder`): with a fixed
    ``run_dir`` a rerun finds finished runs and checkpoints; without one, ``run_dir`` is the job's
    folder. ``hotter``: the stage it was quenched from, whose P(V) centres the volume search (see
    :class:`~amorph.flows.volume.VolumeSearchMaker`).
    """

    structure: Structure
    temperature: float
    formula: str = ""
    run_dir: str | None = None
    hotter: HotterStage | None = None

    @property
    def name(self) -> str:
        """``"<formula> <T> K"``, or the temperature alone without a formula."""
        return f"{self.formula} {self.temperature:.0f} K".strip()

    def work_dir(self) -> Path:
        """Its MD folder, ``<run_dir>/<formula>/<T>K`` (``run_dir`` unset: the current folder)."""
        return stage_folder(self.run_dir or Path.cwd(), self.formula or "system", self.temperature)


@dataclass
class MDStageMaker(Maker):
    """The fields of every MD stage (volume search, check run, production), as in atomate2's Makers.

    Parameters
    ----------
    name
        Job name prefix.
    engine
        The MD engine (CHGNet by default); set it on every stage of a flow at once with
        ``maker.update_kwargs({"engine": spec}, class_filter=MDStageMaker)``.
    md
        Time step, thermostat, sampling and averaging of the runs.
    duration_ps
        Length of each run.
    seed
        Seed from which every run's velocities (and Langevin noise) are derived.
    """

    name: str = "md"
    engine: EngineSpec = field(default_factory=EngineSpec)
    md: MDSettings = field(default_factory=MDSettings)
    duration_ps: float = 4.0
    seed: int = 1

    def validate(self) -> None:
        """Raise ``InputError`` for settings that cannot work (the engine is not loaded here)."""
        check_range(f"{self.name} duration", self.duration_ps, *DURATIONS_PS, " ps")
        check_range("seed", self.seed, *SEEDS)
        self.md.validate()

    def run_md(
        self,
        targets: list[Target],
        states: list[MDState],
        stream: str,
        numbers: list[int],
        labels: list[str],
        chunk_ps: float | None = None,
    ) -> list[MDResult]:
        """One NVT task per state, in its target's folder, all in one call of the engine.

        Run ``k`` is run number ``numbers[k]`` of its kind ``stream``, which derives its seed (see
        :data:`SEED_STREAMS`); its files are named ``labels[k]``.
        """
        tasks = [
            MDTask(
                state=state,
                temperature=target.temperature,
                steps=steps_for(self.duration_ps, self.md, state.structure),
                settings=self.md,
                work_dir=target.work_dir(),
                seed=derive_seed(self.seed, target.temperature, SEED_STREAMS[stream] + number),
                chunk_steps=steps_for(chunk_ps, self.md, state.structure) if chunk_ps else None,
                label=label,
            )
            for target, state, number, label in zip(targets, states, numbers, labels, strict=True)
        ]
        if not tasks:
            return []
        engine = self.engine.load()
        engine.check_elements(sorted({el.symbol for s in states for el in s.structure.elements}))
        return engine.run(tasks)


def stage_name(targets: list[Target]) -> str:
    """A job name for the targets of a stage: "Li2O 1500 K" or "Li2O 1500 K + 3 more"."""
    return targets[0].name + (f" + {len(targets) - 1} more" if len(targets) > 1 else "")


def steps_for(duration_ps: float, settings: MDSettings, structure: Structure) -> int:
    """MD steps covering ``duration_ps``, rounded to whole sample intervals (at least one)."""
    if duration_ps <= 0:
        raise InputError(f"MD duration must be positive, got {duration_ps} ps")
    steps = round(duration_ps * 1000 / settings.time_step_for(structure))
    interval = settings.sample_interval
    return max(interval, steps - steps % interval)


def derive_seed(seed: int, *keys: float) -> int:
    """A reproducible seed for one run, distinct for each combination of ``keys``."""
    return int(
        np.random.SeedSequence([seed, *(round(float(k)) for k in keys)]).generate_state(1)[0]
    )


def scaled_state(state: MDState, volume: float, keep_velocities: bool = True) -> MDState:
    """``state`` with its cell scaled isotropically to ``volume`` (Å³); the thermostat restarts.

    Velocities are kept, or dropped with ``keep_velocities=False`` (the engine then draws new ones).
    """
    structure = state.structure.copy()
    structure.scale_lattice(volume)
    return MDState(structure=structure, velocities=state.velocities if keep_velocities else None)
