"""The melt-quench flow: random cell → melt (volume search, check, production) → quench to each T.

Every stage ends in a ``results`` job that analyses the production run (and asks a second
potential about it) and writes the stage's :class:`~amorph.results.schemas.StageDoc` into the
JobStore; a ``collect`` job per composition writes its
:class:`~amorph.results.schemas.CompositionDoc` (Arrhenius fits, the stages' job uuids).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jobflow import Flow, Job, Maker, job
from monty.json import MSONable
from pymatgen.core import Composition

from amorph.errors import InputError, check_range
from amorph.flows.audit import AuditMaker, audit_production
from amorph.flows.cell import RandomCellMaker
from amorph.flows.production import ProductionMaker
from amorph.flows.second_opinion import second_engine, second_opinion
from amorph.flows.stage import MDStageMaker, Target, stage_name
from amorph.flows.tune import TuneLoop, tune_round
from amorph.flows.volume import CheckRunMaker, VolumeSearchMaker
from amorph.md.engine import TEMPERATURES_K, EngineSpec, MDResult
from amorph.results.documents import analyze_production, composition_document, stage_document
from amorph.results.schemas import AuditDoc, CompositionDoc, StageDoc, TrajectoryRef
from amorph.structure.composition import formula_units_for, guess_charges, parse_composition
from amorph.volume.results import CheckResult, HotterStage, VolumeSearchResult


@dataclass
class StageOutput(MSONable):
    """What a temperature stage hands the rest of the flow for one target: its document, the uuid
    of the job that writes it, its production run, its volume search and its DFT audit if it has
    one (output references while the flow is built)."""

    document: StageDoc
    uuid: str
    production: MDResult
    search: VolumeSearchResult
    audit: AuditDoc | None = None


@dataclass
class TemperatureStageMaker(Maker):
    """Volume search, check run and production for a list of targets, then each target's results.

    Each step hands the MD runs of all targets to its engine in one call, so that a batched engine
    advances them together; with one target this is one composition at one temperature.

    Parameters
    ----------
    volume_search, check, production
        The three MD stages; each has its own ``engine``, ``md`` settings and ``seed``.
    second_opinion
        Engine that evaluates ``second_opinion_frames`` frames of each production run beside the
        production's own engine (see :mod:`amorph.flows.second_opinion`): ``"auto"`` (another
        built-in potential), ``"none"``, an engine kind or an ``EngineSpec``.
    disagreement_tolerance
        A stage whose implied volume shift exceeds this is flagged ``surrogate_disagreement``.
    audit
        DFT audit of every stage as it ends (:mod:`amorph.flows.audit`); None: none.
    """

    name: str = "temperature stage"
    volume_search: VolumeSearchMaker = field(default_factory=VolumeSearchMaker)
    check: CheckRunMaker = field(default_factory=CheckRunMaker)
    production: ProductionMaker = field(default_factory=ProductionMaker)
    second_opinion: EngineSpec | str | None = "auto"
    second_opinion_frames: int = 12
    disagreement_tolerance: float = 0.05
    audit: AuditMaker | None = None

    def validate(self) -> None:
        """Raise ``InputError`` for settings that cannot work."""
        self.volume_search.validate()
        self.check.validate()
        self.production.validate()
        if self.second_opinion_frames < 2:
            raise InputError("the second opinion needs at least two frames")
        if self.audit is not None:
            self.audit.validate()

    def make(self, targets: list[Target]) -> Flow:
        """The stage's flow; its output is a :class:`StageOutput` per target."""
        search = self.volume_search.make(targets)
        check = self.check.make(targets, search.output)
        production = self.production.make(
            targets, [check.output[i].final_state for i in range(len(targets))]
        )
        production.name = f"production {stage_name(targets)}"
        opinion = Opinion(
            second_engine(self.second_opinion, self.production.engine),
            self.second_opinion_frames,
            self.disagreement_tolerance,
            self.production.md.equilibration_fraction,
        )
        results = []
        for i, target in enumerate(targets):
            result = stage_results(
                target.formula,
                target.temperature,
                self.production.engine,
                search.output[i],
                check.output[i],
                production.output[i],
                production.uuid,
                i,
                opinion,
            )
            result.name = f"results {target.name}"
            results.append(result)
        audits = []
        for i, (target, result) in enumerate(zip(targets, results, strict=True)):
            if self.audit is not None:
                audit = audit_production(
                    self.audit,
                    result.output,
                    result.uuid,
                    production.output[i],
                    self.production.engine,
                )
                audit.name = f"dft audit {target.name}"
                audits.append(audit)
        output = [
            StageOutput(
                result.output,
                result.uuid,
                production.output[i],
                search.output[i],
                audits[i].output if audits else None,
            )
            for i, result in enumerate(results)
        ]
        jobs = [search, check, production, *results, *audits]
        return Flow(jobs, output=output, name=stage_name(targets))


