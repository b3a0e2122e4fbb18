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
    from ase.data import atomic_masses

    rng = np.random.default_rng(seed)
    symbols, numbers, cell = _atoms(counts, cell)
    n_atoms = len(symbols)
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
    if fixed_centre_of_mass:
        masses = atomic_masses[numbers]
        positions -= np.einsum("fak,a->fk", positions, masses / masses.sum())[:, None, :]
    positions[0] = rng.random((n_atoms, 3)) @ cell
    np.cumsum(positions, axis=0, out=positions)
    return _trajectory(numbers, positions, cell, frame_interval_fs, temperature_K)


def vibrating_solid(
    counts: Mapping[str, int],
    n_frames: int,
    *,
    amplitude_A: float = 0.3,
    correlation_frames: float = 20.0,
    frame_interval_fs: float = 1.0,
    cell: np.ndarray | None = None,
    seed: int | np.random.Generator | None = None,
    temperature_K: float | None = None,
) -> Trajectory:
    """Atoms vibrating about fixed sites, never leaving them: a caged, solid-like trajectory.

    Each Cartesian displacement from an atom's site (uniform random in ``cell``, default as in
    ``random_walk``) is an Ornstein-Uhlenbeck (AR(1)) process with RMS ``amplitude_A`` and
    correlation time ``correlation_frames``, so the MSD rises to a plateau of ``6 amplitude_A²``.
    """
    rng = np.random.default_rng(seed)
    symbols, numbers, cell = _atoms(counts, cell)
    phi = np.exp(-1.0 / correlation_frames)
    kicks = rng.standard_normal((n_frames, len(symbols), 3)) * amplitude_A
    kicks[1:] *= np.sqrt(1 - phi**2)
    for t in range(1, n_frames):
        kicks[t] += phi * kicks[t - 1]
    positions = kicks + rng.random((len(symbols), 3)) @ cell
    return _trajectory(numbers, positions, cell, frame_interval_fs, temperature_K)


def _atoms(
    counts: Mapping[str, int], cell: np.ndarray | None
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Symbols, atomic numbers and the cell (default: a cube at 0.05 atoms/Å³)."""
    from ase.data import atomic_numbers

    symbols = [s for s, n in counts.items() for _ in range(n)]
    if cell is None:
        cell = np.eye(3) * (len(symbols) / 0.05) ** (1 / 3)
    return symbols, np.array([atomic_numbers[s] for s in symbols]), np.asarray(cell, dtype=float)


def _trajectory(
    numbers: np.ndarray,
    positions: np.ndarray,
    cell: np.ndarray,
    frame_interval_fs: float,
    temperature_K: float | None,
) -> Trajectory:
    return Trajectory(
        numbers=numbers,
        positions=positions,
        cells=cell,
        time_fs=frame_interval_fs * np.arange(len(positions)),
        metadata={} if temperature_K is None else {"temperature_K": temperature_K},
    )
