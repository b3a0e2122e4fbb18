"""Structural descriptors of one periodic structure: the Sendek set, extended as in Zheng et al.

Sources: Sendek et al., Energy Environ. Sci. 10, 306 (2017), Table 1 and SI section S1 (features
1-20); Zheng et al., npj Comput. Mater. (2024), Table 1 (SLPW_pp, density, Li fraction).

Conventions (shared by all features below)
-------------------------------------------
* Two atoms are *neighbours* ("bonded") when they are within ``NEIGHBOUR_CUTOFF`` = 4 Å of each
  other, periodic images included (Sendek SI S1). Bond counts are counted from each centre atom, so
  a Li-Li bond appears once from each end.
* *Bond ionicity* is the Pauling electronegativity difference ``|chi_i - chi_j|`` (Sendek SI S1).
* *Anions* and the *sphere radii* (Shannon crystal radii of the guessed oxidation states) are
  defined in :func:`amorph.descriptors.elements.ionic_model`. The *sublattice* is the structure with
  Li removed.
* "Minimum separation" features are per-atom minima averaged over the centre atoms (Sendek's
  "average shortest separation"), more robust in a disordered cell than one global minimum.
* A feature whose defining set of atoms is empty is NaN rather than an error: everything about Li
  (LNC, SDLC, LLB, LBI, SDLI, LASD, LLSD, SLPW, SLPE, RNC, RBI) when the structure has no Li;
  AFC, AASD, LASD and VPA when it has no anion; SNC, SBI, ENS and SLPW_pp when it has nothing but
  Li. RBI is NaN when SBI is 0 (e.g. a binary Li compound, whose sublattice holds anions only).

Features
--------
AAV      volume per atom, Å³.
LNC      mean number of neighbours of a Li; SDLC its standard deviation over Li atoms.
LLB      mean number of Li neighbours of a Li ("Li-Li bonds per Li").
LBI      mean ionicity over all bonds of Li atoms; SDLI its standard deviation over those bonds.
SNC      mean number of sublattice neighbours of a sublattice atom; SBI mean ionicity of those
         bonds.
RNC, RBI LNC/SNC and LBI/SBI.
AFC      anion framework coordination: for each anion, the number of anions at distances in
         [r0, r0 + 1 Å] where r0 is its nearest anion-anion distance (Sendek SI S1.9); mean over
         anions.
AASD     mean nearest anion-anion distance (Å); LASD mean nearest Li-anion distance of a Li;
LLSD     mean nearest Li-Li distance of a Li.
VPA      volume per anion, Å³.
ENS      mean electronegativity of the sublattice atoms.
PF, SPF  packing fraction of all atoms / of the sublattice: volume of the union of the atomic
         spheres over the cell volume, on a grid of spacing ``GRID_SPACING`` (overlaps counted
         once).
SLPW     straight-line path width (Sendek SI S1.17): for each Li, the straight segment to its
         nearest Li; its width is the smallest gap (distance to the segment minus sphere radius)
         over the atoms whose projection falls strictly between the two Li, clipped at 0; mean over
         the Li that have such atoms, in Å.
SLPE     straight-line path electronegativity: mean over Li of the electronegativity of the atom
         that sets that width (Sendek SI S1.18).
SLPW_pp  periodic-path width: the free radius (Å) of the widest infinite straight line parallel to a
         lattice vector that passes all sublattice spheres, i.e. an open straight channel through
         the periodic framework. Not clipped: a negative value says how deeply even the best line
         cuts into a sphere. Zheng et al. do not spell out "pp" in the material available to us;
         this percolating-path reading is ours.
density  g/cm³.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from pymatgen.core import Structure
from pymatgen.optimization.neighbors import find_points_in_spheres
from scipy.spatial import cKDTree

from amorph.descriptors.elements import LITHIUM, electronegativity, ionic_model
from amorph.errors import InputError

NEIGHBOUR_CUTOFF = 4.0
"""Å: atoms closer than this are neighbours (Sendek et al. 2017, SI S1)."""
AFC_SHELL = 1.0
"""Å: width of the anion shell counted by AFC, beyond the nearest anion (Sendek SI S1.9)."""
PATH_SEARCH_MARGIN = 5.0
"""Å: atoms farther than the segment length plus this from the starting Li are not considered by
SLPW; they could only matter for a path more than 5 Å minus their radius wide."""
GRID_SPACING = 0.2
"""Å: spacing of the grids behind PF, SPF and SLPW_pp (coarsened so that no grid exceeds
``MAX_GRID_POINTS``); SLPW_pp is then refined around the best line to ~0.01 Å."""
MAX_GRID_POINTS = 1_000_000
NEAREST_CANDIDATES = 8
MAX_SEARCH_RADIUS = 30.0
"""Å: a nearest neighbour farther than this is reported as missing (NaN)."""

STRUCTURAL_FEATURES = (
    "AAV", "LBI", "SDLI", "SBI", "ENS", "RBI", "AFC", "AASD", "LASD", "LLSD", "VPA",
    "LNC", "SDLC", "LLB", "SNC", "RNC", "PF", "SPF", "SLPW", "SLPW_pp", "SLPE", "density",
)  # fmt: skip


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
    """Species, radii and a reusable periodic neighbour list of one structure."""

    def __init__(self, structure: Structure):
        if not structure.is_ordered:
            raise InputError(
                f"{structure.formula}: disordered (partially occupied) structures are not supported"
            )
        if len(structure) == 0:
            raise InputError("the structure has no atoms")
        self.structure = structure
        symbols = [site.specie.symbol for site in structure]
        model = ionic_model(structure.composition.reduced_formula)
        self.is_li = np.array([s == LITHIUM for s in symbols])
        self.is_anion = np.array([model[s][0] for s in symbols])
        self.radius = np.array([model[s][1] for s in symbols])
        self.chi = np.array([electronegativity(s) for s in symbols])
        self._pairs: _Pairs | None = None
        self._cutoff = 0.0

    def pairs(self, cutoff: float) -> _Pairs:
        """All neighbour pairs closer than ``cutoff`` Å (computed once, for the largest cutoff)."""
        if cutoff > self._cutoff:
            centres, points, images, distances = self.structure.get_neighbor_list(cutoff)
            coords, matrix = self.structure.cart_coords, self.structure.lattice.matrix
            vectors = coords[points] + images @ matrix - coords[centres]
            self._pairs, self._cutoff = _Pairs(centres, points, vectors, distances), cutoff
        return self._pairs.select(self._pairs.distances <= cutoff)

    def nearest(self, centres: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distance and vector from each ``centres`` atom to its nearest ``targets`` atom.

        NaN for the atoms that are not centres.
        """
        n_atoms = len(self.structure)
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
    li_bonds = bonds.select(li[bonds.centres])
    host_bonds = bonds.select(host[bonds.centres] & host[bonds.points])
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


