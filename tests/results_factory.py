"""Results in a real store without MD: stage and composition documents written by real jobflow jobs.

For tests of the readers (db, features, publish) that need many or unusual results quickly.
"""

from __future__ import annotations

from pathlib import Path

from jobflow import Flow, JobStore, job, run_locally
from pymatgen.core import Structure

from amorph.md.engine import EngineSpec
from amorph.results.documents import composition_document, density_g_cm3
from amorph.results.schemas import (
    ArrheniusDoc,
    CheckDoc,
    DiffusivityDoc,
    EOSDoc,
    EOSFitDoc,
    EOSPointDoc,
    StageDoc,
    TrajectoryRef,
)
from amorph.trajectory import Trajectory


def stage_doc(
    structure: Structure,
    temperature: float,
    *,
    trajectory: Path | None = None,
    diffusivity: dict[str, tuple[float, float]] | None = None,
    engine: str = "chgnet",
    converged: bool = True,
    **fields,
) -> StageDoc:
    """A plausible stage document around ``structure`` (``diffusivity``: species → (D, σ))."""
    n = len(structure)
    frames = Trajectory.load(trajectory).n_frames if trajectory else 1
    values = {
        "formula": structure.composition.reduced_formula,
        "temperature_K": temperature,
        "n_atoms": n,
        "volume_A3": structure.volume,
        "volume_per_atom_A3": structure.volume / n,
        "density_g_cm3": density_g_cm3(structure),
        "converged": converged,
        "mean_temperature_K": temperature + 4,
        "pressure_GPa": 0.02,
        "pressure_sem_GPa": 0.05,
        "virial_pressure_GPa": 0.02,
        "kinetic_pressure_GPa": 1.0,
        "energy_eV_per_atom": -4.1,
        "pressure_convention": "virial",
        "engine": engine,
        "engine_model": "0.3.0",
        "time_step_fs": 2.0,
        "production_steps": 5000,
        "eos": EOSDoc(
            points=[
                EOSPointDoc(
                    volume_A3=structure.volume,
                    pressure_GPa=0.0,
                    pressure_sem_GPa=0.1,
                    temperature_K=temperature,
                    energy_eV_per_atom=-4.1,
                )
            ],
            fit=EOSFitDoc(
                kind="linear",
                v0_A3=structure.volume,
                b0_GPa=50.0,
                b0_prime=4.0,
                rms_residual_GPa=0.0,
            ),
            zero_pressure_volume_A3=structure.volume,
            extra_volumes=0,
        ),
        "check": CheckDoc(converged=converged, attempts=1, runs=[]),
        "diffusivity": {
            s: DiffusivityDoc(
                species=s,
                n_atoms=n,
                D_cm2_s=d,
                D_sigma_cm2_s=sigma,
                fit_start_ps=1.0,
                fit_end_ps=5.0,
                msd_exponent=1.0,
                msd_reached_A2=30.0,
                diffusive=True,
            )
            for s, (d, sigma) in (diffusivity or {}).items()
        },
        "structure": structure,
        "trajectory": TrajectoryRef(
            path=None if trajectory is None else str(trajectory),
            n_frames=frames,
            frame_interval_fs=10.0,
        ),
    }
    return StageDoc(**{**values, **fields})


@job
def _stage(doc: StageDoc) -> StageDoc:
    return doc


@job
def _composition(formula, engine, stages, uuids, arrhenius):
    document = composition_document(formula, engine, stages, uuids)
    if arrhenius is not None:
        document.arrhenius = {
            s: ArrheniusDoc(species=s, **{**ARRHENIUS, **fit}) for s, fit in arrhenius.items()
        }
    return document


ARRHENIUS = {"D300K_cm2_s": 1e-9, "D300K_sigma_cm2_s": 1e-10, "temperatures_K": []}


def add_composition(
    store: JobStore, stages: list[StageDoc], workdir: Path, arrhenius: dict | None = None
) -> None:
    """Write ``stages`` (one composition and engine) and their composition document into ``store``
    through jobflow, as a melt-quench flow would; ``arrhenius`` ({species: fields of
    ``ArrheniusDoc``}) replaces the fits computed from the stages."""
    jobs = [_stage(doc) for doc in stages]
    engine = (
        EngineSpec("ase", stages[0].engine)
        if ":" in stages[0].engine
        else EngineSpec(stages[0].engine)
    )
    collect = _composition(
        stages[0].formula, engine, [j.output for j in jobs], [j.uuid for j in jobs], arrhenius
    )
    workdir.mkdir(parents=True, exist_ok=True)
    run_locally(Flow([*jobs, collect]), store=store, root_dir=workdir, log=False,
                raise_immediately=True)  # fmt: skip
