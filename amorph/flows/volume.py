"""Volume search (MPMorph) and check run: jobs that chain NVT runs until the volume is at zero pressure."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from jobflow import Flow, Maker, Response, job
from monty.json import MSONable
from pymatgen.core import Structure

from amorph.engine import EngineSpec, MDResult, MDSettings, MDState, RunStats
from amorph.errors import InputError, VolumeSearchError
from amorph.flows.md import derive_seed, run_md, scaled_state
from amorph.volume import (
    EOSFit,
    EOSPoint,
    fit_pressure_eos,
    is_bracketed,
    next_volume,
    rescaled_volume,
    zero_pressure_volume,
)


@dataclass
class VolumeSearchResult(MSONable):
    """The sampled P(V) points, their fit, and the zero-pressure volume with a state to start from there."""

    points: list[EOSPoint]
    fit: EOSFit
    volume_A3: float
    start: MDState
    extra_volumes: int


@dataclass
class CheckResult(MSONable):
    """The last check run at the chosen volume; ``converged`` says whether it met the tolerances."""

    volume_A3: float
    stats: RunStats
    final_state: MDState
    converged: bool
    attempts: int
    history: list[RunStats] = field(default_factory=list)


@dataclass
class VolumeSearchMaker(Maker):
    """NVT runs at ``volume_factors`` × the start volume, extended until zero pressure is bracketed.

    Each run lasts ``duration_ps``; pressures are averaged after ``md.equilibration_fraction`` of it.
    When every pressure has the same sign, one more volume is added beyond the sampled range (a step of
    ``min_step`` to ``max_step`` in volume, towards the fitted V0), at most ``max_extra_volumes`` times.
    """

    name: str = "volume search"
    volume_factors: tuple[float, ...] = (0.8, 1.0, 1.2)
    duration_ps: float = 4.0
    md: MDSettings = field(default_factory=MDSettings)
    max_extra_volumes: int = 6
    min_step: float = 0.05
    max_step: float = 0.25

    def validate(self) -> None:
        if len(self.volume_factors) < 2 or min(self.volume_factors) <= 0:
            raise InputError("the volume search needs at least two positive volume factors")
        if self.duration_ps <= 0:
            raise InputError(f"MD duration must be positive, got {self.duration_ps} ps")
        self.md.validate()

    def make(
        self, structure: Structure, temperature: float, engine: EngineSpec, seed: int = 1, run_dir: str | None = None
    ) -> Flow:
        runs = eos_runs(self, structure, list(self.volume_factors), temperature, engine, seed, 0, run_dir)
        runs.name = f"eos {temperature:.0f} K"
        search = fit_or_extend(self, structure, temperature, engine, seed, runs.output, [], run_dir)
        search.name = f"eos fit {temperature:.0f} K"
        return Flow([runs, search], output=search.output, name=f"{self.name} {temperature:.0f} K")


@job
def eos_runs(
    maker: VolumeSearchMaker,
    structure: Structure,
    factors: list[float],
    temperature: float,
    engine: EngineSpec,
    seed: int,
    first_index: int,
    run_dir: str | None = None,
) -> list[MDResult]:
    """NVT runs of ``structure`` scaled to each volume factor, with fresh velocities at ``temperature``."""
    indices = range(first_index, first_index + len(factors))
    return run_md(
        engine,
        [scaled_state(MDState(structure), f * structure.volume) for f in factors],
        temperature,
        maker.duration_ps,
        maker.md,
        seeds=[derive_seed(seed, temperature, i) for i in indices],
        labels=[f"eos{i:02d}" for i in indices],
        run_dir=run_dir,
    )


@job
def fit_or_extend(
    maker: VolumeSearchMaker,
    structure: Structure,
    temperature: float,
    engine: EngineSpec,
    seed: int,
    new_runs: list[MDResult],
    previous_runs: list[MDResult],
    run_dir: str | None = None,
) -> VolumeSearchResult | Response:
    """Fit P(V); return the zero-pressure volume if bracketed, else replace itself by one more volume."""
    runs = [*previous_runs, *new_runs]
    points = [_eos_point(run) for run in runs]
    volumes = np.array([p.volume_A3 for p in points])
    pressures = np.array([p.pressure_GPa for p in points])
    fit = fit_pressure_eos(volumes, pressures)
    extra = len(runs) - len(maker.volume_factors)
    if is_bracketed(pressures):
        v0 = zero_pressure_volume(volumes, pressures, fit)
        nearest = runs[int(np.argmin(np.abs(volumes - v0)))]
        return VolumeSearchResult(points, fit, v0, scaled_state(nearest.final_state, v0), extra)
    if extra >= maker.max_extra_volumes:
        sampled = ", ".join(f"{v:.1f} Å³: {p:+.2f} GPa" for v, p in zip(volumes, pressures))
        raise VolumeSearchError(
            f"zero pressure not bracketed at {temperature:.0f} K after {extra} extra volumes ({sampled})"
        )
    factor = next_volume(volumes, pressures, fit, maker.min_step, maker.max_step) / structure.volume
    more = eos_runs(maker, structure, [factor], temperature, engine, seed, len(runs), run_dir)
    more.name = f"eos {temperature:.0f} K extra {extra + 1}"
    again = fit_or_extend(maker, structure, temperature, engine, seed, more.output, runs, run_dir)
    again.name = f"eos fit {temperature:.0f} K"
    return Response(replace=Flow([more, again], output=again.output))


def _eos_point(run: MDResult) -> EOSPoint:
    s = run.stats
    return EOSPoint(s.volume_A3, s.pressure_GPa, s.pressure_sem_GPa, s.temperature_K, s.energy_eV_per_atom,
                    run.trajectory_path)


@dataclass
class CheckRunMaker(Maker):
    """An NVT run at the fitted volume, repeated at a rescaled volume until it is converged.

    Converged: |mean pressure| ≤ max(``pressure_tolerance_GPa``, 2 × its standard error) and the mean
    energy of the run's two halves differ by at most ``energy_tolerance_eV_per_atom``. Otherwise the
    volume is rescaled by ΔV/V = P/B0 (B0 from the P(V) fit) and the run repeated, up to
    ``max_attempts`` runs; a run still unconverged then is passed on and flagged ``converged=False``.
    """

    name: str = "check run"
    duration_ps: float = 4.0
    md: MDSettings = field(default_factory=MDSettings)
    pressure_tolerance_GPa: float = 0.5
    energy_tolerance_eV_per_atom: float = 0.01
    max_attempts: int = 3

    def validate(self) -> None:
        if self.duration_ps <= 0:
            raise InputError(f"MD duration must be positive, got {self.duration_ps} ps")
        if self.max_attempts < 1:
            raise InputError("the check run needs at least one attempt")
        self.md.validate()

    def make(
        self, search: VolumeSearchResult, temperature: float, engine: EngineSpec, seed: int = 1,
        run_dir: str | None = None,
    ):
        check = check_volume(self, search.start, search.fit, temperature, engine, seed, 1, [], run_dir)
        check.name = f"check {temperature:.0f} K"
        return check

    def is_converged(self, stats: RunStats) -> bool:
        pressure_ok = abs(stats.pressure_GPa) <= max(self.pressure_tolerance_GPa, 2 * stats.pressure_sem_GPa)
        return pressure_ok and abs(stats.energy_drift_eV_per_atom) <= self.energy_tolerance_eV_per_atom


@job
def check_volume(
    maker: CheckRunMaker,
    start: MDState,
    fit: EOSFit,
    temperature: float,
    engine: EngineSpec,
    seed: int,
    attempt: int,
    history: list[RunStats],
    run_dir: str | None = None,
) -> CheckResult | Response:
    """One check run; if unconverged and attempts remain, replace itself by a run at a rescaled volume."""
    (run,) = run_md(engine, [start], temperature, maker.duration_ps, maker.md,
                    seeds=[derive_seed(seed, temperature, 100 + attempt)], labels=[f"check{attempt}"],
                    run_dir=run_dir)
    stats = run.stats
    history = [*history, stats]
    converged = maker.is_converged(stats)
    if converged or attempt >= maker.max_attempts:
        return CheckResult(stats.volume_A3, stats, run.final_state, converged, attempt, history)
    volume = rescaled_volume(stats.volume_A3, stats.pressure_GPa, fit.b0_GPa)  # B0 ≈ -V dP/dV near V0
    retry = check_volume(maker, scaled_state(run.final_state, volume), fit, temperature, engine, seed,
                         attempt + 1, history, run_dir)
    retry.name = f"check {temperature:.0f} K attempt {attempt + 1}"
    return Response(replace=retry)
