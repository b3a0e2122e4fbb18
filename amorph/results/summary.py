"""What a temperature stage leaves for people: one folder of files and a JSON-able summary.

Layout, per composition and temperature (written atomically: a folder is complete or absent)::

    <results_dir>/<formula>/<T>K/
        summary.json      the numbers (also the ``amorph run --json`` entry)
        structure.cif, POSCAR, structure.json   the final production frame
        trajectory.npz    the production trajectory (:class:`amorph.trajectory.Trajectory`)
        eos.json, eos.png the P(V) points and fit of the volume search
        rdf.png, msd.png  partial g(r) and MSDs (fit window marked) of the production run
    <results_dir>/<formula>/arrhenius.json, arrhenius.png   D(T) fits over the quench temperatures
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pymatgen.core import Structure

from amorph.analysis import TrajectoryReport, analyze_trajectory
from amorph.analysis.arrhenius import fits_by_species, points_by_species
from amorph.analysis.plots import plot_arrhenius, plot_msd, plot_rdf
from amorph.constants import AMU_A3_TO_G_CM3
from amorph.eos import plot_eos
from amorph.errors import AmorphError
from amorph.files import write_text_atomic
from amorph.md.engine import EngineSpec, MDResult
from amorph.trajectory import Trajectory

if TYPE_CHECKING:
    from amorph.flows.volume import CheckResult, VolumeSearchResult

logger = logging.getLogger(__name__)


def density_g_cm3(structure: Structure) -> float:
    return float(structure.composition.weight) * AMU_A3_TO_G_CM3 / structure.volume


def analyze_production(production: MDResult) -> TrajectoryReport | None:
    """Diffusivities, conductivities and RDF shells of a production run; None if it is too short."""
    try:
        return analyze_trajectory(Trajectory.load(production.trajectory_path))
    except AmorphError as exc:
        logger.warning("no diffusivity for %s: %s", production.trajectory_path, exc)
        return None


def temperature_summary(
    formula: str,
    temperature: float,
    engine: EngineSpec,
    search: VolumeSearchResult,
    check: CheckResult,
    production: MDResult,
    report: TrajectoryReport | None,
) -> dict[str, Any]:
    """The numbers of one temperature stage as a plain dict."""
    analysis = report.as_dict() if report is not None else {"species": [], "rdf": []}
    stats = production.stats
    structure = production.final_state.structure
    return {
        "formula": formula,
        "temperature_K": float(temperature),
        "n_atoms": len(structure),
        "volume_A3": float(structure.volume),
        "volume_per_atom_A3": float(structure.volume / len(structure)),
        "density_g_cm3": density_g_cm3(structure),
        "converged": bool(check.converged),
        "mean_temperature_K": stats.temperature_K,
        "pressure_GPa": stats.pressure_GPa,
        "pressure_sem_GPa": stats.pressure_sem_GPa,
        "virial_pressure_GPa": stats.virial_pressure_GPa,
        "kinetic_pressure_GPa": stats.kinetic_pressure_GPa,
        "energy_eV_per_atom": stats.energy_eV_per_atom,
        "pressure_convention": stats.pressure_convention,
        "engine": engine.kind if engine.kind != "ase" else engine.model,
        "engine_model": engine.model,
        "time_step_fs": production.time_step_fs,
        "production_steps": production.steps,
        "eos": {
            "volumes_A3": [p.volume_A3 for p in search.points],
            "pressures_GPa": [p.pressure_GPa for p in search.points],
            "pressure_sems_GPa": [p.pressure_sem_GPa for p in search.points],
            "fit": dataclasses.asdict(search.fit),
            "zero_pressure_volume_A3": search.volume_A3,
            "extra_volumes": search.extra_volumes,
        },
        "check": {
            "attempts": check.attempts,
            "pressures_GPa": [s.pressure_GPa for s in check.history],
            "energy_drifts_eV_per_atom": [s.energy_drift_eV_per_atom for s in check.history],
        },
        "diffusivity": {row["species"]: row for row in analysis["species"]},
        "rdf": analysis["rdf"],
        "trajectory": production.trajectory_path,
    }


def write_temperature_results(
    results_dir: str | Path,
    summary: dict[str, Any],
    search: VolumeSearchResult,
    production: MDResult,
    report: TrajectoryReport | None,
) -> dict[str, Any]:
    """Write the folder of one temperature stage atomically; return the summary with its final paths."""
    target = Path(results_dir) / summary["formula"] / f"{summary['temperature_K']:.0f}K"
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        structure = production.final_state.structure
        structure.to(filename=str(staging / "structure.cif"))
        structure.to(filename=str(staging / "POSCAR"), fmt="poscar")
        (staging / "structure.json").write_text(json.dumps(structure.as_dict()))
        _link_or_copy(Path(production.trajectory_path), staging / "trajectory.npz")
        (staging / "eos.json").write_text(json.dumps(summary["eos"], indent=1))
        plot_eos(
            search.points,
            search.fit,
            search.volume_A3,
            staging / "eos.png",
            title=f"{summary['formula']} {summary['temperature_K']:.0f} K",
        )
        if report is not None:
            plot_msd(
                report.diffusion, staging / "msd.png", title=f"{summary['temperature_K']:.0f} K"
            )
            if report.rdf is not None:
                plot_rdf(report.rdf, staging / "rdf.png", title=f"{summary['temperature_K']:.0f} K")
        summary = {
            **summary,
            "trajectory": str((target / "trajectory.npz").resolve()),
            "results_dir": str(target.resolve()),
        }
        (staging / "summary.json").write_text(json.dumps(summary, indent=1))
        _replace_dir(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return summary


def arrhenius_summary(
    summaries: list[dict[str, Any]], results_dir: str | Path | None
) -> dict[str, Any]:
    """Arrhenius fits per species over the temperatures below the melt (the hottest one).

    Needs two or more such temperatures with a diffusivity; writes ``arrhenius.json`` and
    ``arrhenius.png`` beside the temperature folders when ``results_dir`` is given.
    """
    quenched = sorted(summaries, key=lambda s: s["temperature_K"])[:-1]
    points = points_by_species(
        (species, s["temperature_K"], d["D_cm2_s"], d["D_sigma_cm2_s"])
        for s in quenched
        for species, d in s.get("diffusivity", {}).items()
    )
    fits = fits_by_species(points)
    points = {species: p for species, p in points.items() if species in fits}
    block = {species: fit.as_dict() for species, fit in fits.items()}
    if results_dir is not None and block:
        folder = Path(results_dir) / summaries[0]["formula"]
        write_text_atomic(folder / "arrhenius.json", json.dumps(block, indent=1))
        plot_arrhenius(fits, points, folder / "arrhenius.png")
    return block


def _link_or_copy(source: Path, destination: Path) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def _replace_dir(staging: Path, target: Path) -> None:
    """Move ``staging`` onto ``target``; an old ``target`` is removed only after the new one is in place."""
    if not target.exists():
        os.replace(staging, target)
        return
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)
