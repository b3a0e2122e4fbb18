"""Periodic neighbour lists and bond-angle triplets built with tensor operations only.

Everything here runs on the device of the positions, for a batch of replicas at once
(:class:`~amorph.md.potential.Systems`: the atoms of replica ``b`` are rows
``offsets[b] : offsets[b] + counts[b]`` of one position tensor, and each replica has its own
cell). Nothing needs a gradient: the lists choose which pairs the models see, and the models
recompute the pair vectors from the positions (and strains) they differentiate.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from amorph.md.potential import Systems

PAIR_BUDGET = 2**24  # pair distances the neighbour search holds at once (128 MiB in float64)


@dataclass
class Edges:
    """Directed pairs ``center → neighbor`` closer than the cutoff, sorted by center.

    The vector of edge ``e`` is ``positions[neighbor] + images[e] @ cell - positions[center]``;
    ``reverse[e]`` is the edge ``neighbor → center`` through the opposite image.
    """

    center: Tensor
    neighbor: Tensor
    images: Tensor
    reverse: Tensor

    def shifts(self, cells: Tensor, owner: Tensor) -> Tensor:
        """The Cartesian image shift (E, 3) of each edge in its replica's cell (``owner``: replica
        of each atom)."""
        return torch.einsum("ei,eij->ej", self.images.to(cells.dtype), cells[owner[self.center]])

    def vectors(self, positions: Tensor, cells: Tensor, owner: Tensor) -> Tensor:
        """Edge vectors (E, 3) from ``positions`` and per-replica ``cells`` (both may carry
        gradients)."""
        return positions[self.neighbor] + self.shifts(cells, owner) - positions[self.center]


def neighbor_list(systems: Systems, cutoff: float) -> Edges:
    """All directed pairs within ``cutoff`` Å (self-pairs only through a non-zero image), per
    replica."""
    with torch.no_grad():
        positions, cells, counts = systems.positions, systems.cells, systems.counts_tensor
        device, dtype = positions.device, positions.dtype
        inverse = torch.linalg.inv(cells)
        # images needed along each cell vector (wrapped atoms are less than one cell apart): the
        # cutoff over the spacing of the lattice planes, plus one
        reach = (torch.floor(cutoff * inverse.norm(dim=1)) + 1).amax(0).long().tolist()
        grid = torch.cartesian_prod(*(torch.arange(-r, r + 1, device=device) for r in reach))
        n_images = len(grid)  # grid[n_images - 1 - s] == -grid[s]
        n_max = max(systems.counts)
        slot = torch.arange(n_max, device=device)
        present = slot < counts[:, None]
        index = (systems.offsets[:, None] + slot).clamp(max=len(positions) - 1)
        fractional = torch.einsum("bni,bij->bnj", positions[index], inverse)
        cell_of_atom = torch.floor(fractional)
        wrapped = torch.einsum("bni,bij->bnj", fractional - cell_of_atom, cells)
        self_pair = torch.zeros(n_max, n_max, n_images, dtype=torch.bool, device=device)
        self_pair[slot, slot, n_images // 2] = True
        group = max(1, PAIR_BUDGET // (n_max * n_max * n_images))
        parts = []
        for start in range(0, systems.n_replicas, group):
            sel = slice(start, start + group)
            shifted = wrapped[sel, :, None, :] + (grid.to(dtype) @ cells[sel])[:, None, :, :]
            distance = torch.cdist(
                wrapped[sel], shifted.flatten(1, 2), compute_mode="donot_use_mm_for_euclid_dist"
            )
            distance = distance.view(-1, n_max, n_max, n_images)
            close = (distance <= cutoff) & ~self_pair
            close &= present[sel, :, None, None] & present[sel, None, :, None]
            b, i, j, s = close.nonzero(as_tuple=True)
            parts.append((b + start, i, j, s))
        b, i, j, s = (torch.cat(p) for p in zip(*parts, strict=True))
        center, neighbor = index[b, i], index[b, j]
        images = grid[s] + cell_of_atom[b, i].long() - cell_of_atom[b, j].long()
        n_atoms = len(positions)
        key = (center * n_atoms + neighbor) * n_images + s  # ascending: edges come out sorted
        reverse = torch.searchsorted(
            key, (neighbor * n_atoms + center) * n_images + (n_images - 1 - s)
        )
    return Edges(center=center, neighbor=neighbor, images=images, reverse=reverse)


def pairs_sharing_center(center: Tensor, first: Tensor, second: Tensor) -> tuple[Tensor, Tensor]:
    """Index pairs ``(e, f)``, ``e != f``, of edges with the same center, ``e`` in ``first``, ``f``
    in ``second``.

    ``first`` and ``second`` are boolean masks over edges sorted by ``center``.
    """
    n_atoms = int(center.max()) + 1 if len(center) else 0
    ones, twos = first.nonzero().squeeze(1), second.nonzero().squeeze(1)
    per_center = torch.bincount(center[twos], minlength=n_atoms)
    start = torch.cumsum(per_center, 0) - per_center
    repeats = per_center[center[ones]]
    e = torch.repeat_interleave(ones, repeats)
    within = torch.arange(len(e), device=center.device) - torch.repeat_interleave(
        torch.cumsum(repeats, 0) - repeats, repeats
    )
    f = twos[start[center[e]] + within]
    distinct = e != f
    return e[distinct], f[distinct]
