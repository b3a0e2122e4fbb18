"""CHGNet on tensors: the crystal and bond graphs built with torch operations, one backward pass.

The layers are CHGNet's own (``CHGNet._compute``); only the graph construction and the derivatives
differ from the stock ``CHGNetCalculator``, which builds each graph in Python on the CPU and takes two
gradients with ``create_graph=True``.
"""

from __future__ import annotations

import torch
from chgnet.model.model import BatchedGraph
from torch import Tensor

from amorph.engine import EngineSpec
from amorph.surrogate.batched.engine import BatchedEngine
from amorph.surrogate.batched.graph import Systems, neighbor_list, pairs_sharing_center
from amorph.surrogate.batched.potential import BatchedPotential
from amorph.surrogate.chgnet import CHGNET_MAX_Z, load_chgnet_model


class CHGNetPotential(BatchedPotential):
    """A CHGNet model (``chgnet.model.CHGNet``) evaluated on batches of replicas."""

    name = "chgnet"
    supported_numbers = set(range(1, CHGNET_MAX_Z + 1))

    def __init__(self, model, device: str | torch.device = "cpu"):
        super().__init__(model, device)
        self.atom_cutoff = float(model.graph_converter.atom_graph_cutoff)
        self.bond_cutoff = float(model.graph_converter.bond_graph_cutoff)
        reference = model.composition_model
        self.reference_energies = None if reference is None else reference.fc.weight[0].detach()

    def energies(self, systems: Systems, positions: Tensor, cells: Tensor) -> Tensor:
        edges = neighbor_list(systems, self.atom_cutoff)
        # CHGNet's bond vectors point from neighbour to centre
        vectors = -edges.vectors(positions, cells, systems.owner)
        lengths = vectors.norm(dim=1)
        undirected = torch.arange(len(lengths), device=lengths.device) < edges.reverse
        rank = torch.cumsum(undirected, 0) - 1
        directed2undirected = torch.where(undirected, rank, rank[edges.reverse])
        undirected_lengths = lengths[undirected]
        # angles between a bond (≤ cutoff) and every other bond (< cutoff) of the same centre
        with torch.no_grad():
            first, second = pairs_sharing_center(edges.center, lengths <= self.bond_cutoff,
                                                 lengths < self.bond_cutoff)
        units = vectors / lengths[:, None]
        model = self.model
        encoder = model.bond_basis_expansion
        graph = BatchedGraph(
            atomic_numbers=systems.numbers,
            bond_bases_ag=encoder.rbf_expansion_ag(undirected_lengths),
            bond_bases_bg=encoder.rbf_expansion_bg(undirected_lengths),
            angle_bases=model.angle_basis_expansion(units[first], units[second]),
            batched_atom_graph=torch.stack([edges.center, edges.neighbor], dim=1),
            batched_bond_graph=torch.stack(
                [edges.center[first], directed2undirected[first], directed2undirected[second]], dim=1),
            atom_owners=systems.owner,
            directed2undirected=directed2undirected,
            atom_positions=[],
            strains=[],
            volumes=systems.volumes,
        )
        energies = model._compute(graph)["e"]
        if model.is_intensive:
            energies = energies * systems.counts_tensor
        if self.reference_energies is not None:
            reference = self.reference_energies[systems.numbers - 1]
            energies = energies + torch.zeros_like(energies).index_add(0, systems.owner, reference)
        return energies


def chgnet_batched_engine(spec: EngineSpec) -> BatchedEngine:
    """The batched engine with CHGNet; ``spec.options`` may set ``max_atoms`` per batch."""
    potential = CHGNetPotential(load_chgnet_model(spec), device=spec.device)
    return BatchedEngine(potential, name="chgnet-batched", **spec.options)
