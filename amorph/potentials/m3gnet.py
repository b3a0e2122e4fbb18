"""M3GNet through matgl: a pretrained model by name (from the matgl hub) or a local model directory,
as a batched potential on tensors (engine kind ``m3gnet``) or through matgl's ASE calculator
(``m3gnet-ase``).

M3GNet (matgl, PyG backend) on tensors: a torch neighbour list and matgl's tensor-only line graph.

matgl's ``PESCalculator`` builds the neighbour list with pymatgen and the three-body indices with
numpy on every call; here both stay on the model's device and many replicas share one forward pass.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import torch
from ase.data import atomic_numbers
from matgl.graph._compute import compute_pair_vector_and_distance, create_line_graph_torch
from torch import Tensor

from amorph.errors import EngineError
from amorph.md.ase import ASEEngine
from amorph.md.batched import BatchedEngine
from amorph.md.engine import EngineSpec
from amorph.md.potential import BatchedPotential, Systems
from amorph.potentials.graph import neighbor_list

DEFAULT_M3GNET_MODEL = "M3GNet-MP-2021.2.8-DIRECT-PES"


def m3gnet_ase_engine(spec: EngineSpec) -> ASEEngine:
    """M3GNet through matgl's ``PESCalculator``.

    ``spec.model`` is a pretrained model name or a saved model directory.
    """
    potential = load_m3gnet_potential(spec.model or DEFAULT_M3GNET_MODEL)
    potential.calc_stresses = True
    if spec.device != "cpu":
        potential = potential.to(spec.device)
    from matgl.ext.ase import PESCalculator

    calculator = PESCalculator(potential, stress_unit="eV/A3", **spec.options)
    elements = getattr(potential.model, "element_types", None)
    numbers = {atomic_numbers[e] for e in elements} if elements else None
    return ASEEngine(calculator, name="m3gnet-ase", supported_numbers=numbers)


def load_m3gnet_potential(model: str):
    """Load a matgl potential from a local directory (model.json, model.pt, state.pt) or by name."""
    import matgl

    path = Path(model).expanduser()
    looks_local = path.exists() or model.startswith((".", "/", "~")) or "\\" in model
    if looks_local and not (path / "model.json").exists():
        raise EngineError(
            f"no matgl model in directory {model!r} (expected model.json, model.pt, state.pt); "
            "give a local directory written by Potential.save() or a pretrained model name such as "
            f"{DEFAULT_M3GNET_MODEL!r} on a machine with access to the matgl model hub"
        )
    try:
        return matgl.load_model(str(path) if looks_local else model)
    except Exception as exc:  # hub, network and format errors are all reported alike
        cause = exc.__cause__ or exc
        raise EngineError(
            f"cannot load M3GNet model {model!r} ({type(cause).__name__}: {cause}); "
            "give a pretrained model name on a machine with access to the matgl model hub, "
            "or a local model directory written by Potential.save()"
        ) from None


class M3GNetPotential(BatchedPotential):
    """A matgl ``Potential`` wrapping an M3GNet model, evaluated on batches of replicas."""

    name = "m3gnet"

    def __init__(self, potential, device: str | torch.device = "cpu"):
        if potential.calc_repuls or potential.calc_charge:
            raise EngineError(
                "the batched M3GNet engine supports neither ZBL repulsion nor charges: "
                "use the m3gnet-ase engine"
            )
        super().__init__(potential, device)
        network = potential.model
        self.cutoff = float(network.cutoff)
        self.threebody_cutoff = float(network.threebody_cutoff)
        numbers = [atomic_numbers[e] for e in network.element_types]
        self.supported_numbers = set(numbers)
        self.node_type = torch.full((max(numbers) + 1,), -1, dtype=torch.long, device=self.device)
        self.node_type[numbers] = torch.arange(len(numbers), device=self.device)

    def energies(self, systems: Systems, positions: Tensor, cells: Tensor) -> Tensor:
        """M3GNet's energies (rescaled, plus element references) on the batch's neighbour list."""
        potential = self.model
        network = potential.model
        edges = neighbor_list(systems, self.cutoff)
        offshift = edges.shifts(cells, systems.owner)
        edge_index = torch.stack([edges.center, edges.neighbor])
        with (
            torch.no_grad()
        ):  # the same arithmetic as the model's, so the three-body topology matches
            vectors, distances = compute_pair_vector_and_distance(positions, edge_index, offshift)
            line_graph = create_line_graph_torch(
                edge_index, distances, vectors, len(positions), self.threebody_cutoff
            )
        graph = SimpleNamespace(
            node_type=self.node_type[systems.numbers],
            pos=positions,
            edge_index=edge_index,
            pbc_offshift=offshift,
            batch=systems.owner,
            num_graphs=systems.n_replicas,
        )
        state = None
        if network.include_state:  # matgl's converters give every structure the state (0, 0)
            state = positions.new_zeros(systems.n_replicas, 2)
        energies = network(g=graph, state_attr=state, l_g=line_graph).reshape(-1)
        network.feature_dict = {}  # matgl keeps every layer's output there; drop it after the call
        energies = potential.data_std * energies + potential.data_mean
        if potential.element_refs is not None:
            energies = energies + potential.element_refs(graph).reshape(-1)
        return energies


def m3gnet_engine(spec: EngineSpec) -> BatchedEngine:
    """The batched engine with M3GNet; ``spec.options`` may set ``max_atoms`` per batch."""
    potential = M3GNetPotential(
        load_m3gnet_potential(spec.model or DEFAULT_M3GNET_MODEL), device=spec.device
    )
    return BatchedEngine(potential, name="m3gnet", **spec.options)
