"""Volume search (MPMorph) and check run: jobs that chain NVT runs to the zero-pressure volume."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from jobflow import Flow, Job, Response, job

from amorph.errors import InputError, VolumeSearchError, check_range
from amorph.files import write_text_atomic
from amorph.flows.stage import MDStageMaker, Target, scaled_state, stage_name
from amorph.md.engine import BasisStress, MDResult, MDState, RunStats
from amorph.trajectory import Trajectory
from amorph.volume.eos import (
    GRUNEISEN,
    EOSFit,
    EOSPoint,
    fit_pressure_eos,
    is_bracketed,
    next_volume,
    quenched_volume,
    rescaled_volume,
    zero_pressure_volume,
)
from amorph.volume.results import CheckResult, VolumeSearchResult


@dataclass
class VolumeSearchMaker(MDStageMaker):
    """NVT runs at ``volume_factors`` × a centre volume, extended until zero pressure is bracketed.

    The centre is the start structure's volume (for a melt, the packing's: the offline estimate
    expanded to the melt temperature), except for a target quenched from a hotter stage
    (``Target.hotter``): there it is the zero-pressure volume that the hotter stage's P(V) fit
    predicts at the target's temperature with a Mie–Grüneisen thermal pressure
    (:func:`~amorph.volume.eos.quenched_volume`, Grüneisen parameter ``gruneisen``). The centre only
    decides where to sample; the bracketing rule and the fit decide the volume.

    Parameters
    ----------
    volume_factors
        Volumes of the first round, relative to the centre.
    gruneisen
        Grüneisen parameter of the thermal-pressure model that centres quenched targets. The
        default, 2/3, makes the virial pressure lost on cooling equal the kinetic pressure lost,
        N k_B ΔT / V; it centred the quenches of CHGNet melts best (the README gives the numbers).
    max_extra_volumes
        Volumes added at most, one per round, while every pressure has the same sign.
    min_step, max_step, overshoot
        An added volume lies ``overshoot`` beyond the fitted V0 (as seen from the sampled range),
        but ``min_step`` to ``max_step`` (relative) beyond the sampled range.

    Pressures are averaged after ``md.equilibration_fraction`` of each ``duration_ps`` run. A
    plane-wave DFT engine (GPAW, VASP) first measures its basis-set stress on the last frame of the
    first round's middle run (:meth:`~amorph.md.engine.Engine.basis_stress`: that frame at the
    run's cutoff and at a converged one), and the search aims at zero pressure at the converged
    basis: every pressure is corrected by that difference (engines told otherwise, e.g. VASP's
    ``inputs="paper"``, measure nothing).
    """

    name: str = "volume search"
    volume_factors: tuple[float, ...] = (0.8, 1.0, 1.2)
    gruneisen: float = GRUNEISEN
    max_extra_volumes: int = 6
    min_step: float = 0.05
    max_step: float = 0.4
    overshoot: float = 0.1

    def validate(self) -> None:
        """Check the volume factors, Grüneisen parameter, overshoot and steps, then the settings
        every MD stage checks."""
        if len(self.volume_factors) < 2 or min(self.volume_factors) <= 0:
            raise InputError("the volume search needs at least two positive volume factors")
        check_range("Grüneisen parameter", self.gruneisen, 0.1, 5)
        check_range("overshoot", self.overshoot, 0, 1)
        if not 0 < self.min_step <= self.max_step:
            raise InputError("the volume search needs 0 < min_step <= max_step")
        super().validate()

    def make(self, targets: list[Target]) -> Flow:
        """The search for every target; each round's runs, of all targets, are one engine call."""
        runs = eos_runs(self, targets, None, [0] * len(targets))
        runs.name = f"eos {stage_name(targets)}"
        jobs, basis = [runs], None
        if self.engine.plane_waves:
            measured = basis_stresses(self, targets, runs.output)
            measured.name = f"basis-set stress {stage_name(targets)}"
            jobs.append(measured)
            basis = measured.output
        search = fit_or_extend(self, targets, runs.output, [[] for _ in targets], basis)
        search.name = f"eos fit {stage_name(targets)}"
        return Flow(
            [*jobs, search], output=search.output, name=f"{self.name} {stage_name(targets)}"
        )

    def centre_volume(self, target: Target) -> float:
        """The volume the first round's factors multiply (see the class docstring)."""
        hotter = target.hotter
        if hotter is None:
            return target.structure.volume
        return quenched_volume(
            hotter.fit,
            hotter.volume_A3,
            hotter.temperature,
            target.temperature,
            len(target.structure),
            self.gruneisen,
            self.md.pressure_convention,
        )


