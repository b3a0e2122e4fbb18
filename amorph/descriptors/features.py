"""The feature vector of a structure or of frames of a trajectory: the published columns in the
published order (then amorph's extended ones), structural and compositional together."""

from __future__ import annotations

import warnings
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from pymatgen.core import Composition, Structure

from amorph.descriptors.compositional import COMPOSITION_UNITS, composition_features
from amorph.descriptors.structural import (
    EXTENDED_UNITS,
    STRUCTURAL_UNITS,
    cell_features,
    structural_features,
)
from amorph.trajectory import Trajectory

FEATURE_NAMES = (*STRUCTURAL_UNITS, *COMPOSITION_UNITS)
"""The published columns, in the published order: the columns of every feature table."""
EXTENDED_FEATURE_NAMES = tuple(EXTENDED_UNITS)
"""amorph's own variants, appended with ``extended=True``."""
FEATURE_UNITS = {**STRUCTURAL_UNITS, **COMPOSITION_UNITS, **EXTENDED_UNITS}
"""Column → unit ("" for counts and ratios), published columns then extended ones."""
MIN_FRAMES_PER_WORKER = 50
"""Fewer frames per process than this are not worth a process pool's start-up."""


def feature_names(extended: bool = False) -> tuple[str, ...]:
    """The columns :func:`compute_features` returns."""
    return (*FEATURE_NAMES, *EXTENDED_FEATURE_NAMES) if extended else FEATURE_NAMES


def _ordered(structural: dict[str, float], compositional: dict[str, float], extended: bool):
    features = {**structural, **compositional}
    return {name: features[name] for name in feature_names(extended)}


def compute_features(structure: Structure, extended: bool = False) -> dict[str, float]:
    """All descriptors of one structure, keyed (and ordered) as :func:`feature_names`."""
    structural = structural_features(structure, extended)
    return _ordered(structural, composition_features(structure.composition), extended)


def frame_indices(n_frames: int, wanted: int) -> np.ndarray:
    """``wanted`` frame indices spread evenly over ``n_frames``, last frame included."""
    if wanted < 1:
        raise ValueError("at least one frame must be featurised")
    return np.unique(np.linspace(n_frames - 1, 0, min(wanted, n_frames)).round().astype(int))


def _frames_features(trajectory: Trajectory, extended: bool) -> list[list[float]]:
    """Descriptors of every frame (without building pymatgen structures)."""
    symbols = trajectory.symbols
    compositional = composition_features(Composition(Counter(symbols)))
    rows = []
    for cell, positions in zip(trajectory.cells, trajectory.positions, strict=True):
        structural = cell_features(symbols, cell, positions, extended)
        rows.append(list(_ordered(structural, compositional, extended).values()))
    return rows


def trajectory_features(
    trajectory: Trajectory, frames: int = 10, extended: bool = False, workers: int = 1
) -> dict[str, float]:
    """Descriptors averaged over ``frames`` evenly spaced frames of ``trajectory``, NaNs ignored.

    Up to ``workers`` processes share the frames, each given at least
    :data:`MIN_FRAMES_PER_WORKER`.
    """
    indices = frame_indices(trajectory.n_frames, frames)
    workers = max(1, min(workers, len(indices) // MIN_FRAMES_PER_WORKER))
    t = trajectory
    chunks = [
        Trajectory(t.numbers, t.positions[i], t.cells[i], t.time_fs[i])
        for i in np.array_split(indices, workers)
    ]
    if workers == 1:
        rows = _frames_features(chunks[0], extended)
    else:
        with ProcessPoolExecutor(workers) as pool:
            parts = pool.map(_frames_features, chunks, [extended] * workers)
            rows = [row for part in parts for row in part]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
        means = np.nanmean(np.array(rows, dtype=float), axis=0)
    return dict(zip(feature_names(extended), means.tolist(), strict=True))