@job(output_schema=StageDoc)
def stage_results(
    formula: str,
    temperature: float,
    engine: EngineSpec,
    search: VolumeSearchResult,
    check: CheckResult,
    production: MDResult,
    production_uuid: str,
    index: int,
    opinion: Opinion,
) -> StageDoc:
    """Analyse the production run into the stage's document, with the second opinion on it.

    The trajectory is read from the data store if it went there, else from its file.

    Parameters
    ----------
    formula, temperature, engine, search, check, production
        As for :func:`~amorph.results.documents.stage_document`.
    production_uuid, index
        The production job and the position of this target in its output, which locate the
        trajectory in the store.
    opinion
        Whether and how to ask a second engine (see :class:`Opinion`).
    """
    in_store = production.trajectory is not None
    trajectory = production.load_trajectory()
    reference = TrajectoryRef(
        path=production.trajectory_path,
        job_uuid=production_uuid,
        index=index,
        in_data_store=in_store,
        n_frames=trajectory.n_frames,
        frame_interval_fs=float(trajectory.time_fs[1] - trajectory.time_fs[0])
        if trajectory.n_frames > 1
        else production.time_step_fs,
    )
    report = analyze_production(trajectory, charges=guess_charges(formula))
    doc = stage_document(
        formula,
        temperature,
        engine,
        search,
        check,
        production,
        reference,
        report,
        trajectory.metadata.get("engine_settings"),
    )
    if opinion.engine is not None:
        doc.second_opinion = second_opinion(
            trajectory,
            engine,
            opinion.engine,
            search.fit.b0_GPa,
            opinion.frames,
            opinion.equilibration_fraction,
        )
    if doc.second_opinion is not None:
        doc.surrogate_disagreement = bool(abs(doc.second_opinion.volume_shift) > opinion.tolerance)
    return doc


@dataclass
class Opinion(MSONable):
    """What the ``results`` job needs for the second opinion (see ``TemperatureStageMaker``)."""

    engine: EngineSpec | None
    frames: int
    tolerance: float
    equilibration_fraction: float


@job(output_schema=CompositionDoc)
def collect(
    formula: str, engine: EngineSpec, stages: list[StageDoc], stage_uuids: list[str]
) -> CompositionDoc:
    """The composition's document: its stages, hottest first, and Arrhenius fits below the melt.

    ``stage_uuids`` are the uuids of the jobs that made ``stages``, in the same order.
    """
    return composition_document(formula, engine, stages, stage_uuids)


