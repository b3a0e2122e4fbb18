"""The melt-quench flow: random cell → melt (volume search, check, production) → quench to each lower T."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobflow import Flow, Maker, job
from pymatgen.core import Composition, Structure

from amorph.composition import parse_composition
from amorph.engine import EngineSpec, MDResult, MDSettings
from amorph.errors import InputError
from amorph.flows.packing import RandomCellMaker
from amorph.flows.production import ProductionMaker
from amorph.flows.volume import CheckResult, CheckRunMaker, VolumeSearchMaker, VolumeSearchResult
from amorph.results import (
    analyze_production,
    arrhenius_summary,
    temperature_summary,
    write_temperature_results,
)


@dataclass
class TemperatureStageMaker(Maker):
    """Volume search, check run and production at one temperature, then the stage's results."""

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
        structure: Structure,
        temperature: float,
        engine: EngineSpec,
        formula: str,
        seed: int = 1,
        results_dir: str | None = None,
        run_dir: str | None = None,
    ) -> Flow:
        """The stage's flow; MD files go to ``run_dir`` (else each job's working directory)."""
        search = self.volume_search.make(structure, temperature, engine, seed, run_dir)
        check = self.check.make(search.output, temperature, engine, seed, run_dir)
        production = self.production.make(check.output.final_state, temperature, engine, seed, run_dir)
        production.name = f"production {temperature:.0f} K"
        summary = summarize_temperature(formula, temperature, engine, search.output, check.output,
                                        production.output, results_dir)
        summary.name = f"results {temperature:.0f} K"
        return Flow([search, check, production, summary], output={"summary": summary.output,
                    "production": production.output}, name=f"{formula} {temperature:.0f} K")


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
def collect(summaries: list[dict[str, Any]], results_dir: str | None = None) -> list[dict[str, Any]]:
    """All temperature summaries of a composition, hottest first, each with the Arrhenius fits."""
    arrhenius = arrhenius_summary(summaries, results_dir)
    return [{**s, "arrhenius": arrhenius} for s in sorted(summaries, key=lambda s: -s["temperature_K"])]


@dataclass
class MeltQuenchMaker(Maker):
    """The paper's protocol for one composition (Zheng et al., npj Comput. Mater. 2024).

    Pack ``cell.atoms`` atoms at random, melt at ``melt_temperature`` (volume search, check run,
    production), then quench the last melt frame instantly to each of ``quench_temperatures`` (fresh
    velocities) and repeat the stage there. Defaults: 100 atoms, 2 fs steps (0.5 fs with H), 4 ps
    volume-search and check runs, 20 ps production, 5000 K melt, 2500/2000/1500/1000 K quenches, CHGNet.
    """

    name: str = "melt-quench"
    melt_temperature: float = 5000.0
    quench_temperatures: tuple[float, ...] = (2500.0, 2000.0, 1500.0, 1000.0)
    engine: EngineSpec = field(default_factory=EngineSpec)
    cell: RandomCellMaker = field(default_factory=RandomCellMaker)
    stage: TemperatureStageMaker = field(default_factory=TemperatureStageMaker)
    seed: int = 1
    results_dir: str | None = None
    run_dir: str | None = None  # MD files in <run_dir>/<formula>/<T>K, so reruns resume; else job folders

    def validate(self, composition: Composition) -> None:
        """Check every setting before any job runs; raise ``InputError`` with the first problem."""
        for temperature in (self.melt_temperature, *self.quench_temperatures):
            if not temperature > 0:
                raise InputError(f"temperature must be positive, got {temperature:g} K")
        hotter = [t for t in self.quench_temperatures if t >= self.melt_temperature]
        if hotter:
            raise InputError(f"quench temperature {hotter[0]:g} K is not below the melt ({self.melt_temperature:g} K)")
        self.cell.validate(composition)
        self.stage.validate()
        self.engine.load().check_elements([el.symbol for el in composition.elements])

    def make(self, composition: str | Composition) -> Flow:
        composition = parse_composition(composition)
        self.validate(composition)
        formula = composition.reduced_formula
        pack = self.cell.make(composition)

        def stage(start, temperature: float) -> Flow:
            run_dir = None if self.run_dir is None else str(Path(self.run_dir) / formula / f"{temperature:.0f}K")
            return self.stage.make(start, temperature, self.engine, formula, self.seed, self.results_dir, run_dir)

        melt = stage(pack.output, self.melt_temperature)
        quenched = melt.output["production"].final_state.structure
        stages = [melt, *(stage(quenched, t) for t in self.quench_temperatures)]
        summaries = collect([stage.output["summary"] for stage in stages], self.results_dir)
        summaries.name = "collect"
        return Flow([pack, *stages, summaries], output=summaries.output, name=f"{self.name} {formula}")


def demo_maker(**overrides: Any) -> MeltQuenchMaker:
    """Small and short: 32 atoms, 0.3 ps search/check runs, 0.6 ps production, 5000 K and 2000 K."""
    md = MDSettings(thermostat_time_fs=20.0)  # short runs need a thermostat much faster than the run
    stage = TemperatureStageMaker(
        volume_search=VolumeSearchMaker(duration_ps=0.3, md=md),
        check=CheckRunMaker(duration_ps=0.3, md=md, pressure_tolerance_GPa=1.0, max_attempts=2),
        production=ProductionMaker(duration_ps=0.6, chunk_ps=0.2, md=md),
    )
    return MeltQuenchMaker(quench_temperatures=(2000.0,), cell=RandomCellMaker(atoms=32), stage=stage,
                           **overrides)


PRESETS = {"paper": MeltQuenchMaker, "demo": demo_maker}
