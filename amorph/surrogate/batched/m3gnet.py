"""M3GNet (matgl, PyG backend) on tensors: a torch neighbour list and matgl's tensor-only line graph.

matgl's ``PESCalculator`` builds the neighbour list with pymatgen and the three-body indices with numpy
on every call; here both stay on the model's device and many replicas share one forward pass.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from ase.data import atomic_numbers
from matgl.graph._compute import compute_pair_vector_and_distance, create_line_graph_torch
from torch import Tensor

from amorph.engine import EngineSpec
from amorph.errors import EngineError
from amorph.surrogate.batched.engine import BatchedEngine
from amorph.surrogate.batched.graph import Systems, neighbor_list
from amorph.surrogate.batched.potential import BatchedPotential
from amorph.surrogate.m3gnet import DEFAULT_M3GNET_MODEL, load_m3gnet_potential


class M3GNetPotential(BatchedPotential):
    """A matgl ``Potential`` wrapping an M3GNet model, evaluated on batches of replicas."""

    name = "m3gnet"

    def __init__(self, potential, device: str | torch.device = "cpu"):
        if potential.calc_repuls or potential.calc_charge:
            raise EngineError("the batched M3GNet engine supports neither ZBL repulsion nor charges: use the m3gnet-ase engine")
        super().__init__(potential, device)
        network = potential.model
        self.cutoff = float(network.cutoff)
        self.threebody_cutoff = float(network.threebody_cutoff)
        numbers = [atomic_numbers[e] for e in network.element_types]
        self.supported_numbers = set(numbers)
        self.node_type = torch.full((max(numbers) + 1,), -1, dtype=torch.long, device=self.device)
        self.node_type[numbers] = torch.arange(len(numbers), device=self.device)

    def energies(self, systems: Systems, positions: Tensor, cells: Tensor) -> Tensor:
        potential = self.model
        network = potential.model
        edges = neighbor_list(systems, self.cutoff)
        offshift = edges.shifts(cells, systems.owner)
        edge_index = torch.stack([edges.center, edges.neighbor])
        with torch.no_grad():  # the same arithmetic as the model's, so the three-body topology matches
            vectors, distances = compute_pair_vector_and_distance(positions, edge_index, offshift)
            line_graph = create_line_graph_torch(edge_index, distances, vectors, len(positions),
                                                 self.threebody_cutoff)
        graph = SimpleNamespace(node_type=self.node_type[systems.numbers], pos=positions, edge_index=edge_index,
                                pbc_offshift=offshift, batch=systems.owner, num_graphs=systems.n_replicas)
        state = None
        if network.include_state:  # matgl's converters give every structure the state (0, 0)
            state = positions.new_zeros(systems.n_replicas, 2)
        energies = network(g=graph, state_attr=state, l_g=line_graph).reshape(-1)
        network.feature_dict = {}  # matgl keeps every layer's output there; not past this evaluation
        energies = potential.data_std * energies + potential.data_mean
        if potential.element_refs is not None:
            energies = energies + potential.element_refs(graph).reshape(-1)
        return energies


def m3gnet_engine(spec: EngineSpec) -> BatchedEngine:
    """The batched engine with M3GNet; ``spec.options`` may set ``max_atoms`` per batch."""
    potential = M3GNetPotential(load_m3gnet_potential(spec.model or DEFAULT_M3GNET_MODEL), device=spec.device)
    return BatchedEngine(potential, name="m3gnet", **spec.options)
