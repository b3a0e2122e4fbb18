"""Structural and compositional descriptors of Li-containing (amorphous) structures.

The feature set is that of Zheng et al., npj Comput. Mater. (2024), Table 1, which extends Sendek
et al., Energy Environ. Sci. 10, 306 (2017). Definitions, cutoffs, radii and the anion rule are
documented in :mod:`amorph.descriptors.structural`, :mod:`amorph.descriptors.compositional` and
:mod:`amorph.descriptors.elements`; :mod:`amorph.descriptors.table` turns structure files and result
directories into the CSV read by ``amorph train``.

Only numpy, pymatgen and ase are needed (no torch, no jobflow).
"""

from __future__ import annotations

import warnings

import numpy as np
from pymatgen.core import Structure

from amorph.descriptors.compositional import COMPOSITION_FEATURES, composition_features
from amorph.descriptors.structural import STRUCTURAL_FEATURES, structural_features
from amorph.trajectory import Trajectory

FEATURE_NAMES = (*STRUCTURAL_FEATURES, *COMPOSITION_FEATURES, "cohesive_energy_density")
"""Column order of every feature table."""


def compute_features(structure: Structure) -> dict[str, float]:
    """All descriptors of one structure, keyed (and ordered) as :data:`FEATURE_NAMES`."""
    features = {**structural_features(structure), **composition_features(structure.composition)}
    features["cohesive_energy_density"] = features["cohesive_energy_avg"] / features["AAV"]
    return {name: features[name] for name in FEATURE_NAMES}


def frame_indices(n_frames: int, wanted: int) -> np.ndarray:
    """``wanted`` frame indices spread evenly over ``n_frames``, last frame included."""
    if wanted < 1:
        raise ValueError("at least one frame must be featurised")
    return np.unique(np.linspace(n_frames - 1, 0, min(wanted, n_frames)).round().astype(int))


def trajectory_features(trajectory: Trajectory, frames: int = 10) -> dict[str, float]:
    """Descriptors averaged over ``frames`` evenly spaced frames of ``trajectory``, NaNs ignored."""
    rows = [
        compute_features(trajectory.structure(i))
        for i in frame_indices(trajectory.n_frames, frames)
    ]
    values = np.array([[row[name] for name in FEATURE_NAMES] for row in rows], dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
        means = np.nanmean(values, axis=0)
    return dict(zip(FEATURE_NAMES, means.tolist(), strict=True))


__all__ = [
    "FEATURE_NAMES",
    "composition_features",
    "compute_features",
    "frame_indices",
    "structural_features",
    "trajectory_features",
]
