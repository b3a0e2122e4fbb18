"""Synthetic trajectories with a known diffusivity, for tests, benchmarks and calibration checks."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from amorph.analysis.diffusion import A2_PER_FS_TO_CM2_PER_S
from amorph.trajectory import Trajectory


def random_walk(
    counts: Mapping[str, int],
    D_cm2_s: Mapping[str, float],
    n_frames: int,
    *,
    frame_interval_fs: float = 1.0,
    cell: np.ndarray | None = None,
    hop_length_A: float | None = None,
    seed: int | np.random.Generator | None = None,
    temperature_K: float | None = None,
    fixed_centre_of_mass: bool = True,
) -> Trajectory:
    """Independent random walkers with diffusivity ``D_cm2_s[species]``, unwrapped, in ``cell``.

    Increments are Gaussian, or with ``hop_length_A`` hops of that length along a random Cartesian
    axis with the per-frame probability that gives the same D (heavy-tailed motion). The default
    cell is a cube at 0.05 atoms/Å³; starting positions are uniform in the cell. As in
    momentum-conserving MD, the centre of mass is kept fixed by default (which takes 1/N of a lone
    species' MSD).
    """
    from ase.data import atomic_masses, atomic_numbers

    rng = np.random.default_rng(seed)
    symbols = [s for s, n in counts.items() for _ in range(n)]
    n_atoms = len(symbols)
    if cell is None:
        cell = np.eye(3) * (n_atoms / 0.05) ** (1 / 3)
    cell = np.asarray(cell, dtype=float)
    # per-atom variance of one Cartesian increment per frame, 2 D dt (Å²)
    var = np.array([2 * D_cm2_s[s] / A2_PER_FS_TO_CM2_PER_S * frame_interval_fs for s in symbols])
    if hop_length_A is None:
        positions = rng.standard_normal((n_frames, n_atoms, 3))
        positions *= np.sqrt(var)[None, :, None]
    else:
        positions = np.zeros((n_frames, n_atoms, 3))
        hop = rng.random((n_frames, n_atoms)) < 3 * var / hop_length_A**2
        frame, atom = np.nonzero(hop)
        axis = rng.integers(0, 3, len(frame))
        positions[frame, atom, axis] = hop_length_A * rng.choice([-1.0, 1.0], len(frame))
    numbers = np.array([atomic_numbers[s] for s in symbols])
    if fixed_centre_of_mass:
        masses = atomic_masses[numbers]
        positions -= np.einsum("fak,a->fk", positions, masses / masses.sum())[:, None, :]
    positions[0] = rng.random((n_atoms, 3)) @ cell
    np.cumsum(positions, axis=0, out=positions)
    return Trajectory(
        numbers=numbers,
        positions=positions,
        cells=cell,
        time_fs=frame_interval_fs * np.arange(n_frames),
        metadata={} if temperature_K is None else {"temperature_K": temperature_K},
    )
