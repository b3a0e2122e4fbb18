"""The random-cell job: packmol packing at the offline volume estimate."""

from __future__ import annotations

import math
from dataclasses import dataclass

from jobflow import Maker, job
from pymatgen.core import Composition, Lattice, Structure

from amorph.errors import check_range
from amorph.md.engine import SEEDS
from amorph.structure.composition import formula_units_for, parse_composition
from amorph.structure.packing import random_packed_structure
from amorph.volume.estimate import estimate_volume_per_atom


@dataclass
class RandomCellMaker(Maker):
    """Pack about ``atoms`` atoms (whole formula units) at random into a cubic cell.

    Parameters
    ----------
    name
        Job name.
    atoms
        Target number of atoms, rounded to whole formula units.
    volume_per_atom
        Volume per atom (Å³); None takes the offline estimate of
        :func:`amorph.volume.estimate.estimate_volume_per_atom` at the temperature the cell is
        made for.
    min_distance
        Smallest distance (Å) between atoms, across periodic images (packmol's tolerance).
    seed
        packmol's random seed.
    timeout_s
        How long packmol may run before the job fails.
    """

    name: str = "random cell"
    atoms: int = 100
    volume_per_atom: float | None = None
    min_distance: float = 1.6
    seed: int = 1
    timeout_s: float = 120.0

    def validate(self, composition: Composition | None = None) -> None:
        """Raise ``InputError`` now, before any job runs, for settings that cannot work (for
        ``composition``, if given)."""
        check_range("atom count", self.atoms, 1, 1e6)
        if composition is not None:
            formula_units_for(composition, self.atoms)
        if self.volume_per_atom is not None:
            check_range("volume per atom", self.volume_per_atom, 1, 1000, " Å³")
        check_range("minimum distance", self.min_distance, 0.3, 5, " Å")
        check_range("seed", self.seed, *SEEDS)
        check_range("packmol timeout", self.timeout_s, 1, 1e6, " s")

    def volume(self, composition: Composition, temperature: float = 0.0) -> float:
        """The cell's volume (Å³) for ``composition`` at ``temperature``."""
        per_atom = self.volume_per_atom or estimate_volume_per_atom(composition, temperature)
        return per_atom * formula_units_for(composition, self.atoms) * composition.num_atoms

    def stand_in(self, composition: Composition, temperature: float = 0.0) -> Structure:
        """A cell with the atoms and volume of the packing, positions on a grid: for checks that
        need a cell's size, not its structure (an engine's memory), before packmol runs."""
        units = formula_units_for(composition, self.atoms)
        species = [el for el, n in composition.items() for _ in range(round(n) * units)]
        side = math.ceil(len(species) ** (1 / 3))
        coords = [[i / side, j / side, k / side] for i in range(side) for j in range(side)
                  for k in range(side)]  # fmt: skip
        lattice = Lattice.cubic(self.volume(composition, temperature) ** (1 / 3))
        return Structure(lattice, species, coords[: len(species)])

    @job(name="random cell")
    def make(self, composition: str | Composition, temperature: float = 0.0) -> Structure:
        """The random cell of ``composition`` (a formula or a ``Composition``) to be run at
        ``temperature`` (K)."""
        composition = parse_composition(composition)
        volume = self.volume_per_atom or estimate_volume_per_atom(composition, temperature)
        return random_packed_structure(
            composition,
            formula_units_for(composition, self.atoms),
            volume,
            min_distance=self.min_distance,
            seed=self.seed,
            timeout=self.timeout_s,
        )