@dataclass
class MeltQuenchMaker(Maker):
    """The paper's protocol for one composition (Zheng et al., npj Comput. Mater. 2024), or several.

    Pack ``cell.atoms`` atoms at random, melt at ``melt_temperature`` (volume search, check run,
    production), then quench the last melt frame instantly to each of ``quench_temperatures``
    (fresh velocities) and repeat the stage there. Defaults: 100 atoms, 2 fs steps (0.5 fs with H),
    4 ps volume-search and check runs, 20 ps production, 5000 K melt, 2500/2000/1500/1000 K
    quenches, CHGNet. Change the engine of every stage with :meth:`with_engine`.

    Parameters
    ----------
    melt_temperature, quench_temperatures
        Temperatures in K; every quench temperature lies below the melt.
    cell
        The random packing.
    stage
        The volume search, check run and production of each temperature.
    run_dir
        MD files go to ``<run_dir>/<formula>/<T>K`` (absolute path), so that a rerun of a killed or
        failed job reuses finished runs and continues production from its checkpoint; on a cluster
        put it on a file system every node sees. None: each job's own folder (no resume).
    batch_stages
        Run the quench temperatures (and, in :meth:`make_batch`, the compositions) as one stage,
        each MD step of all of them one engine call; else one stage per composition and
        temperature, which a workflow manager may run in parallel. None: batch when the engine
        batches (``EngineSpec.batches``).
    tune
        The audit/tune loop (:mod:`amorph.flows.tune`): after the audited flow, tune CHGNet on its
        audits and run again while they disagree; the flow's output is then each composition's
        :class:`~amorph.results.schemas.TuningDoc`. None: no loop.
    """

    name: str = "melt-quench"
    melt_temperature: float = 5000.0
    quench_temperatures: tuple[float, ...] = (2500.0, 2000.0, 1500.0, 1000.0)
    cell: RandomCellMaker = field(default_factory=RandomCellMaker)
    stage: TemperatureStageMaker = field(default_factory=TemperatureStageMaker)
    run_dir: str | None = None
    batch_stages: bool | None = None
    tune: TuneLoop | None = None

    @property
    def engine(self) -> EngineSpec:
        """The engine of the production runs (whose name the results carry)."""
        return self.stage.production.engine

    def with_engine(self, engine: EngineSpec) -> MeltQuenchMaker:
        """A copy whose every MD stage runs with ``engine``."""
        return self.update_kwargs({"engine": engine}, class_filter=MDStageMaker)

    def validate(self, composition: Composition | None = None) -> None:
        """Check every setting (for ``composition``, if given) before any job runs; raise
        ``InputError`` with the first problem.

        The engine is not loaded here (a flow may be built where its model is not installed); its
        elements are checked by the first MD job.
        """
        for temperature in (self.melt_temperature, *self.quench_temperatures):
            check_range("temperature", temperature, *TEMPERATURES_K, " K")
        hotter = [t for t in self.quench_temperatures if t >= self.melt_temperature]
        if hotter:
            raise InputError(
                f"quench temperature {hotter[0]:g} K is not below the melt "
                f"({self.melt_temperature:g} K)"
            )
        self.cell.validate(composition)
        self.stage.validate()
        if self.tune is not None:
            self.tune.validate(self)

    def size(self, composition: Composition) -> tuple[int, float]:
        """Atoms of the cell and the fewest atom-steps of MD the flow runs (no volume added by the
        search, every check converged at once)."""
        atoms = formula_units_for(composition, self.cell.atoms) * round(composition.num_atoms)
        stage = self.stage
        runs = [(stage.volume_search, len(stage.volume_search.volume_factors))]
        runs += [(stage.check, 1), (stage.production, 1)]
        steps = sum(
            count * maker.duration_ps * 1000 / maker.md.time_step_for(composition)
            for maker, count in runs
        )
        return atoms, atoms * steps * (1 + len(self.quench_temperatures))

    def make(self, composition: str | Composition) -> Flow:
        """The flow of one composition; its output is the composition's document."""
        jobs, collected = self._jobs([composition])
        formula, output = next(iter(collected.items()))
        return Flow(jobs, output=output, name=f"{self.name} {formula}")

    def make_batch(self, compositions: list[str | Composition]) -> Flow:
        """One flow for several compositions, batched as ``batch_stages`` says; output: documents
        by formula."""
        jobs, collected = self._jobs(compositions)
        return Flow(jobs, output=collected, name=f"{self.name} {' '.join(collected)}")

    def _jobs(self, compositions: list[str | Composition]) -> tuple[list, dict[str, Any]]:
        """The jobs for ``compositions`` and, per formula, the output of its last job (``collect``,
        or with ``tune`` the loop's first ``tune`` job)."""
        jobs, rounds = self.round_jobs(compositions)
        if self.tune is None:
            return jobs, {formula: collected.output for formula, (collected, _) in rounds.items()}
        tunes = {formula: self.tune_job(formula, 0, *r, [], []) for formula, r in rounds.items()}
        return [*jobs, *tunes.values()], {formula: t.output for formula, t in tunes.items()}

    def round_jobs(
        self, compositions: list[str | Composition]
    ) -> tuple[list, dict[str, tuple[Job, list[StageOutput]]]]:
        """The melt-quench jobs for ``compositions`` (checked first) and, per formula, its
        ``collect`` job and its stages' outputs, hottest first."""
        compositions = [parse_composition(c, whole=True) for c in compositions]
        formulas = [c.reduced_formula for c in compositions]
        if len(set(formulas)) < len(formulas):
            raise InputError(f"a batch lists a composition twice: {', '.join(formulas)}")
        for composition in compositions:
            self.validate(composition)
        # formulas, not Compositions: JSON-safe in the job
        packs = [self.cell.make(c.formula, self.melt_temperature) for c in compositions]
        melt_targets = [
            self._target(pack.output, self.melt_temperature, f)
            for pack, f in zip(packs, formulas, strict=True)
        ]
        melts, melt_outputs = self._stages(melt_targets)
        quench_targets = [
            self._target(
                melt.production.final_state.structure,
                t,
                f,
                HotterStage(melt.search.fit, melt.search.volume_A3, self.melt_temperature),
            )
            for melt, f in zip(melt_outputs, formulas, strict=True)
            for t in self.quench_temperatures
        ]
        quenches, quench_outputs = self._stages(quench_targets)
        rounds = {}
        n = len(self.quench_temperatures)
        for k, formula in enumerate(formulas):
            outputs = [melt_outputs[k], *quench_outputs[k * n : (k + 1) * n]]
            collected = collect(
                formula,
                self.engine,
                [o.document for o in outputs],
                [o.uuid for o in outputs],
            )
            collected.name = f"collect {formula}"
            rounds[formula] = (collected, outputs)
        jobs = [*packs, *melts, *quenches, *(collected for collected, _ in rounds.values())]
        return jobs, rounds

    def tune_job(
        self,
        formula: str,
        round_: int,
        collected: Job,
        stages: list[StageOutput],
        frames: list,
        history: list,
    ) -> Job:
        """The ``tune`` job after round ``round_`` of ``formula`` (its ``collect`` job and stage
        outputs), given the earlier rounds' DFT frames and records (see :func:`tune_round`)."""
        tune = tune_round(
            self,
            formula,
            round_,
            collected.output,
            collected.uuid,
            [stage.audit for stage in stages],
            [stage.production for stage in stages],
            frames,
            history,
        )
        tune.name = f"tune {formula} round {round_}"
        return tune

    def _target(
        self, structure, temperature: float, formula: str, hotter: HotterStage | None = None
    ) -> Target:
        return Target(structure, temperature, formula, self.run_dir, hotter)

    def _stages(self, targets: list[Target]) -> tuple[list[Flow], list[StageOutput]]:
        """Stage flows for ``targets`` (one for all when batching) and each target's output."""
        batch = self.batch_stages if self.batch_stages is not None else self.engine.batches
        groups = [targets] if batch else [[target] for target in targets]
        flows = [self.stage.make(group) for group in groups if group]
        return flows, [output for flow in flows for output in flow.output]