@job
def eos_runs(
    maker: VolumeSearchMaker,
    targets: list[Target],
    volumes: list[list[float]] | None,
    first_indices: list[int],
) -> list[list[MDResult]]:
    """For each target, NVT runs of its structure scaled to each volume (new velocities).

    Parameters
    ----------
    maker, targets
        The volume search and the systems it runs, all in one engine call.
    volumes
        Per target, the volumes in Å³ to run at (may be empty); None: the first round,
        ``volume_factors`` × the target's centre volume.
    first_indices
        Per target, the index of its first new run (names the runs and derives their seeds).
    """
    if volumes is None:
        volumes = [
            [f * maker.centre_volume(target) for f in maker.volume_factors] for target in targets
        ]
    plan = [
        (i, volume, first + k)
        for i, (vs, first) in enumerate(zip(volumes, first_indices, strict=True))
        for k, volume in enumerate(vs)
    ]
    results = maker.run_md(
        [targets[i] for i, _, _ in plan],
        [scaled_state(MDState(targets[i].structure), volume) for i, volume, _ in plan],
        stream="eos",
        numbers=[n for _, _, n in plan],
        labels=[f"eos{n:02d}" for _, _, n in plan],
    )
    grouped: list[list[MDResult]] = [[] for _ in targets]
    for (i, _, _), result in zip(plan, results, strict=True):
        grouped[i].append(result)
    return grouped


