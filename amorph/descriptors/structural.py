"""Structural descriptors of one periodic structure, as in the published table of Zheng et al.

Sources: Sendek et al., Energy Environ. Sci. 10, 306 (2017), Table 1 and SI section S1; Zheng et
al., npj Comput. Mater. (2024), Table 1 (SLPW_pp) and its published feature table, whose values fix
the conventions below.

Conventions
-----------
* Two atoms are *neighbours* ("bonded") when they are within ``NEIGHBOUR_CUTOFF`` = 4 Å of each
  other, periodic images included. Bonds are counted from each centre atom, so a bond between two
  centres of the same kind appears once from each end.
* *Bond ionicity* is the Pauling electronegativity difference ``|chi_i - chi_j|``.
* The *anion* is the most electronegative element other than Li
  (:func:`~amorph.elements.lattice_anion`); the *sublattice* is every non-Li atom.
* *Sphere radii* are Cordero covalent radii.
* "Minimum separation" features are per-atom minima averaged over the centre atoms.
* A feature whose defining set of atoms is empty is NaN rather than an error: everything about Li
  when the structure has no Li; AFC, AASD, LASD and VPA when it has no anion; SNC, SBI and ENS when
  it has nothing but Li.

Features
--------
AAV      volume per atom, Å³.
LNC      mean number of neighbours of a Li; SDLC its standard deviation over Li atoms.
LLB      mean number of Li neighbours of a Li ("Li-Li bonds per Li").
LBI      mean ionicity over all bonds of Li atoms; SDLI its standard deviation over those bonds.
SNC      mean number of neighbours (Li included) of a sublattice atom; SBI mean ionicity of those
         bonds.
RNC, RBI LNC/SNC and LBI/SBI.
AFC      anion framework coordination: for each anion, the number of anions at distances in
         [r0, r0 + 1 Å] where r0 is its nearest anion-anion distance; mean over anions.
AASD     mean nearest anion-anion distance (Å); LASD mean nearest Li-anion distance of a Li;
LLSD     mean nearest Li-Li distance of a Li.
VPA      volume per anion, Å³.
ENS      mean electronegativity of the sublattice atoms.
PF, SPF  Σ (4/3)π r³ over all atoms / over the sublattice atoms, divided by the cell volume
         (overlaps counted twice, so PF depends on composition and volume only).
SLPW     straight-line path width: for each Li, the straight segment to its nearest Li; its width is
         the smallest gap (distance from the segment's line minus covalent radius) over the atoms
         whose projection falls strictly between the two Li; mean over the Li that have such atoms,
         in Å. Not clipped: a negative width says how deeply the path cuts into a sphere.
SLPW_pp  the same path measured point to point (to atom centres): the smallest distance from the
         line, over the same atoms and Li. SLPW_pp - SLPW lies between the smallest and the largest
         covalent radius present.
SLPE     straight-line path electronegativity: mean over Li of the electronegativity of the atom
         that sets SLPW.

Extended set (``extended=True``; amorph's own variants, not in the published table)
-------------------------------------------------------------------------------------
AFC_ionic, AASD_ionic, VPA_ionic, LASD_ionic   as above with the anions of
         :func:`~amorph.elements.ionic_model` (all anions of an oxidation-state guess,
         e.g. S and Cl in Li6PS5Cl).
PF_union, SPF_union   fraction of the cell inside the union of the Shannon-radius spheres of all
         atoms / of the sublattice (overlaps counted once), on a grid of spacing ``GRID_SPACING``.
density  g/cm³.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from pymatgen.core import Composition, Structure
from pymatgen.optimization.neighbors import find_points_in_spheres

from amorph.constants import AMU_A3_TO_G_CM3
from amorph.elements import (
    LITHIUM,
    covalent_radius,
    electronegativity,
    ionic_model,
    lattice_anion,
)
from amorph.errors import InputError

NEIGHBOUR_CUTOFF = 4.0
"""Å: atoms closer than this are neighbours (Sendek et al. 2017, SI S1)."""
AFC_SHELL = 1.0
"""Å: width of the anion shell counted by AFC, beyond the nearest anion (Sendek SI S1.9)."""
PATH_SEARCH_MARGIN = 5.0
"""Å: atoms farther than the segment length plus this from the starting Li are not considered by
SLPW and SLPW_pp; they could only matter for a path more than 5 Å wide to atom centres."""
GRID_SPACING = 0.2
"""Å: spacing of the grid behind PF_union and SPF_union (coarsened so that no grid exceeds
``MAX_GRID_POINTS``)."""
MAX_GRID_POINTS = 1_000_000
MAX_SEARCH_RADIUS = 30.0
"""Å: a nearest neighbour farther than this is reported as missing (NaN)."""

STRUCTURAL_UNITS = {
    "AAV": "Å³", "LBI": "Pauling", "SDLI": "Pauling", "SBI": "Pauling", "ENS": "Pauling",
    "RBI": "", "AFC": "", "AASD": "Å", "VPA": "Å³", "LASD": "Å", "LLSD": "Å", "LNC": "",
    "SDLC": "", "LLB": "", "SNC": "", "RNC": "", "PF": "", "SPF": "", "SLPW": "Å",
    "SLPW_pp": "Å", "SLPE": "Pauling",
}  # fmt: skip
"""Published structural column → unit, in the published order."""
ANION_FEATURES = ("AFC", "AASD", "VPA", "LASD")
EXTENDED_UNITS = {
    **{f"{name}_ionic": STRUCTURAL_UNITS[name] for name in ANION_FEATURES},
    "PF_union": "",
    "SPF_union": "",
    "density": "g/cm³",
}
"""Extended (opt-in) column → unit."""
STRUCTURAL_FEATURES = tuple(STRUCTURAL_UNITS)
EXTENDED_FEATURES = tuple(EXTENDED_UNITS)


class _Pairs(NamedTuple):
    """A neighbour list: centre and neighbour indices, displacement vectors (Å) and distances."""

    centres: np.ndarray
    points: np.ndarray
    vectors: np.ndarray
    distances: np.ndarray

    def select(self, mask: np.ndarray) -> _Pairs:
        return _Pairs(*(field[mask] for field in self))


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def _std(values: np.ndarray) -> float:
    return float(np.std(values)) if len(values) else float("nan")


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("nan")


def _first_per_centre(pairs: _Pairs, key: np.ndarray) -> np.ndarray:
    """Index into ``pairs`` of the pair with the smallest ``key`` for each distinct centre."""
    order = np.lexsort((key, pairs.centres))
    _, first = np.unique(pairs.centres[order], return_index=True)
    return order[first]


class _Geometry:
    """Species, radii and a reusable periodic neighbour list of one periodic cell."""

    def __init__(self, symbols: Sequence[str], cell: np.ndarray, positions: np.ndarray):
        if len(symbols) == 0:
            raise InputError("the structure has no atoms")
        self.cell = np.ascontiguousarray(cell, dtype=float)
        self.volume = abs(float(np.linalg.det(self.cell)))
        fractional = np.asarray(positions, dtype=float) @ np.linalg.inv(self.cell) % 1.0
        self.coords = np.ascontiguousarray(fractional @ self.cell)
        self.symbols = np.asarray(symbols)
        elements, self._kind = np.unique(self.symbols, return_inverse=True)
        self.elements = elements.tolist()
        self.is_li = self.symbols == LITHIUM
        self.is_anion = self.symbols == lattice_anion(self.elements)
        self.radius = self.per_atom(covalent_radius)
        self.chi = self.per_atom(electronegativity)
        self._pairs: _Pairs | None = None
        self._cutoff = 0.0

    def per_atom(self, value) -> np.ndarray:
        """``value(symbol)`` for every atom, evaluated once per element."""
        return np.array([value(symbol) for symbol in self.elements])[self._kind]

    def neighbours(self, centres: np.ndarray, cutoff: float) -> tuple[np.ndarray, ...]:
        """Centre index, atom index, periodic image and distance of every atom within ``cutoff``
        Å of each point of ``centres`` (Cartesian, Å), including an atom at the point itself."""
        return find_points_in_spheres(
            self.coords,
            np.ascontiguousarray(centres, dtype=float),
            r=float(cutoff),
            pbc=np.ones(3, dtype=np.int64),
            lattice=self.cell,
            tol=1e-8,
        )

    def pairs(self, cutoff: float) -> _Pairs:
        """All neighbour pairs closer than ``cutoff`` Å (computed once, for the largest cutoff)."""
        if cutoff > self._cutoff:
            centres, points, images, distances = self.neighbours(self.coords, cutoff)
            vectors = self.coords[points] + images @ self.cell - self.coords[centres]
            keep = (centres != points) | (distances > 1e-8)  # not an atom and itself
            self._pairs = _Pairs(centres, points, vectors, distances).select(keep)
            self._cutoff = cutoff
        return self._pairs.select(self._pairs.distances <= cutoff)

    def nearest(self, centres: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distance and vector from each ``centres`` atom to its nearest ``targets`` atom.

        NaN for the atoms that are not centres.
        """
        n_atoms = len(self.symbols)
        distance, vector = np.full(n_atoms, np.nan), np.full((n_atoms, 3), np.nan)
        if not centres.any() or not targets.any():
            return distance, vector
        cutoff = max(self._cutoff, NEIGHBOUR_CUTOFF)
        while True:
            pairs = self.pairs(cutoff)
            pairs = pairs.select(centres[pairs.centres] & targets[pairs.points])
            if np.isin(np.flatnonzero(centres), pairs.centres).all() or cutoff >= MAX_SEARCH_RADIUS:
                break
            cutoff = min(1.5 * cutoff, MAX_SEARCH_RADIUS)
        first = _first_per_centre(pairs, pairs.distances)
        distance[pairs.centres[first]] = pairs.distances[first]
        vector[pairs.centres[first]] = pairs.vectors[first]
        return distance, vector


