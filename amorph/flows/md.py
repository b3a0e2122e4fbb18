"""Helpers shared by the MD stages: durations to steps, seeds, and scaling a state to a volume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pymatgen.core import Structure

from amorph.engine import EngineSpec, MDResult, MDSettings, MDState, MDTask
from amorph.errors import InputError


def steps_for(duration_ps: float, settings: MDSettings, structure: Structure) -> int:
    """MD steps covering ``duration_ps``, rounded to whole sample intervals (at least one)."""
    if duration_ps <= 0:
        raise InputError(f"MD duration must be positive, got {duration_ps} ps")
    steps = round(duration_ps * 1000 / settings.time_step_for(structure))
    interval = settings.sample_interval
    return max(interval, steps - steps % interval)


def derive_seed(seed: int, *keys: float) -> int:
    """A reproducible seed for one run, distinct for each combination of ``keys``."""
    return int(np.random.SeedSequence([seed, *(int(round(k)) for k in keys)]).generate_state(1)[0])


def scaled_state(state: MDState, volume: float, keep_velocities: bool = True) -> MDState:
    """``state`` with its cell scaled isotropically to ``volume`` (Å³); the thermostat restarts."""
    structure = state.structure.copy()
    structure.scale_lattice(volume)
    return MDState(structure=structure, velocities=state.velocities if keep_velocities else None)


def run_md(
    engine: EngineSpec,
    states: list[MDState],
    temperature: float,
    duration_ps: float,
    settings: MDSettings,
    seeds: list[int],
    labels: list[str],
    run_dir: str | None = None,
    chunk_ps: float | None = None,
) -> list[MDResult]:
    """Run one NVT task per state as one engine call.

    MD files go to ``run_dir`` when given (a fixed folder per composition and temperature, so that a
    rerun finds finished runs and checkpoints), else to the job's working directory.
    """
    work_dir = Path(run_dir) if run_dir else Path.cwd()
    tasks = []
    for state, seed, label in zip(states, seeds, labels, strict=True):
        chunk = steps_for(chunk_ps, settings, state.structure) if chunk_ps else None
        tasks.append(
            MDTask(
                state=state,
                temperature=temperature,
                steps=steps_for(duration_ps, settings, state.structure),
                settings=settings,
                work_dir=work_dir,
                seed=seed,
                chunk_steps=chunk,
                label=label,
            )
        )
    return engine.load().run(tasks)
