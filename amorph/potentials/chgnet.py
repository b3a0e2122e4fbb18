"""CHGNet: the pretrained model (its weights ship in the ``chgnet`` wheel: no network), as a batched
potential on tensors (engine kind ``chgnet``) and through CHGNet's own ASE calculator
(``chgnet-ase``).

The batched evaluation uses CHGNet's parameters and layers as in ``CHGNet._compute`` with two exact
rewrites:
the graphs come from :mod:`amorph.potentials.graph` instead of the Python/Cython converter, and
the first linear layer of each gated MLP, which CHGNet applies to the concatenated features of every
bond (or angle), is applied to the features of each atom and bond once and the results gathered
(``W [a_i, b_ij, a_j] = W_1 a_i + W_2 b_ij + W_3 a_j``), which saves most of the matrix products.
Forces and stresses come from one gradient without ``create_graph``, where the stock calculator
takes two with it.
"""

from __future__ import annotations

import contextlib
import io

import torch
from torch import Tensor, nn

from amorph.errors import EngineError
from amorph.md.ase import ASEEngine
from amorph.md.batched import BatchedEngine
from amorph.md.engine import EngineSpec
from amorph.potentials.base import BatchedPotential
from amorph.potentials.graph import Systems, neighbor_list, pairs_sharing_center

CHGNET_MAX_Z = 94  # CHGNet's atom embedding covers H to Pu


def chgnet_ase_engine(spec: EngineSpec) -> ASEEngine:
    """CHGNet through its ASE calculator.

    ``spec.model`` is a CHGNet version ("0.3.0") or a checkpoint file.
    """
    from chgnet.model.dynamics import CHGNetCalculator

    model = load_chgnet_model(spec)
    with contextlib.redirect_stdout(io.StringIO()):  # CHGNet prints banners while loading
        calculator = CHGNetCalculator(model=model, use_device=spec.device, **spec.options)
    return ASEEngine(
        calculator, name="chgnet-ase", supported_numbers=set(range(1, CHGNET_MAX_Z + 1))
    )


def load_chgnet_model(spec: EngineSpec):
    """The CHGNet model named by ``spec.model``: a CHGNet version ("0.3.0") or a checkpoint file."""
    from chgnet.model import CHGNet

    with contextlib.redirect_stdout(io.StringIO()):  # CHGNet prints banners while loading
        try:
            if spec.model and spec.model.endswith((".pth", ".pth.tar", ".tar")):
                return CHGNet.from_file(spec.model)
            return CHGNet.load(model_name=spec.model or "0.3.0", use_device=spec.device)
        except Exception as exc:  # noqa: BLE001 - any loading failure is reported the same way
            raise EngineError(
                f"cannot load CHGNet model {spec.model or '0.3.0'!r}: {exc}"
            ) from None


class CHGNetPotential(BatchedPotential):
    """A CHGNet model (``chgnet.model.CHGNet``) evaluated on batches of replicas."""

    name = "chgnet"
    supported_numbers = frozenset(range(1, CHGNET_MAX_Z + 1))

    def __init__(self, model, device: str | torch.device = "cpu"):
        super().__init__(model, device)
        self.atom_cutoff = float(model.graph_converter.atom_graph_cutoff)
        self.bond_cutoff = float(model.graph_converter.bond_graph_cutoff)
        reference = model.composition_model
        self.reference_energies = None if reference is None else reference.fc.weight[0].detach()

    def energies(self, systems: Systems, positions: Tensor, cells: Tensor) -> Tensor:
        model = self.model
        edges = neighbor_list(systems, self.atom_cutoff)
        vectors = -edges.vectors(
            positions, cells, systems.owner
        )  # CHGNet's bonds point to the centre
        lengths = vectors.norm(dim=1)
        # one undirected bond per pair of opposite edges, numbered in the order of its first edge
        undirected = torch.arange(len(lengths), device=lengths.device) < edges.reverse
        rank = torch.cumsum(undirected, 0) - 1
        bond_of_edge = torch.where(undirected, rank, rank[edges.reverse])
        bond_lengths = lengths[undirected]
        # angles between an edge (≤ cutoff) and every other edge (< cutoff) of the same centre
        with torch.no_grad():
            first, second = pairs_sharing_center(
                edges.center, lengths <= self.bond_cutoff, lengths < self.bond_cutoff
            )
        units = vectors / lengths[:, None]
        angles = torch.stack(
            [edges.center[first], bond_of_edge[first], bond_of_edge[second]], dim=1
        )

        encoder = model.bond_basis_expansion
        bond_bases_ag = encoder.rbf_expansion_ag(bond_lengths)
        bond_bases_bg = encoder.rbf_expansion_bg(bond_lengths)
        atom_feas = model.atom_embedding(systems.numbers - 1)
        bond_feas = model.bond_embedding(bond_bases_ag)
        bond_weights_ag = model.bond_weights_ag(bond_bases_ag)
        bond_weights_bg = model.bond_weights_bg(bond_bases_bg)
        angle_feas = model.angle_embedding(model.angle_basis_expansion(units[first], units[second]))
        pairs = (edges.center, edges.neighbor, bond_of_edge)
        for atom_layer, bond_layer, angle_layer in zip(
            model.atom_conv_layers[:-1], model.bond_conv_layers, model.angle_layers, strict=True
        ):
            atom_feas = _atom_conv(atom_layer, atom_feas, bond_feas, bond_weights_ag, *pairs)
            if len(angles) and bond_layer is not None:  # as CHGNet: no bond graph, no bond updates
                bond_feas = _bond_conv(
                    bond_layer, atom_feas, bond_feas, bond_weights_bg, angle_feas, angles
                )
                if angle_layer is not None:
                    angle_feas = _angle_update(
                        angle_layer, atom_feas, bond_feas, angle_feas, angles
                    )
        atom_feas = _atom_conv(
            model.atom_conv_layers[-1], atom_feas, bond_feas, bond_weights_ag, *pairs
        )
        if model.readout_norm is not None:
            atom_feas = model.readout_norm(atom_feas)
        if model.mlp_first:  # the pretrained models: a sum of atomic energies
            energies = _sum_rows(model.mlp(atom_feas), systems.owner, systems.n_replicas).view(-1)
        else:
            energies = (
                model.mlp(model.pooling(atom_feas, systems.owner)).view(-1) * systems.counts_tensor
            )
        if self.reference_energies is not None:
            reference = self.reference_energies[systems.numbers - 1]
            energies = energies + torch.zeros_like(energies).index_add(0, systems.owner, reference)
        return energies


