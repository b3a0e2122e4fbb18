"""Per-trajectory analysis (D per species, conductivity, RDF shells) and the Arrhenius block.

This is what ``amorph analyze`` prints and what the flows can store: ``TrajectoryReport.as_dict()``
and ``summarize(...)`` return JSON-ready dictionaries. Conductivities need ionic charges, which the
analysis does not guess (see ``amorph.structure.composition.guess_charges``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from amorph.analysis.arrhenius import (
    ArrheniusFit,
    ArrheniusPoints,
    fits_by_species,
    nernst_einstein,
    points_by_species,
)
from amorph.analysis.diffusion import Diffusivity, diffusivities, frame_interval_fs
from amorph.analysis.rdf import DEFAULT_BIN_WIDTH, DEFAULT_R_MAX, RDF, radial_distribution
from amorph.trajectory import Trajectory

logger = logging.getLogger(__name__)


@dataclass
class TrajectoryReport:
    """One trajectory's analysis; ``conductivity[s] = (sigma_NE, error)`` in mS/cm.

    Conductivities are there for the species with a charge in ``charges``, when T is known.
    """

    source: str
    n_frames: int
    n_atoms: int
    frame_interval_fs: float
    temperature_K: float | None
    volume_A3: float
    diffusion: dict[str, Diffusivity]
    conductivity: dict[str, tuple[float, float]] = field(default_factory=dict)
    charges: dict[str, float] = field(default_factory=dict)
    rdf: RDF | None = None

    @property
    def duration_ps(self) -> float:
        """Time (ps) from the first frame to the last."""
        return (self.n_frames - 1) * self.frame_interval_fs / 1000

    def as_dict(self) -> dict:
        """JSON-ready: per species D (with charge and conductivity where known), RDF shells."""
        species = []
        for symbol, d in self.diffusion.items():
            row = d.as_dict()
            if symbol in self.conductivity:
                sigma, error = self.conductivity[symbol]
                row |= {
                    "charge": self.charges[symbol],
                    "conductivity_mS_cm": sigma,
                    "conductivity_sigma_mS_cm": error,
                }
            species.append(row)
        return {
            "source": self.source,
            "n_frames": self.n_frames,
            "n_atoms": self.n_atoms,
            "frame_interval_fs": self.frame_interval_fs,
            "duration_ps": self.duration_ps,
            "temperature_K": self.temperature_K,
            "volume_A3": self.volume_A3,
            "species": species,
            "rdf": [] if self.rdf is None else self.rdf.shells(),
        }


def analyze_trajectory(
    traj: Trajectory,
    *,
    species: Sequence[str] | None = None,
    charges: Mapping[str, float] | None = None,
    fit_start_ps: float | None = None,
    fit_end_ps: float | None = None,
    rdf_r_max: float | None = DEFAULT_R_MAX,
    rdf_bin_width: float = DEFAULT_BIN_WIDTH,
    rdf_stride: int | None = None,
    method: str = "ols",
) -> TrajectoryReport:
    """D (with sigma) per species, Nernst–Einstein conductivities and RDF shells.

    Parameters
    ----------
    traj
        The trajectory; its temperature is ``traj.metadata["temperature_K"]`` (no conductivity
        without it).
    species
        Species to compute D for (default: all).
    charges
        Ionic charge (units of e) per species; the Nernst–Einstein conductivity is computed only
        for the species given here (none by default).
    fit_start_ps, fit_end_ps
        MSD fit window (default: chosen from the MSD, see ``amorph.analysis.diffusion``).
    rdf_r_max, rdf_bin_width, rdf_stride
        RDF range, bin width (Å) and frame stride; ``rdf_r_max=None`` skips the RDF.
    method
        MSD fit, ``"ols"`` or ``"gls"``.
    """
    results = diffusivities(
        traj, list(species) if species else None, fit_start_ps, fit_end_ps, method=method
    )
    temperature = traj.metadata.get("temperature_K")
    volume = float(traj.volumes.mean())
    rdf = (
        None
        if rdf_r_max is None
        else radial_distribution(traj, rdf_r_max, rdf_bin_width, rdf_stride)
    )
    conductivity = {}
    if temperature is not None:
        for symbol, d in results.items():
            if symbol in (charges or {}):
                scale = nernst_einstein(1.0, d.n_atoms, volume, float(temperature), charges[symbol])
                conductivity[symbol] = (d.D_cm2_s * scale, d.D_sigma_cm2_s * scale)
    return TrajectoryReport(
        source=str(traj.metadata.get("source", "trajectory")),
        n_frames=traj.n_frames,
        n_atoms=traj.n_atoms,
        frame_interval_fs=frame_interval_fs(traj),
        temperature_K=None if temperature is None else float(temperature),
        volume_A3=volume,
        diffusion=results,
        conductivity=conductivity,
        charges={s: float(z) for s, z in (charges or {}).items() if s in conductivity},
        rdf=rdf,
    )


def arrhenius_by_species(reports: Sequence[TrajectoryReport]) -> dict[str, ArrheniusFit]:
    """Arrhenius fit per species over reports at two or more distinct, known temperatures."""
    if len(reports) < 2:
        return {}
    if any(r.temperature_K is None for r in reports):
        logger.warning(
            "no Arrhenius fit: the temperature of some trajectories is unknown (--temperature)"
        )
        return {}
    if len({r.temperature_K for r in reports}) < 2:
        logger.warning("no Arrhenius fit: all trajectories are at the same temperature")
        return {}
    return fits_by_species(arrhenius_points(reports))


def arrhenius_points(reports: Sequence[TrajectoryReport]) -> dict[str, ArrheniusPoints]:
    """D(T) points per species over the reports, with their ``diffusive`` flags."""
    return points_by_species(
        (symbol, r.temperature_K, d.D_cm2_s, d.D_sigma_cm2_s, d.diffusive)
        for r in reports
        for symbol, d in r.diffusion.items()
    )


def summarize(
    reports: Sequence[TrajectoryReport], fits: Mapping[str, ArrheniusFit] | None = None
) -> dict:
    """JSON-ready summary of several trajectories, with the Arrhenius block when it applies."""
    fits = arrhenius_by_species(reports) if fits is None else fits
    return {
        "trajectories": [r.as_dict() for r in reports],
        "arrhenius": [{"species": s} | fit.as_dict() for s, fit in fits.items()],
    }


def format_or_dash(value: float | None, spec: str) -> str:
    """``value`` formatted with the format ``spec``, or "-" when it is None or NaN."""
    return (
        "-"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else format(value, spec)
    )