def _bond_features(geo: _Geometry) -> dict[str, float]:
    """LNC, SDLC, LLB, LBI, SDLI, SNC, SBI and their ratios RNC, RBI."""
    li, host = geo.is_li, ~geo.is_li
    n_atoms = len(li)
    bonds = geo.pairs(NEIGHBOUR_CUTOFF)
    li_bonds, host_bonds = bonds.select(li[bonds.centres]), bonds.select(host[bonds.centres])
    li_counts = np.bincount(li_bonds.centres, minlength=n_atoms)[li]
    li_li_counts = np.bincount(li_bonds.centres[li[li_bonds.points]], minlength=n_atoms)[li]
    host_counts = np.bincount(host_bonds.centres, minlength=n_atoms)[host]
    li_ionicity = np.abs(geo.chi[li_bonds.centres] - geo.chi[li_bonds.points])
    host_ionicity = np.abs(geo.chi[host_bonds.centres] - geo.chi[host_bonds.points])
    features = {
        "LNC": _mean(li_counts),
        "SDLC": _std(li_counts),
        "LLB": _mean(li_li_counts),
        "LBI": _mean(li_ionicity),
        "SDLI": _std(li_ionicity),
        "SNC": _mean(host_counts),
        "SBI": _mean(host_ionicity),
    }
    features["RNC"] = _ratio(features["LNC"], features["SNC"])
    features["RBI"] = _ratio(features["LBI"], features["SBI"])
    return features