def _sum_rows(values: Tensor, index: Tensor, n: int) -> Tensor:
    return values.new_zeros(n, values.shape[1]).index_add(0, index, values)


def _gated(gated: nn.Module, parts: list[tuple[Tensor, Tensor | None]]) -> Tensor:
    """CHGNet's ``GatedMLP`` of ``cat([x.index_select(0, i) for x, i in parts], 1)``.

    ``i`` None takes all rows of ``x``.

    The first linear layers of the core and gate branches are applied to each ``x`` before the
    gather.
    """
    branches = []
    for mlp in (gated.mlp_core, gated.mlp_gate):
        layers = [layer for layer in mlp.layers if not isinstance(layer, nn.Dropout)]
        branches.append((layers[0], nn.Sequential(*layers[1:])))
    weights = torch.cat([first.weight for first, _ in branches]).split(
        [x.shape[1] for x, _ in parts], dim=1
    )
    hidden = None
    for (x, index), weight in zip(parts, weights, strict=True):
        projected = x @ weight.T
        projected = projected if index is None else projected.index_select(0, index)
        hidden = projected if hidden is None else hidden + projected
    if branches[0][0].bias is not None:
        hidden = hidden + torch.cat([first.bias for first, _ in branches])
    core, gate = (rest(h) for (_, rest), h in zip(branches, hidden.chunk(2, dim=1), strict=True))
    if gated.norm is not None:
        core, gate = gated.bn1(core), gated.bn2(gate)
    return gated.activation(core) * gated.sigmoid(gate)


def _atom_conv(layer, atom_feas, bond_feas, bond_weights, center, neighbor, bond_of_edge) -> Tensor:
    """``chgnet.model.layers.AtomConv``: messages along every edge, summed onto its centre."""
    messages = _gated(
        layer.twoBody_atom, [(atom_feas, center), (bond_feas, bond_of_edge), (atom_feas, neighbor)]
    )
    new = _sum_rows(messages * bond_weights.index_select(0, bond_of_edge), center, len(atom_feas))
    if layer.use_mlp_out:
        new = layer.mlp_out(new)
    if layer.resnet:
        new = new + atom_feas
    return new if layer.atom_norm is None else layer.atom_norm(new)


def _angle_inputs(atom_feas, bond_feas, angle_feas, angles) -> list[tuple[Tensor, Tensor | None]]:
    return [
        (bond_feas, angles[:, 1]),
        (bond_feas, angles[:, 2]),
        (angle_feas, None),
        (atom_feas, angles[:, 0]),
    ]


def _bond_conv(layer, atom_feas, bond_feas, bond_weights, angle_feas, angles) -> Tensor:
    """``chgnet.model.layers.BondConv``: messages along every angle, summed onto its first bond."""
    update = _gated(layer.twoBody_bond, _angle_inputs(atom_feas, bond_feas, angle_feas, angles))
    update = (
        update
        * bond_weights.index_select(0, angles[:, 1])
        * bond_weights.index_select(0, angles[:, 2])
    )
    new = _sum_rows(update, angles[:, 1], len(bond_feas))
    if layer.use_mlp_out:
        new = layer.mlp_out(new)
    if layer.resnet:
        new = new + bond_feas
    return new if layer.bond_norm is None else layer.bond_norm(new)


def _angle_update(layer, atom_feas, bond_feas, angle_feas, angles) -> Tensor:
    """``chgnet.model.layers.AngleUpdate``."""
    new = _gated(layer.twoBody_bond, _angle_inputs(atom_feas, bond_feas, angle_feas, angles))
    if layer.resnet:
        new = new + angle_feas
    return new if layer.angle_norm is None else layer.angle_norm(new)


def chgnet_engine(spec: EngineSpec) -> BatchedEngine:
    """The batched engine with CHGNet; ``spec.options`` may set ``max_atoms`` per batch."""
    potential = CHGNetPotential(load_chgnet_model(spec), device=spec.device)
    return BatchedEngine(potential, name="chgnet", **spec.options)
