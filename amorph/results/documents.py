"""The store's documents (:mod:`amorph.results.schemas`) built from MD results and their analysis.

:func:`stage_document` turns a temperature stage (volume search, check runs, production run and the
production's analysis) into a :class:`StageDoc`; :func:`composition_document` fits the Arrhenius law
over a composition's quench temperatures into a :class:`CompositionDoc`. :func:`rdf_from_document`
and :func:`diffusivity_curves` give the analysis objects back for plots of an exported folder.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from amorph.analysis import TrajectoryReport, analyze_trajectory
from amorph.analysis.arrhenius import (
    ArrheniusFit,
    ArrheniusPoints,
    fits_by_species,
    points_by_species,
)
from amorph.analysis.rdf import RDF
from amorph.constants import AMU_A3_TO_G_CM3, EV_A3_TO_GPA
from amorph.errors import AmorphError
from amorph.results.schemas import (
    ArrheniusDoc,
    AuditDoc,
    BasisStressDoc,
    CheckDoc,
    CheckRunDoc,
    CompositionDoc,
    DiffusivityDoc,
    EOSDoc,
    EOSFitDoc,
    EOSPointDoc,
    MSDCurve,
    RDFDoc,
    StageDoc,
    TrajectoryRef,
)

if TYPE_CHECKING:
    from pymatgen.core import Structure

    from amorph.analysis.diffusion import Diffusivity
    from amorph.md.engine import EngineSpec, MDResult, SinglePoint
    from amorph.trajectory import Trajectory
    from amorph.volume.results import CheckResult, VolumeSearchResult

logger = logging.getLogger(__name__)

MSD_CURVE_POINTS = 200  # log-spaced lags kept per species for plots


def density_g_cm3(structure: Structure) -> float:
    """Mass density of ``structure`` in g/cm³."""
    return float(structure.composition.weight) * AMU_A3_TO_G_CM3 / structure.volume


def analyze_production(
    trajectory: Trajectory, charges: dict[str, float] | None = None
) -> TrajectoryReport | None:
    """D, conductivities (species with a charge) and RDFs; None if the run is too short."""
    try:
        return analyze_trajectory(trajectory, charges=charges)
    except AmorphError as exc:
        logger.warning("no diffusivity for %s: %s", trajectory.metadata.get("label", "run"), exc)
        return None


def stage_document(
    formula: str,
    temperature: float,
    engine: EngineSpec,
    search: VolumeSearchResult,
    check: CheckResult,
    production: MDResult,
    trajectory: TrajectoryRef,
    report: TrajectoryReport | None,
    engine_settings: dict[str, Any] | None = None,
) -> StageDoc:
    """The :class:`StageDoc` of one composition at one temperature.

    Parameters
    ----------
    formula, temperature, engine
        The composition, the stage temperature (K) and the engine that ran it.
    search, check, production
        Results of the stage's volume search, check run and production run.
    trajectory
        Where the production trajectory is stored.
    report
        Analysis of the production run; None leaves out diffusivities, MSDs and RDFs.
    engine_settings
        What decided the engine's numbers (:meth:`~amorph.md.engine.Engine.describe`).
    """
    stats = production.stats.corrected(search.basis)
    structure = production.final_state.structure
    diffusivity, msd = {}, {}
    if report is not None:
        for row in report.as_dict()["species"]:
            diffusivity[row["species"]] = DiffusivityDoc.model_validate(row)
        msd = {species: msd_curve(d) for species, d in report.diffusion.items()}
    return StageDoc(
        formula=formula,
        temperature_K=float(temperature),
        n_atoms=len(structure),
        volume_A3=float(structure.volume),
        volume_per_atom_A3=float(structure.volume / len(structure)),
        density_g_cm3=density_g_cm3(structure),
        converged=bool(check.converged),
        mean_temperature_K=stats.temperature_K,
        pressure_GPa=stats.pressure_GPa,
        pressure_sem_GPa=stats.pressure_sem_GPa,
        virial_pressure_GPa=stats.virial_pressure_GPa,
        kinetic_pressure_GPa=stats.kinetic_pressure_GPa,
        energy_eV_per_atom=stats.energy_eV_per_atom,
        pressure_convention=stats.pressure_convention,
        engine=engine.label,
        engine_model=engine.model,
        engine_settings=engine_settings or {},
        time_step_fs=production.time_step_fs,
        production_steps=production.steps,
        basis=None
        if search.basis is None
        else BasisStressDoc(**search.basis.as_dict(), correction_GPa=search.basis.correction_GPa),
        eos=EOSDoc(
            points=[EOSPointDoc.model_validate(p.as_dict()) for p in search.points],
            fit=EOSFitDoc.model_validate(search.fit.as_dict()),
            zero_pressure_volume_A3=search.volume_A3,
            extra_volumes=search.extra_volumes,
        ),
        check=CheckDoc(
            converged=bool(check.converged),
            attempts=check.attempts,
            runs=[
                CheckRunDoc.model_validate({**s.as_dict(), "decision": decision})
                for s, decision in zip(check.history, check.decisions, strict=True)
            ],
        ),
        diffusivity=diffusivity,
        msd=msd,
        rdf=None if report is None or report.rdf is None else rdf_document(report.rdf),
        structure=structure,
        trajectory=trajectory,
    )


def audit_document(
    formula: str,
    temperature: float,
    stage_uuid: str,
    engine: EngineSpec,
    bulk_modulus_GPa: float,
    indices: list[int],
    dft: list[SinglePoint],
    own: list[SinglePoint],
    dft_engine: EngineSpec,
    dft_settings: dict[str, Any],
    tolerance_GPa: float,
) -> AuditDoc:
    """The :class:`AuditDoc` of DFT's single points ``dft`` and the stage engine's ``own`` on the
    same frames (production frames ``indices``) of the stage of ``stage_uuid``.

    ``bulk_modulus_GPa`` (the stage's EOS) turns the mean pressure difference into a volume shift;
    a difference beyond ``tolerance_GPa`` by more than its 95 % interval is a disagreement.
    """
    from amorph.md.engine import PointComparison

    compared = PointComparison.of(own, dft)
    difference = compared.pressure
    beyond = abs(difference.mean) - difference.t_factor(0.95) * difference.sem
    return AuditDoc(
        formula=formula,
        temperature_K=float(temperature),
        stage_uuid=stage_uuid,
        engine=engine.label,
        engine_model=engine.model,
        dft_engine=dft_engine.label,
        dft_settings=dft_settings,
        n_atoms=len(own[0].forces),
        frame_indices=list(indices),
        dft_pressures_GPa=[p.virial_pressure_GPa for p in dft],
        engine_pressures_GPa=[p.virial_pressure_GPa for p in own],
        dft_energies_eV=[p.energy_eV for p in dft],
        engine_energies_eV=[p.energy_eV for p in own],
        dft_forces_eV_A=[p.forces.tolist() for p in dft],
        dft_stresses_GPa=[(p.stress * EV_A3_TO_GPA).tolist() for p in dft],
        pressure_difference_GPa=difference.mean,
        pressure_difference_sem_GPa=difference.sem,
        force_rmse_eV_A=compared.force_rmse_eV_A,
        force_mae_eV_A=compared.force_mae_eV_A,
        dft_force_rms_eV_A=compared.reference_force_rms_eV_A,
        energy_offset_eV_per_atom=compared.energy_offset_eV_per_atom,
        energy_spread_eV_per_atom=compared.energy_spread_eV_per_atom,
        bulk_modulus_GPa=bulk_modulus_GPa,
        volume_shift=-difference.mean / bulk_modulus_GPa if bulk_modulus_GPa > 0 else np.nan,
        tolerance_GPa=tolerance_GPa,
        disagreement=bool(beyond > tolerance_GPa),
    )


def composition_document(
    formula: str, engine: EngineSpec, stages: list[StageDoc], stage_uuids: list[str]
) -> CompositionDoc:
    """A composition's :class:`CompositionDoc`, stages hottest first, with the Arrhenius fits of
    :func:`arrhenius_fits`; ``stage_uuids`` are the uuids of the jobs that made ``stages``."""
    order = sorted(range(len(stages)), key=lambda i: -stages[i].temperature_K)
    fits, _ = arrhenius_fits(stages)
    return CompositionDoc(
        formula=formula,
        engine=engine.label,
        engine_model=engine.model,
        temperatures_K=[stages[i].temperature_K for i in order],
        stage_uuids=[stage_uuids[i] for i in order],
        arrhenius={
            species: ArrheniusDoc(species=species, **fit.as_dict()) for species, fit in fits.items()
        },
    )


def arrhenius_fits(
    stages: list[StageDoc],
) -> tuple[dict[str, ArrheniusFit], dict[str, ArrheniusPoints]]:
    """Arrhenius fits per species over the temperatures below the melt (the hottest stage), and
    their points; temperatures whose MSD was not diffusive are left out of the fits."""
    quenched = sorted(stages, key=lambda s: -s.temperature_K)[1:]
    points = points_by_species(
        (species, s.temperature_K, d.D_cm2_s, d.D_sigma_cm2_s, d.diffusive is not False)
        for s in quenched
        for species, d in s.diffusivity.items()
    )
    return fits_by_species(points), points


def msd_curve(diffusivity: Diffusivity, points: int = MSD_CURVE_POINTS) -> MSDCurve:
    """The MSD of ``diffusivity`` at about ``points`` log-spaced lags (lag 0 left out)."""
    msd = diffusivity.msd
    lags = np.unique(np.geomspace(1, len(msd.msd_A2) - 1, points).astype(int))
    return MSDCurve(lag_fs=msd.lag_fs[lags].tolist(), msd_A2=msd.msd_A2[lags].tolist())


def rdf_document(rdf: RDF) -> RDFDoc:
    """The RDF as arrays for the store."""
    return RDFDoc(
        edges_A=rdf.edges.tolist(),
        pairs=[f"{a}-{b}" for a, b in rdf.partials],
        g=[g.tolist() for g in rdf.partials.values()],
        counts=[rdf.counts[pair].tolist() for pair in rdf.partials],
        total=rdf.total.tolist(),
        n_atoms=dict(rdf.n_atoms),
        n_frames=rdf.n_frames,
        shells=rdf.shells(),
    )


def rdf_from_document(doc: RDFDoc) -> RDF:
    """The :class:`~amorph.analysis.rdf.RDF` a document was made from (for plots and shells)."""
    pairs = [(a, b) for a, b in (name.split("-") for name in doc.pairs)]
    counts = {}
    for (a, b), c in zip(pairs, doc.counts, strict=True):
        counts[(a, b)] = counts[(b, a)] = np.asarray(c)
    return RDF(
        edges=np.asarray(doc.edges_A),
        total=np.asarray(doc.total),
        partials={pair: np.asarray(g) for pair, g in zip(pairs, doc.g, strict=True)},
        counts=counts,
        n_atoms=dict(doc.n_atoms),
        n_frames=doc.n_frames,
    )