def _separation_features(geo: _Geometry) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """AFC, AASD, LASD, LLSD; also each Li's distance and vector to its nearest Li (for SLPW)."""
    li, anion = geo.is_li, geo.is_anion
    anion_gap, _ = geo.nearest(anion, anion)
    li_anion_gap, _ = geo.nearest(li, anion)
    li_gap, li_hop = geo.nearest(li, li)
    afc = float("nan")
    if anion.any() and not np.isnan(anion_gap[anion]).all():
        pairs = geo.pairs(float(np.nanmax(anion_gap)) + AFC_SHELL)
        shell = anion[pairs.centres] & anion[pairs.points]
        shell &= pairs.distances <= anion_gap[pairs.centres] + AFC_SHELL
        afc = _mean(np.bincount(pairs.centres[shell], minlength=len(li))[anion])
    features = {
        "AFC": afc,
        "AASD": _mean(anion_gap[anion]),
        "LASD": _mean(li_anion_gap[li]),
        "LLSD": _mean(li_gap[li]),
    }
    return features, li_gap, li_hop


def _segment_path_features(
    geo: _Geometry, li_gap: np.ndarray, li_hop: np.ndarray
) -> dict[str, float]:
    """SLPW and SLPE from the straight segment joining each Li to its nearest Li."""
    li = geo.is_li
    if not li.any() or np.isnan(li_gap[li]).all():
        return {"SLPW": float("nan"), "SLPE": float("nan")}
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
    gap = np.linalg.norm(pairs.vectors - along[:, None] * hop, axis=1) - geo.radius[pairs.points]
    narrowest = _first_per_centre(pairs, gap)
    return {
        "SLPW": _mean(np.maximum(gap[narrowest], 0.0)),
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


def _packing_fractions(geo: _Geometry) -> tuple[float, float]:
    """PF and SPF: fractions of the cell inside the union of all spheres / of sublattice spheres."""
    lattice = geo.structure.lattice
    grid = _fractional_grid(_grid_counts(np.array(lattice.abc))) @ lattice.matrix
    point, atom, _, distance = find_points_in_spheres(
        np.ascontiguousarray(geo.structure.cart_coords),
        np.ascontiguousarray(grid),
        r=float(geo.radius.max()),
        pbc=np.ones(3, dtype=np.int64),
        lattice=np.ascontiguousarray(lattice.matrix),
        tol=1e-8,
    )
    inside = distance < geo.radius[atom]
    fractions = []
    for members in (np.ones_like(geo.is_li), ~geo.is_li):
        covered = np.zeros(len(grid), dtype=bool)
        covered[point[inside & members[atom]]] = True
        fractions.append(float(covered.mean()))
    return fractions[0], fractions[1]


def _clearance(points: np.ndarray, tree: cKDTree, radius: np.ndarray) -> np.ndarray:
    """For each point, min over the tree's spheres of (distance to centre - radius); exact.

    The ``NEAREST_CANDIDATES`` nearest centres settle a point unless the farthest of them, less the
    smallest radius, could still undercut the best gap found; those few points are done in full.
    """
    k = min(NEAREST_CANDIDATES, len(radius))
    distance, index = tree.query(points, k=k)
    distance, index = distance.reshape(len(points), k), index.reshape(len(points), k)
    gap = (distance - radius[index]).min(axis=1)
    unsettled = distance[:, -1] - radius.min() < gap
    if unsettled.any():
        full = np.linalg.norm(points[unsettled, None, :] - tree.data[None, :, :], axis=2)
        gap[unsettled] = (full - radius).min(axis=1)
    return gap


def _periodic_path_width(geo: _Geometry, members: np.ndarray) -> float:
    """SLPW_pp: free radius of the widest straight line along a lattice vector missing all spheres
    of ``members``.

    A line parallel to lattice vector a is a point of the plane perpendicular to a; an atom with
    fractional coordinates (f_a, f_b, f_c) projects to f_b·b⊥ + f_c·c⊥ there, so the search is 2-D
    with the projected lattice (b⊥, c⊥). Images within one projected cell are included, which is
    exact unless the projected cell is strongly skewed (never for the near-cubic cells of
    melt-quench MD).
    """
    if not members.any():
        return float("nan")
    matrix = geo.structure.lattice.matrix
    frac = geo.structure.frac_coords[members] % 1.0
    shifts = np.array([(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)], dtype=float)
    radius = np.tile(geo.radius[members], len(shifts))
    best = -np.inf
    for axis in range(3):
        in_plane = [k for k in range(3) if k != axis]
        direction = matrix[axis] / np.linalg.norm(matrix[axis])
        projected = matrix[in_plane] - np.outer(matrix[in_plane] @ direction, direction)
        tree = cKDTree((frac[None, :, in_plane] + shifts[:, None, :]).reshape(-1, 2) @ projected)
        counts = _grid_counts(np.linalg.norm(projected, axis=1))
        points = _fractional_grid(counts)
        gap = _clearance(points @ projected, tree, radius)
        centre, step = points[np.argmax(gap)], 1.0 / counts
        for _ in range(4):  # zoom in: 9x9 sub-grids of shrinking spacing around the best line
            candidates = centre + (_fractional_grid(np.array([9, 9])) - 0.5) * 2 * step
            local = _clearance(candidates @ projected, tree, radius)
            centre, step = candidates[np.argmax(local)], step / 4
        best = max(best, float(gap.max()), float(local.max()))
    return best


def structural_features(structure: Structure) -> dict[str, float]:
    """The structural descriptors listed in the module docstring, keyed by their short names."""
    geo = _Geometry(structure)
    volume = structure.volume
    host = ~geo.is_li
    n_anions = int(geo.is_anion.sum())
    separations, li_gap, li_hop = _separation_features(geo)
    packing, sublattice_packing = _packing_fractions(geo)
    features = {
        "AAV": volume / len(structure),
        "VPA": volume / n_anions if n_anions else float("nan"),
        "ENS": _mean(geo.chi[host]),
        "PF": packing,
        "SPF": sublattice_packing,
        "SLPW_pp": _periodic_path_width(geo, host),
        "density": float(structure.density),
        **_bond_features(geo),
        **separations,
        **_segment_path_features(geo, li_gap, li_hop),
    }
    return {name: features[name] for name in STRUCTURAL_FEATURES}