def _anion_features(geo: _Geometry, anion: np.ndarray) -> dict[str, float]:
    """AFC, AASD, VPA and LASD for the anions flagged in ``anion``."""
    anion_gap, _ = geo.nearest(anion, anion)
    li_anion_gap, _ = geo.nearest(geo.is_li, anion)
    afc = float("nan")
    if anion.any() and not np.isnan(anion_gap[anion]).all():
        pairs = geo.pairs(float(np.nanmax(anion_gap)) + AFC_SHELL)
        shell = anion[pairs.centres] & anion[pairs.points]
        shell &= pairs.distances <= anion_gap[pairs.centres] + AFC_SHELL
        afc = _mean(np.bincount(pairs.centres[shell], minlength=len(anion))[anion])
    n_anions = int(anion.sum())
    return {
        "AFC": afc,
        "AASD": _mean(anion_gap[anion]),
        "VPA": geo.volume / n_anions if n_anions else float("nan"),
        "LASD": _mean(li_anion_gap[geo.is_li]),
    }


def _path_features(geo: _Geometry, li_gap: np.ndarray, li_hop: np.ndarray) -> dict[str, float]:
    """SLPW, SLPW_pp and SLPE from the straight segment joining each Li to its nearest Li."""
    li = geo.is_li
    if not li.any() or np.isnan(li_gap[li]).all():
        return dict.fromkeys(("SLPW", "SLPW_pp", "SLPE"), float("nan"))
    pairs = geo.pairs(float(np.nanmax(li_gap)) + PATH_SEARCH_MARGIN)
    pairs = pairs.select(
        li[pairs.centres] & (pairs.distances <= li_gap[pairs.centres] + PATH_SEARCH_MARGIN)
    )
    hop = li_hop[pairs.centres]
    along = np.einsum("ij,ij->i", pairs.vectors, hop) / np.einsum("ij,ij->i", hop, hop)
    eps = 1e-6
    between = (along > eps) & (along < 1 - eps)
    between &= np.linalg.norm(pairs.vectors - hop, axis=1) > eps  # not the partner Li itself
    pairs, along, hop = pairs.select(between), along[between], hop[between]
    offset = np.linalg.norm(pairs.vectors - along[:, None] * hop, axis=1)
    gap = offset - geo.radius[pairs.points]
    narrowest = _first_per_centre(pairs, gap)
    return {
        "SLPW": _mean(gap[narrowest]),
        "SLPW_pp": _mean(offset[_first_per_centre(pairs, offset)]),
        "SLPE": _mean(geo.chi[pairs.points[narrowest]]),
    }


