"""The melt-quench flow: random cell → melt (volume search, check, production) → quench to each lower T."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobflow import Flow, Maker, job
from pymatgen.core import Composition

from amorph.errors import InputError
from amorph.flows.md import Target, stage_name
from amorph.flows.packing import RandomCellMaker
from amorph.flows.production import ProductionMaker
from amorph.flows.volume import CheckResult, CheckRunMaker, VolumeSearchMaker, VolumeSearchResult
from amorph.md.engine import EngineSpec, MDResult, MDSettings
from amorph.results.reader import COLLECT_JOB
from amorph.results.summary import (
    analyze_production,
    arrhenius_summary,
    temperature_summary,
    write_temperature_results,
)
from amorph.structure.composition import parse_composition


@dataclass
class TemperatureStageMaker(Maker):
    """Volume search, check run and production for a list of targets, then each target's results.

    Each step hands the MD runs of all targets to the engine in one call, so that a batched engine
    advances them together; with one target this is the stage of one composition at one temperature.
    """

    name: str = "temperature stage"
    volume_search: VolumeSearchMaker = field(default_factory=VolumeSearchMaker)
    check: CheckRunMaker = field(default_factory=CheckRunMaker)
    production: ProductionMaker = field(default_factory=ProductionMaker)

    def validate(self) -> None:
        self.volume_search.validate()
        self.check.validate()
        self.production.validate()

    def make(
        self,
        targets: list[Target],
        engine: EngineSpec,
        seed: int = 1,
        results_dir: str | None = None,
    ) -> Flow:
        """The stage's flow; its output lists ``{"summary", "production"}`` per target."""
        search = self.volume_search.make(targets, engine, seed)
        check = self.check.make(targets, search.output, engine, seed)
        production = self.production.make(
            targets, [check.output[i].final_state for i in range(len(targets))], engine, seed
        )
        production.name = f"production {stage_name(targets)}"
        summaries = []
        for i, target in enumerate(targets):
            summary = summarize_temperature(
                target.formula,
                target.temperature,
                engine,
                search.output[i],
                check.output[i],
                production.output[i],
                results_dir,
            )
            summary.name = f"results {target.name}"
            summaries.append(summary)
        output = [
            {"summary": summary.output, "production": production.output[i]}
            for i, summary in enumerate(summaries)
        ]
        return Flow(
            [search, check, production, *summaries], output=output, name=stage_name(targets)
        )


@job
def summarize_temperature(
    formula: str,
    temperature: float,
    engine: EngineSpec,
    search: VolumeSearchResult,
    check: CheckResult,
    production: MDResult,
    results_dir: str | None,
) -> dict[str, Any]:
    """The stage's summary with its diffusivities; with ``results_dir``, also its folder of files."""
    report = analyze_production(production)
    summary = temperature_summary(formula, temperature, engine, search, check, production, report)
    if results_dir is None:
        return summary
    return write_temperature_results(results_dir, summary, search, production, report)


@job
def collect(
    summaries: list[dict[str, Any]], results_dir: str | None = None
) -> list[dict[str, Any]]:
    """All temperature summaries of a composition, hottest first, each with the Arrhenius fits."""
    arrhenius = arrhenius_summary(summaries, results_dir)
    return [
        {**s, "arrhenius": arrhenius} for s in sorted(summaries, key=lambda s: -s["temperature_K"])
    ]


