"""Structural and compositional descriptors of Li-containing (amorphous) structures.

The default columns are those of the published feature table of Zheng et al., npj Comput. Mater.
(2024), names and definitions included, so that amorph's tables and the published one concatenate;
its Table 1 extends Sendek et al., Energy Environ. Sci. 10, 306 (2017). Definitions, cutoffs and
radii are documented in :mod:`amorph.descriptors.structural` and
:mod:`amorph.descriptors.compositional`, data sources in :mod:`amorph.elements`.
``extended=True`` adds amorph's own variants (:data:`EXTENDED_FEATURE_NAMES`).
:mod:`amorph.descriptors.features` computes them for a structure or a trajectory;
:mod:`amorph.descriptors.table` turns structure files and result directories into the CSV read by
``amorph train`` and ``amorph predict``.

Only numpy, pymatgen and ase are needed (no torch, no jobflow).
"""

from amorph.descriptors.compositional import composition_features
from amorph.descriptors.features import (
    EXTENDED_FEATURE_NAMES,
    FEATURE_NAMES,
    FEATURE_UNITS,
    compute_features,
    feature_names,
    frame_indices,
    trajectory_features,
)
from amorph.descriptors.structural import structural_features

__all__ = [
    "EXTENDED_FEATURE_NAMES",
    "FEATURE_NAMES",
    "FEATURE_UNITS",
    "composition_features",
    "compute_features",
    "feature_names",
    "frame_indices",
    "structural_features",
    "trajectory_features",
]