@job
def basis_stresses(
    maker: VolumeSearchMaker, targets: list[Target], runs: list[list[MDResult]]
) -> list[BasisStress | None]:
    """Per target, the engine's basis-set stress on the last frame of its middle first-round run
    (kept in ``<run folder>/basis.json``, so that a rerun does not compute it again)."""
    engine = maker.engine.load()
    measured = []
    for target, target_runs in zip(targets, runs, strict=True):
        structure = target_runs[len(target_runs) // 2].final_state.structure
        folder = target.work_dir()
        saved = folder / "basis.json"
        key = MDState(structure).digest()
        if saved.exists() and json.loads(saved.read_text()).get("start") == key:
            measured.append(BasisStress.from_dict(json.loads(saved.read_text())["basis"]))
            continue
        basis = engine.basis_stress(structure, folder / "basis")
        if basis is not None:
            write_text_atomic(saved, json.dumps({"start": key, "basis": basis.as_dict()}))
        measured.append(basis)
    return measured


@job
def fit_or_extend(
    maker: VolumeSearchMaker,
    targets: list[Target],
    new_runs: list[list[MDResult]],
    previous_runs: list[list[MDResult]],
    basis: list[BasisStress | None] | None = None,
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
    basis
        Per target, the engine's basis-set stress (None: no correction).
    """
    basis = basis or [None] * len(targets)
    runs = [[*old, *new] for old, new in zip(previous_runs, new_runs, strict=True)]
    outcomes = [
        _fit_one(maker, target, target_runs, target_basis)
        for target, target_runs, target_basis in zip(targets, runs, basis, strict=True)
    ]
    if all(isinstance(outcome, VolumeSearchResult) for outcome in outcomes):
        return outcomes
    volumes = [[] if isinstance(outcome, VolumeSearchResult) else [outcome] for outcome in outcomes]
    more = eos_runs(maker, targets, volumes, [len(r) for r in runs])
    extra = max(len(r) for r in runs) - len(maker.volume_factors) + 1
    more.name = f"eos {stage_name(targets)} extra {extra}"
    again = fit_or_extend(maker, targets, more.output, runs, basis)
    again.name = f"eos fit {stage_name(targets)}"
    return Response(replace=Flow([more, again], output=again.output))


def _fit_one(
    maker: VolumeSearchMaker, target: Target, runs: list[MDResult], basis: BasisStress | None
) -> VolumeSearchResult | float:
    """The search's result if zero pressure (at the converged basis) is bracketed, else the
    volume to sample next."""
    points = [_eos_point(run, basis) for run in runs]
    volumes = np.array([p.volume_A3 for p in points])
    pressures = np.array([p.pressure_GPa for p in points])
    fit = fit_pressure_eos(volumes, pressures)
    extra = len(runs) - len(maker.volume_factors)
    if is_bracketed(pressures):
        v0 = zero_pressure_volume(volumes, pressures, fit)
        nearest = runs[int(np.argmin(np.abs(volumes - v0)))]
        start = scaled_state(nearest.final_state, v0)
        return VolumeSearchResult(points, fit, v0, start, extra, basis)
    if extra >= maker.max_extra_volumes:
        sampled = ", ".join(
            f"{v:.1f} Å³: {p:+.2f} GPa" for v, p in zip(volumes, pressures, strict=True)
        )
        raise VolumeSearchError(
            f"zero pressure not bracketed for {target.name} after {extra} extra volumes ({sampled})"
        )
    return next_volume(volumes, pressures, fit, maker.min_step, maker.max_step, maker.overshoot)


def _eos_point(run: MDResult, basis: BasisStress | None) -> EOSPoint:
    s = run.stats.corrected(basis)
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
    """NVT runs at the fitted volume until its pressure is within tolerance: a test, not a chase.

    After each run the mean pressure P ± SE of every run at the current volume (pooled; the first
    run's ``md.equilibration_fraction`` left out; SE from block averages,
    :mod:`amorph.analysis.timeseries`) and the energy drift between the pooled trajectory's halves
    (± its SE) decide, with Student's t at ``confidence``:

    - ``|P| - t·SE > pressure_tolerance_GPa`` (significantly above the tolerance), or, once the
      run has been extended, ``|P|`` above the tolerance and ``|P| > t·SE`` (significantly off
      zero): the volume is off; the next run starts at ΔV/V = P/B, B the secant modulus of the
      last two check volumes once there are two (if positive), else the P(V) fit's -V dP/dV;
    - ``|P| ≤ pressure_tolerance_GPa`` and the drift not significantly beyond
      ``energy_tolerance_eV_per_atom`` (the paper's criteria, 5 kbar and an energy stable between
      halves): converged;
    - otherwise (a single run's pressure above the tolerance but within noise of it, or a pressure
      within noise of zero, or an energy that drifts): the run is extended at the same volume, and
      its frames are pooled with the earlier ones.

    One noisy run thus never moves the volume unless it is far off, and a pressure that stays
    beyond the tolerance once more frames are in moves it. With a plane-wave DFT engine every
    pressure is at the converged basis (the volume search's basis-set stress added).

    After ``max_attempts`` runs (extensions included) the last volume is passed on, flagged
    ``converged=False`` if it has not passed. The default, 4, leaves a stage whose first run was
    extended and then rescaled a run to test the new volume and one secant rescale; the demo
    preset, whose runs are noisier, allows 6.
    """

    name: str = "check run"
    pressure_tolerance_GPa: float = 0.5
    energy_tolerance_eV_per_atom: float = 0.01
    confidence: float = 0.95
    max_attempts: int = 4

    def validate(self) -> None:
        """Check the attempts, pressure tolerance and confidence, then the settings every MD stage
        checks."""
        if self.max_attempts < 1:
            raise InputError("the check run needs at least one attempt")
        check_range("pressure tolerance", self.pressure_tolerance_GPa, 1e-3, 100, " GPa")
        check_range("confidence", self.confidence, 0.5, 0.9999)
        super().validate()

    def make(self, targets: list[Target], searches: list[VolumeSearchResult]) -> Job:
        """Check runs for every target, from its volume search, as one engine call per attempt."""
        check = check_volume(self, targets, searches)
        check.name = f"check {stage_name(targets)}"
        return check

    def decide(self, stats: RunStats, runs: int = 1) -> str:
        """What the statistics pooled over ``runs`` runs at one volume call for: "converged",
        "rescale" or "extend" (see the class docstring)."""
        pressure, t = stats.pressure, stats.pressure.t_factor(self.confidence)
        tolerance = self.pressure_tolerance_GPa
        above = abs(pressure.mean) - t * pressure.sem > tolerance
        off = runs > 1 and abs(pressure.mean) > max(tolerance, t * pressure.sem)
        if above or off:
            return "rescale"
        drift = abs(stats.energy_drift_eV_per_atom) - t * stats.energy_drift_sem_eV_per_atom
        if abs(pressure.mean) <= tolerance and drift <= self.energy_tolerance_eV_per_atom:
            return "converged"
        return "extend"

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

    The first run is at the fitted volume; later ones extend the last run or start at a rescaled
    volume, as :meth:`CheckRunMaker.decide` said. The job replaces itself while any such target
    remains.

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
        check = checks[i]
        if check is None:
            starts.append(searches[i].start)
        elif check.extends:
            starts.append(check.final_state)
        else:
            volume = rescaled_volume(
                check.volume_A3, check.stats.pressure_GPa, _modulus(check, searches[i].fit)
            )
            starts.append(scaled_state(check.final_state, volume))
        attempts.append(1 if check is None else check.attempts + 1)
    runs = maker.run_md(
        [targets[i] for i in retry],
        starts,
        stream="check",
        numbers=attempts,
        labels=[f"check{a}" for a in attempts],
    )
    for i, attempt, run in zip(retry, attempts, runs, strict=True):
        checks[i] = _checked(maker, checks[i], run, attempt, searches[i].basis)
    if all(maker.is_settled(check) for check in checks):
        return checks
    again = check_volume(maker, targets, searches, checks)
    again.name = f"check {stage_name(targets)} attempt {max(attempts) + 1}"
    return Response(replace=again)


def _modulus(check: CheckResult, fit: EOSFit) -> float:
    """The bulk modulus a rescale divides by: the secant -V dP/dV between the check's last two
    volumes where it has run at two and that is positive, else the fit's at the last volume."""
    last = check.history[-1]
    earlier = [s for s in check.history if s.volume_A3 != last.volume_A3]
    if earlier:
        before = earlier[-1]
        change = (last.pressure_GPa - before.pressure_GPa) / (last.volume_A3 - before.volume_A3)
        secant = -0.5 * (last.volume_A3 + before.volume_A3) * change
        if secant > 0:
            return secant
    return fit.bulk_modulus(check.volume_A3)


def _checked(
    maker: CheckRunMaker,
    previous: CheckResult | None,
    run: MDResult,
    attempt: int,
    basis: BasisStress | None = None,
) -> CheckResult:
    """The check result after ``run``: its frames pooled with the earlier runs at its volume,
    pressures at the converged basis where ``basis`` is given."""
    extends = previous is not None and previous.extends
    segments = [*(previous.segments if extends else []), run.trajectory_path]
    stats = run.stats
    if len(segments) > 1:
        parts = [Trajectory.load(path) for path in segments]
        first = int(parts[0].n_frames * maker.md.equilibration_fraction)
        stats = RunStats.from_trajectory(Trajectory.concatenate(parts), maker.md, start=first)
    stats = stats.corrected(basis)
    decision = maker.decide(stats, len(segments))
    if decision != "converged" and attempt >= maker.max_attempts:
        decision = "stop"
    return CheckResult(
        volume_A3=stats.volume_A3,
        stats=stats,
        final_state=run.final_state,
        converged=decision == "converged",
        attempts=attempt,
        history=[*(previous.history if previous else []), stats],
        decisions=[*(previous.decisions if previous else []), decision],
        segments=segments,
    )
