"""CHGNet: the pretrained model (its weights ship in the ``chgnet`` wheel: no network), as a batched
potential on tensors (engine kind ``chgnet``) and through CHGNet's own ASE calculator
(``chgnet-ase``).

The batched evaluation uses CHGNet's parameters and layers as in ``CHGNet._compute`` with exact
rewrites:
the graphs come from :mod:`amorph.potentials.graph` instead of the Python/Cython converter;
the first linear layer of each gated MLP, which CHGNet applies to the concatenated features of every
bond (or angle), is applied to the features of each atom and bond once and the results gathered
(``W [a_i, b_ij, a_j] = W_1 a_i + W_2 b_ij + W_3 a_j``), which saves most of the matrix products,
with one product per input and branch (core, gate) so that both branches stay contiguous;
the bond weights of each edge, and their products over the two bonds of each angle, are gathered
once for all interaction blocks.
Forces and stresses come from one gradient without ``create_graph``, where the stock calculator
takes two with it. ``compile=True`` runs the interaction blocks through ``torch.compile``, which
fuses their elementwise operations (forward and backward): the same numbers to float32 round-off,
faster steps, and a first evaluation that compiles for a minute or more.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import replace
from itertools import zip_longest
from pathlib import Path

import torch
from torch import Tensor, nn

from amorph.errors import EngineError
from amorph.md.ase import ASEEngine
from amorph.md.batched import BatchedEngine
from amorph.md.engine import EngineSpec
from amorph.md.potential import BatchedPotential, Systems
from amorph.potentials.graph import neighbor_list, pairs_sharing_center
from amorph.potentials.tuning import WEIGHTS_FILE, read_provenance

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
        calculator,
        name="chgnet-ase",
        supported_numbers=set(range(1, CHGNET_MAX_Z + 1)),
        description=model_description(spec),
    )


def load_chgnet_model(spec: EngineSpec):
    """The CHGNet model named by ``spec.model``: a CHGNet version ("0.3.0"), a checkpoint file or
    a model directory of ``amorph tune`` (its weights checked against its provenance)."""
    from chgnet.model import CHGNet

    if spec.model and Path(spec.model).is_dir():
        read_provenance(Path(spec.model), "chgnet")
        return load_chgnet_model(replace(spec, model=str(Path(spec.model) / WEIGHTS_FILE)))
    with contextlib.redirect_stdout(io.StringIO()):  # CHGNet prints banners while loading
        try:
            if spec.model and spec.model.endswith((".pth", ".pth.tar", ".tar")):
                return CHGNet.from_file(spec.model)
            return CHGNet.load(model_name=spec.model or "0.3.0", use_device=spec.device)
        except Exception as exc:  # any loading failure is reported the same way
            raise EngineError(
                f"cannot load CHGNet model {spec.model or '0.3.0'!r}: {exc}"
            ) from None


class CHGNetPotential(BatchedPotential):
    """A CHGNet model (``chgnet.model.CHGNet``) evaluated on batches of replicas.

    The gated MLPs hold views of the model's weights on ``device``: for another device, build
    another potential.
    """

    name = "chgnet"
    supported_numbers = frozenset(range(1, CHGNET_MAX_Z + 1))

    def __init__(self, model, device: str | torch.device = "cpu", compile: bool = False):
        super().__init__(model, device)
        self.atom_cutoff = float(model.graph_converter.atom_graph_cutoff)
        self.bond_cutoff = float(model.graph_converter.bond_graph_cutoff)
        reference = model.composition_model
        self.reference_energies = None if reference is None else reference.fc.weight[0].detach()
        model = self.model
        atom, bond = model.atom_embedding.embedding.embedding_dim, model.bond_embedding.out_features
        angle_widths = [bond, bond, model.angle_embedding.out_features, atom]
        # the gated MLPs' inputs: atom, atom, bond (AtomConv); atom, bond, bond, angle (the others)
        atom_gated = [
            _Gated(x.twoBody_atom, [atom, bond, atom], [0, 2, 1]) for x in model.atom_conv_layers
        ]
        bond_gated, angle_gated = (
            [
                None if x is None else _Gated(x.twoBody_bond, angle_widths, [3, 0, 1, 2])
                for x in layers
            ]
            for layers in (model.bond_conv_layers, model.angle_layers)
        )
        self.layers = list(
            zip_longest(
                model.atom_conv_layers,
                atom_gated,
                model.bond_conv_layers,
                bond_gated,
                model.angle_layers,
                angle_gated,
            )
        )
        # fuses the elementwise operations, forward and backward
        self.convolve = torch.compile(self._convolve, dynamic=True) if compile else self._convolve

    def energies(self, systems: Systems, positions: Tensor, cells: Tensor) -> Tensor:
        """CHGNet's energies, its bond and angle graphs built here from the neighbour list."""
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
        edge_weights = bond_weights_ag.index_select(0, bond_of_edge)
        angle_weights = bond_weights_bg.index_select(
            0, angles[:, 1]
        ) * bond_weights_bg.index_select(0, angles[:, 2])
        atom_feas = self.convolve(
            (atom_feas, bond_feas, angle_feas),
            (edge_weights, angle_weights),
            (edges.center, edges.neighbor, bond_of_edge),
            angles,
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

    def _convolve(self, feas, weights, pairs, angles: Tensor) -> Tensor:
        """The atom features after CHGNet's interaction blocks."""
        atom_feas, bond_feas, angle_feas = feas
        edge_weights, angle_weights = weights
        center, neighbor, bond_of_edge = pairs
        for atom_layer, atom_gated, bond_layer, bond_gated, angle_layer, angle_gated in self.layers:
            messages = atom_gated(
                [(atom_feas, center), (atom_feas, neighbor), (bond_feas, bond_of_edge)]
            )
            atom_feas = _residual(
                atom_layer,
                _sum_rows(messages * edge_weights, center, len(atom_feas)),
                atom_feas,
                atom_layer.atom_norm,
            )
            # as CHGNet: no bond graph, no bond updates
            if bond_layer is None or not len(angles):
                continue
            inputs = _angle_inputs(atom_feas, bond_feas, angle_feas, angles)
            update = bond_gated(inputs) * angle_weights
            bond_feas = _residual(
                bond_layer,
                _sum_rows(update, angles[:, 1], len(bond_feas)),
                bond_feas,
                bond_layer.bond_norm,
            )
            if angle_layer is not None:
                inputs = _angle_inputs(atom_feas, bond_feas, angle_feas, angles)
                angle_feas = _residual(
                    angle_layer,
                    angle_gated(inputs),
                    angle_feas,
                    angle_layer.angle_norm,
                )
        return atom_feas


def _sum_rows(values: Tensor, index: Tensor, n: int) -> Tensor:
    return values.new_zeros(n, values.shape[1]).index_add(0, index, values)


class _Gated:
    """CHGNet's ``GatedMLP`` of the concatenated ``x.index_select(0, i)`` of its inputs.

    The first linear layer of each branch (core, gate) is applied to each ``x`` before the gather,
    a product per input and branch; ``order`` lists the inputs' positions in CHGNet's
    concatenation in the order they are passed (the first one gathered: it takes the bias).
    """

    def __init__(self, gated: nn.Module, widths: list[int], order: list[int]):
        self.branches = []
        for mlp in (gated.mlp_core, gated.mlp_gate):
            first, *rest = (layer for layer in mlp.layers if not isinstance(layer, nn.Dropout))
            blocks = first.weight.split(widths, dim=1)
            self.branches.append(([blocks[i].T for i in order], first.bias, nn.Sequential(*rest)))
        self.norms = (gated.bn1, gated.bn2) if gated.norm is not None else (None, None)
        self.activation, self.sigmoid = gated.activation, gated.sigmoid

    def __call__(self, inputs: list[tuple[Tensor, Tensor | None]]) -> Tensor:
        """``inputs``: ``(x, i)`` in ``order``; ``i`` None takes all rows of ``x``."""
        core, gate = (
            rest(self._first_layer(inputs, weights, bias)) for weights, bias, rest in self.branches
        )
        if self.norms[0] is not None:
            core, gate = self.norms[0](core), self.norms[1](gate)
        return self.activation(core) * self.sigmoid(gate)

    @staticmethod
    def _first_layer(inputs, weights: list[Tensor], bias: Tensor | None) -> Tensor:
        (x, index), *others = inputs
        projected = x @ weights[0] if bias is None else torch.addmm(bias, x, weights[0])
        hidden = projected.index_select(0, index)
        for (x, index), weight in zip(others, weights[1:], strict=True):
            projected = x @ weight
            hidden += projected if index is None else projected.index_select(0, index)
        return hidden


def _angle_inputs(atom_feas, bond_feas, angle_feas, angles) -> list[tuple[Tensor, Tensor | None]]:
    return [
        (atom_feas, angles[:, 0]),
        (bond_feas, angles[:, 1]),
        (bond_feas, angles[:, 2]),
        (angle_feas, None),
    ]


def _residual(layer: nn.Module, new: Tensor, old: Tensor, norm: nn.Module | None) -> Tensor:
    """The end of CHGNet's ``AtomConv``, ``BondConv`` and ``AngleUpdate``: output MLP, residual
    connection, norm."""
    if getattr(layer, "use_mlp_out", False):
        new = layer.mlp_out(new)
    if layer.resnet:
        new = new + old
    return new if norm is None else norm(new)


def chgnet_engine(spec: EngineSpec) -> BatchedEngine:
    """The batched engine with CHGNet; ``spec.options`` may set ``max_atoms`` per batch and
    ``compile`` (``torch.compile`` the interaction blocks: faster steps after a first evaluation
    that compiles for a minute or more)."""
    options = dict(spec.options)
    compile_ = bool(options.pop("compile", False))
    potential = CHGNetPotential(load_chgnet_model(spec), device=spec.device, compile=compile_)
    return BatchedEngine(potential, name="chgnet", description=model_description(spec), **options)


def model_description(spec: EngineSpec) -> dict[str, str]:
    """For a model directory of ``amorph tune``: its weights' sha256 and base model (what every
    stage it makes records); nothing for CHGNet's own versions."""
    if not (spec.model and Path(spec.model).is_dir()):
        return {}
    provenance = read_provenance(Path(spec.model), "chgnet")
    return {"model_sha256": provenance["sha256"], "tuned_from": provenance["base_model"]}
