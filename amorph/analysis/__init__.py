"""Trajectory analysis: readers, RDF, MSD and diffusivity with calibrated errors, Arrhenius fits.

Needs only numpy and scipy at import time (ASE, pymatgen and matplotlib are imported where used), so
it works without the MD stack (torch, jobflow). Typical use::

    from amorph.analysis import diffusivities, radial_distribution, read_trajectory

    traj = read_trajectory("XDATCAR.gz", time_step_fs=2.0, temperature_K=1500)
    d = diffusivities(traj, ["Li"])["Li"]  # d.D_cm2_s, d.D_sigma_cm2_s, d.fit_start_ps, ...
    g = radial_distribution(traj)  # g.first_peak("Li", "O"), g.coordination_number("Li", "O")

``d.diffusive`` says whether the MSD became diffusive; ``compare(stages, read_reference(files),
formula)`` checks a composition's stages against AIMD volumes, diffusivities and partial RDFs.
"""

from amorph.analysis.arrhenius import ArrheniusFit, arrhenius_fit, nernst_einstein
from amorph.analysis.compare import Comparison, Reference, compare, read_reference
from amorph.analysis.diffusion import (
    MSD,
    Diffusivity,
    diffusivities,
    fit_diffusivity,
    fit_window,
    mean_squared_displacement,
)
from amorph.analysis.rdf import RDF, pooled_r2, radial_distribution, rdf_r2
from amorph.analysis.report import (
    TrajectoryReport,
    analyze_trajectory,
    arrhenius_by_species,
    summarize,
)
from amorph.trajectory.formats import from_ase, from_pymatgen, read_trajectory, unwrap_fractional

__all__ = [
    "MSD",
    "RDF",
    "ArrheniusFit",
    "Comparison",
    "Diffusivity",
    "Reference",
    "TrajectoryReport",
    "analyze_trajectory",
    "arrhenius_by_species",
    "arrhenius_fit",
    "compare",
    "diffusivities",
    "fit_diffusivity",
    "fit_window",
    "from_ase",
    "from_pymatgen",
    "mean_squared_displacement",
    "nernst_einstein",
    "pooled_r2",
    "radial_distribution",
    "rdf_r2",
    "read_reference",
    "read_trajectory",
    "summarize",
    "unwrap_fractional",
]
