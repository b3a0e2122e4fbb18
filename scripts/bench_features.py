"""Time ``amorph.descriptors.compute_features`` on random dense Li3PO4-like cells of a few sizes.

Usage: python scripts/bench_features.py [N_ATOMS ...]   (default: 50 100 200 400)
"""

from __future__ import annotations

import sys
import time

import numpy as np
from pymatgen.core import Lattice, Structure

from amorph.descriptors import compute_features


def random_cell(n_atoms: int, seed: int = 0, min_distance: float = 1.5) -> Structure:
    """A random Li3PO4 cell at ~2.4 g/cm³ with no pair closer than ``min_distance``."""
    rng = np.random.default_rng(seed)
    n_units = max(1, n_atoms // 8)
    species = ["Li"] * 3 * n_units + ["P"] * n_units + ["O"] * 4 * n_units
    volume = n_units * 115.8 * 1.66054 / 2.4  # formula mass (amu) x (g/cm³ per amu/Å³) / density
    lattice = Lattice.cubic(volume ** (1 / 3))
    coords: list[np.ndarray] = []
    while len(coords) < len(species):
        trial = rng.random(3)
        if not coords or lattice.get_all_distances(np.array(coords), [trial]).min() >= min_distance:
            coords.append(trial)
    return Structure(lattice, species, coords)


def main(sizes: list[int]) -> None:
    for n_atoms in sizes:
        structure = random_cell(n_atoms)
        compute_features(structure)  # warm caches (oxidation-state guess, element data)
        start = time.perf_counter()
        repeats = 3
        for _ in range(repeats):
            compute_features(structure)
        print(
            f"{len(structure):5d} atoms: "
            f"{(time.perf_counter() - start) / repeats * 1e3:7.1f} ms per structure"
        )


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]] or [50, 100, 200, 400])