def _fractional_grid(counts: np.ndarray) -> np.ndarray:
    """Cell-centred grid of fractional coordinates with ``counts[k]`` points along axis k."""
    axes = [(np.arange(n) + 0.5) / n for n in counts]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(counts))


def _grid_counts(lengths: np.ndarray) -> np.ndarray:
    counts = np.maximum(np.ceil(lengths / GRID_SPACING), 1)
    scale = max(1.0, (np.prod(counts) / MAX_GRID_POINTS) ** (1 / len(counts)))
    return np.maximum(np.ceil(counts / scale), 1).astype(int)


def _union_packing(geo: _Geometry, radius: np.ndarray) -> tuple[float, float]:
    """Fractions of the cell inside the union of all spheres / of the sublattice spheres."""
    grid = _fractional_grid(_grid_counts(np.linalg.norm(geo.cell, axis=1))) @ geo.cell
    point, atom, _, distance = geo.neighbours(grid, radius.max())
    inside = distance < radius[atom]
    fractions = []
    for members in (np.ones_like(geo.is_li), ~geo.is_li):
        covered = np.zeros(len(grid), dtype=bool)
        covered[point[inside & members[atom]]] = True
        fractions.append(float(covered.mean()))
    return fractions[0], fractions[1]


def _extended_features(geo: _Geometry) -> dict[str, float]:
    """The extended set of the module docstring."""
    composition = Composition(Counter(geo.symbols.tolist()))
    model = ionic_model(composition.reduced_formula)
    anion = geo.per_atom(lambda symbol: model[symbol][0])
    pf_union, spf_union = _union_packing(geo, geo.per_atom(lambda symbol: model[symbol][1]))
    return {
        **{f"{name}_ionic": value for name, value in _anion_features(geo, anion).items()},
        "PF_union": pf_union,
        "SPF_union": spf_union,
        "density": float(composition.weight) / geo.volume * AMU_A3_TO_G_CM3,
    }


def cell_features(
    symbols: Sequence[str], cell: np.ndarray, positions: np.ndarray, extended: bool = False
) -> dict[str, float]:
    """The structural descriptors of the module docstring of the atoms ``symbols`` at Cartesian
    ``positions`` (Å) in the periodic ``cell`` (rows are lattice vectors), keyed (and ordered) as
    :data:`STRUCTURAL_FEATURES`, then :data:`EXTENDED_FEATURES` if ``extended``."""
    geo = _Geometry(symbols, cell, positions)
    host = ~geo.is_li
    sphere_volume = 4 / 3 * np.pi * geo.radius**3
    li_gap, li_hop = geo.nearest(geo.is_li, geo.is_li)
    features = {
        **_path_features(geo, li_gap, li_hop),  # first: the widest neighbour list, built once
        "AAV": geo.volume / len(symbols),
        "ENS": _mean(geo.chi[host]),
        "LLSD": _mean(li_gap[geo.is_li]),
        "PF": float(sphere_volume.sum() / geo.volume),
        "SPF": float(sphere_volume[host].sum() / geo.volume),
        **_bond_features(geo),
        **_anion_features(geo, geo.is_anion),
    }
    names = (*STRUCTURAL_FEATURES, *EXTENDED_FEATURES) if extended else STRUCTURAL_FEATURES
    if extended:
        features |= _extended_features(geo)
    return {name: features[name] for name in names}


def structural_features(structure: Structure, extended: bool = False) -> dict[str, float]:
    """:func:`cell_features` of a pymatgen ``Structure`` (ordered: one species per site)."""
    if not structure.is_ordered:
        raise InputError(
            f"{structure.formula}: disordered (partially occupied) structures are not supported"
        )
    symbols = [site.specie.symbol for site in structure]
    return cell_features(symbols, structure.lattice.matrix, structure.cart_coords, extended)