@dataclass
class MeltQuenchMaker(Maker):
    """The paper's protocol for one composition (Zheng et al., npj Comput. Mater. 2024), or for several.

    Pack ``cell.atoms`` atoms at random, melt at ``melt_temperature`` (volume search, check run,
    production), then quench the last melt frame instantly to each of ``quench_temperatures`` (fresh
    velocities) and repeat the stage there. Defaults: 100 atoms, 2 fs steps (0.5 fs with H), 4 ps
    volume-search and check runs, 20 ps production, 5000 K melt, 2500/2000/1500/1000 K quenches, CHGNet.

    ``batch_stages``: run the quench temperatures (and, in :meth:`make_batch`, the compositions) as one
    stage, each of its MD steps one engine call; else one stage per composition and temperature, which a
    workflow manager may run in parallel. None: batch when the engine batches (``Engine.batches``).
    """

    name: str = "melt-quench"
    melt_temperature: float = 5000.0
    quench_temperatures: tuple[float, ...] = (2500.0, 2000.0, 1500.0, 1000.0)
    engine: EngineSpec = field(default_factory=EngineSpec)
    cell: RandomCellMaker = field(default_factory=RandomCellMaker)
    stage: TemperatureStageMaker = field(default_factory=TemperatureStageMaker)
    seed: int = 1
    results_dir: str | None = None
    run_dir: str | None = (
        None  # MD files in <run_dir>/<formula>/<T>K, so reruns resume; else job folders
    )
    batch_stages: bool | None = None

    def validate(self, composition: Composition) -> None:
        """Check every setting before any job runs; raise ``InputError`` with the first problem."""
        for temperature in (self.melt_temperature, *self.quench_temperatures):
            if not temperature > 0:
                raise InputError(f"temperature must be positive, got {temperature:g} K")
        hotter = [t for t in self.quench_temperatures if t >= self.melt_temperature]
        if hotter:
            raise InputError(
                f"quench temperature {hotter[0]:g} K is not below the melt ({self.melt_temperature:g} K)"
            )
        self.cell.validate(composition)
        self.stage.validate()
        self.engine.load().check_elements([el.symbol for el in composition.elements])

    def make(self, composition: str | Composition) -> Flow:
        """The flow of one composition; its output lists the temperature summaries, hottest first."""
        jobs, collected = self._jobs([composition])
        formula, summaries = next(iter(collected.items()))
        return Flow(jobs, output=summaries, name=f"{self.name} {formula}")

    def make_batch(self, compositions: list[str | Composition]) -> Flow:
        """One flow for several compositions, batched as ``batch_stages`` says; output: summaries by formula."""
        jobs, collected = self._jobs(compositions)
        return Flow(jobs, output=collected, name=f"{self.name} {' '.join(collected)}")

    def _jobs(self, compositions: list[str | Composition]) -> tuple[list, dict[str, Any]]:
        """The jobs for ``compositions`` and, per formula, the output of its collected summaries."""
        compositions = [parse_composition(c) for c in compositions]
        formulas = [c.reduced_formula for c in compositions]
        if len(set(formulas)) < len(formulas):
            raise InputError(f"a batch lists a composition twice: {', '.join(formulas)}")
        for composition in compositions:
            self.validate(composition)
        packs = [self.cell.make(c) for c in compositions]
        melts, melt_outputs = self._stages(
            [
                self._target(pack.output, self.melt_temperature, f)
                for pack, f in zip(packs, formulas)
            ]
        )
        quenches, quench_outputs = self._stages(
            [
                self._target(melt["production"].final_state.structure, t, f)
                for melt, f in zip(melt_outputs, formulas)
                for t in self.quench_temperatures
            ]
        )
        collected = {}
        for k, formula in enumerate(formulas):
            n = len(self.quench_temperatures)
            stage_outputs = [melt_outputs[k], *quench_outputs[k * n : (k + 1) * n]]
            collected[formula] = collect([o["summary"] for o in stage_outputs], self.results_dir)
            collected[formula].name = COLLECT_JOB
        return [*packs, *melts, *quenches, *collected.values()], {
            f: c.output for f, c in collected.items()
        }

    def _target(self, structure, temperature: float, formula: str) -> Target:
        run_dir = (
            None
            if self.run_dir is None
            else str(Path(self.run_dir) / formula / f"{temperature:.0f}K")
        )
        return Target(structure, temperature, formula, run_dir)

    def _stages(self, targets: list[Target]) -> tuple[list[Flow], list[dict[str, Any]]]:
        """Stage flows for ``targets`` (one for all when batching) and each target's stage output, in order."""
        batch = self.batch_stages if self.batch_stages is not None else self.engine.load().batches
        groups = [targets] if batch else [[target] for target in targets]
        flows = [
            self.stage.make(group, self.engine, self.seed, self.results_dir)
            for group in groups
            if group
        ]
        return flows, [output for flow in flows for output in flow.output]


def demo_maker(**overrides: Any) -> MeltQuenchMaker:
    """Small and short: 32 atoms, 0.3 ps search/check runs, 0.6 ps production, 5000 K and 2000 K."""
    md = MDSettings(
        thermostat_time_fs=20.0
    )  # short runs need a thermostat much faster than the run
    stage = TemperatureStageMaker(
        volume_search=VolumeSearchMaker(duration_ps=0.3, md=md),
        check=CheckRunMaker(duration_ps=0.3, md=md, pressure_tolerance_GPa=1.0, max_attempts=2),
        production=ProductionMaker(duration_ps=0.6, chunk_ps=0.2, md=md),
    )
    return MeltQuenchMaker(
        **{
            "quench_temperatures": (2000.0,),
            "cell": RandomCellMaker(atoms=32),
            "stage": stage,
            **overrides,
        }
    )


PRESETS = {"paper": MeltQuenchMaker, "demo": demo_maker}
