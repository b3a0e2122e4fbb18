"""Volume search (MPMorph) and check run: jobs that chain NVT runs to the zero-pressure volume."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from jobflow import Flow, Job, Response, job
from monty.json import MSONable

from amorph.eos import (
    EOSFit,
    EOSPoint,
    fit_pressure_eos,
    is_bracketed,
    next_volume,
    rescaled_volume,
    zero_pressure_volume,
)
from amorph.errors import InputError, VolumeSearchError
from amorph.flows.md import MDStageMaker, Target, scaled_state, stage_name
from amorph.md.engine import MDResult, MDState, RunStats


@dataclass
class VolumeSearchResult(MSONable):
    """The sampled P(V) points, their fit, and the zero-pressure volume with a state to start at."""

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
class VolumeSearchMaker(MDStageMaker):
    """NVT runs at ``volume_factors`` × the start volume, extended until zero pressure is bracketed.

    Parameters
    ----------
    volume_factors
        Volumes of the first round, relative to the start structure's.
    max_extra_volumes
        Volumes added at most, one per round, while every pressure has the same sign.
    min_step, max_step
        Relative step of an added volume beyond the sampled range, towards the fitted V0.

    Pressures are averaged after ``md.equilibration_fraction`` of each ``duration_ps`` run.
    """

    name: str = "volume search"
    volume_factors: tuple[float, ...] = (0.8, 1.0, 1.2)
    max_extra_volumes: int = 6
    min_step: float = 0.05
    max_step: float = 0.25

    def validate(self) -> None:
        if len(self.volume_factors) < 2 or min(self.volume_factors) <= 0:
            raise InputError("the volume search needs at least two positive volume factors")
        super().validate()

    def make(self, targets: list[Target]) -> Flow:
        """The search for every target; each round's runs, of all targets, are one engine call."""
        factors = [list(self.volume_factors)] * len(targets)
        runs = eos_runs(self, targets, factors, [0] * len(targets))
        runs.name = f"eos {stage_name(targets)}"
        search = fit_or_extend(self, targets, runs.output, [[] for _ in targets])
        search.name = f"eos fit {stage_name(targets)}"
        return Flow([runs, search], output=search.output, name=f"{self.name} {stage_name(targets)}")


@job
def eos_runs(
    maker: VolumeSearchMaker,
    targets: list[Target],
    factors: list[list[float]],
    first_indices: list[int],
) -> list[list[MDResult]]:
    """For each target, NVT runs of its structure scaled by each volume factor (new velocities).

    Parameters
    ----------
    maker, targets
        The volume search and the systems it runs, all in one engine call.
    factors
        Per target, the factors of its start volume to run at (may be empty).
    first_indices
        Per target, the index of its first new run (names the runs and derives their seeds).
    """
    plan = [
        (i, factor, first + k)
        for i, (fs, first) in enumerate(zip(factors, first_indices, strict=True))
        for k, factor in enumerate(fs)
    ]
    results = maker.run_md(
        [targets[i] for i, _, _ in plan],
        [
            scaled_state(MDState(targets[i].structure), f * targets[i].structure.volume)
            for i, f, _ in plan
        ],
        seed_keys=[n for _, _, n in plan],
        labels=[f"eos{n:02d}" for _, _, n in plan],
    )
    grouped: list[list[MDResult]] = [[] for _ in targets]
    for (i, _, _), result in zip(plan, results, strict=True):
        grouped[i].append(result)
    return grouped


@job
def fit_or_extend(
    maker: VolumeSearchMaker,
    targets: list[Target],
    new_runs: list[list[MDResult]],
    previous_runs: list[list[MDResult]],
) -> list[VolumeSearchResult] | Response:
    """Fit P(V) of each target; once all are bracketed, return their zero-pressure volumes.

    Otherwise replace this job by one more volume for each target that is not bracketed (all in
    one engine call) and a new fit.

    Parameters
    ----------
    maker, targets
        The volume search and its systems.
    new_runs, previous_runs
        Per target, the runs of the last :func:`eos_runs` job and those of earlier ones.
    """
    runs = [[*old, *new] for old, new in zip(previous_runs, new_runs, strict=True)]
    outcomes = [
        _fit_one(maker, target, target_runs)
        for target, target_runs in zip(targets, runs, strict=True)
    ]
    if all(isinstance(outcome, VolumeSearchResult) for outcome in outcomes):
        return outcomes
    factors = [[] if isinstance(outcome, VolumeSearchResult) else [outcome] for outcome in outcomes]
    more = eos_runs(maker, targets, factors, [len(r) for r in runs])
    extra = max(len(r) for r in runs) - len(maker.volume_factors) + 1
    more.name = f"eos {stage_name(targets)} extra {extra}"
    again = fit_or_extend(maker, targets, more.output, runs)
    again.name = f"eos fit {stage_name(targets)}"
    return Response(replace=Flow([more, again], output=again.output))


def _fit_one(
    maker: VolumeSearchMaker, target: Target, runs: list[MDResult]
) -> VolumeSearchResult | float:
    """The search's result if zero pressure is bracketed, else the volume factor to sample next."""
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
        sampled = ", ".join(
            f"{v:.1f} Å³: {p:+.2f} GPa" for v, p in zip(volumes, pressures, strict=True)
        )
        raise VolumeSearchError(
            f"zero pressure not bracketed for {target.name} after {extra} extra volumes ({sampled})"
        )
    return (
        next_volume(volumes, pressures, fit, maker.min_step, maker.max_step)
        / target.structure.volume
    )


def _eos_point(run: MDResult) -> EOSPoint:
    s = run.stats
    return EOSPoint(
        s.volume_A3,
        s.pressure_GPa,
        s.pressure_sem_GPa,
        s.temperature_K,
        s.energy_eV_per_atom,
        run.trajectory_path,
    )


@dataclass
class CheckRunMaker(MDStageMaker):
    """An NVT run at the fitted volume, repeated at a rescaled volume until it is converged.

    Parameters
    ----------
    pressure_tolerance_GPa, energy_tolerance_eV_per_atom
        Converged: |mean pressure| ≤ max(``pressure_tolerance_GPa``, 2 × its standard error) and
        the mean energies of the run's two halves differ by at most
        ``energy_tolerance_eV_per_atom``.
    max_attempts
        Runs at most. An unconverged run is repeated at a volume rescaled by ΔV/V = P/B0 (B0 from
        the P(V) fit); after ``max_attempts`` runs the last one is passed on, flagged
        ``converged=False``.
    """

    name: str = "check run"
    pressure_tolerance_GPa: float = 0.5
    energy_tolerance_eV_per_atom: float = 0.01
    max_attempts: int = 3

    def validate(self) -> None:
        if self.max_attempts < 1:
            raise InputError("the check run needs at least one attempt")
        super().validate()

    def make(self, targets: list[Target], searches: list[VolumeSearchResult]) -> Job:
        """Check runs for every target, from its volume search, as one engine call per attempt."""
        check = check_volume(self, targets, searches)
        check.name = f"check {stage_name(targets)}"
        return check

    def is_converged(self, stats: RunStats) -> bool:
        pressure_ok = abs(stats.pressure_GPa) <= max(
            self.pressure_tolerance_GPa, 2 * stats.pressure_sem_GPa
        )
        return (
            pressure_ok and abs(stats.energy_drift_eV_per_atom) <= self.energy_tolerance_eV_per_atom
        )

    def is_settled(self, check: CheckResult | None) -> bool:
        """Whether a target's check runs are over: converged, or out of attempts."""
        return check is not None and (check.converged or check.attempts >= self.max_attempts)


@job
def check_volume(
    maker: CheckRunMaker,
    targets: list[Target],
    searches: list[VolumeSearchResult],
    checks: list[CheckResult] | None = None,
) -> list[CheckResult] | Response:
    """One check run for each target still unconverged and with attempts left.

    The first run is at the fitted volume, later ones at a volume rescaled by the last pressure;
    the job replaces itself while any such target remains.

    Parameters
    ----------
    maker, targets
        The check-run stage and its systems.
    searches
        Per target, the volume search result (fitted volume, bulk modulus, start state).
    checks
        Per target, its latest check result (None: not checked yet); None before the first round.
    """
    checks = list(checks or [None] * len(targets))
    retry = [i for i, check in enumerate(checks) if not maker.is_settled(check)]
    starts, attempts = [], []
    for i in retry:
        if checks[i] is None:
            starts.append(searches[i].start)
            attempts.append(1)
        else:
            stats = checks[i].stats  # B0 ≈ -V dP/dV near V0
            volume = rescaled_volume(stats.volume_A3, stats.pressure_GPa, searches[i].fit.b0_GPa)
            starts.append(scaled_state(checks[i].final_state, volume))
            attempts.append(checks[i].attempts + 1)
    runs = maker.run_md(
        [targets[i] for i in retry],
        starts,
        seed_keys=[100 + a for a in attempts],
        labels=[f"check{a}" for a in attempts],
    )
    for i, attempt, run in zip(retry, attempts, runs, strict=True):
        history = [] if checks[i] is None else checks[i].history
        checks[i] = CheckResult(
            run.stats.volume_A3,
            run.stats,
            run.final_state,
            maker.is_converged(run.stats),
            attempt,
            [*history, run.stats],
        )
    if all(maker.is_settled(check) for check in checks):
        return checks
    again = check_volume(maker, targets, searches, checks)
    again.name = f"check {stage_name(targets)} attempt {max(attempts) + 1}"
    return Response(replace=again)
