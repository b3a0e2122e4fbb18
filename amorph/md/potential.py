"""The contract of a batched potential: a batch of replicas (:class:`Systems`) in, energies,
forces and stresses of all of them out, from one backward pass."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.stress import full_3x3_to_voigt_6_stress
from torch import Tensor, nn


@dataclass
class Systems:
    """A batch of periodic replicas: positions (N, 3) in Å, cells (B, 3, 3) as rows, numbers
    (N,)."""

    positions: Tensor
    cells: Tensor
    numbers: Tensor
    counts: list[int]

    def __post_init__(self) -> None:
        """Derive per replica its atom count and first atom (``counts_tensor``, ``offsets``), and
        per atom its replica (``owner``)."""
        device = self.positions.device
        self.counts_tensor = torch.tensor(self.counts, device=device)
        self.offsets = torch.cumsum(self.counts_tensor, 0) - self.counts_tensor
        self.owner = torch.repeat_interleave(
            torch.arange(len(self.counts), device=device), self.counts_tensor
        )

    @classmethod
    def from_arrays(
        cls,
        positions: list[np.ndarray],
        cells: list[np.ndarray],
        numbers: list[np.ndarray],
        device: torch.device | str = "cpu",
    ) -> Systems:
        """The batch of replicas with Cartesian ``positions`` (n, 3), ``cells`` (3, 3) and atomic
        ``numbers`` (n,), one array each per replica, on ``device`` (float64/int64)."""

        def joined(values):
            return torch.from_numpy(np.concatenate(values)).to(device)

        return cls(
            positions=joined(positions),
            cells=joined([np.asarray(cell)[None] for cell in cells]),
            numbers=joined(numbers),
            counts=[len(p) for p in positions],
        )

    @classmethod
    def from_atoms(cls, atoms_list: list, device: torch.device | str = "cpu") -> Systems:
        """The batch of ASE ``Atoms`` on ``device``."""
        return cls.from_arrays(
            [a.get_positions() for a in atoms_list],
            [a.cell.array for a in atoms_list],
            [a.numbers for a in atoms_list],
            device,
        )

    @property
    def n_replicas(self) -> int:
        """Number of replicas (B)."""
        return len(self.counts)

    @property
    def volumes(self) -> Tensor:
        """Cell volumes (B,) in Å³."""
        return torch.linalg.det(self.cells).abs()


@dataclass
class Evaluation:
    """Energies (B,) in eV, forces (N, 3) in eV/Å, stresses (B, 3, 3) in eV/Å³.

    Stresses have ASE's sign: (1/V) dE/dε.
    """

    energies: Tensor
    forces: Tensor
    stresses: Tensor


class BatchedPotential(ABC):
    """A frozen ML potential evaluated on a :class:`Systems` batch.

    Subclasses give the total energy of each replica as a differentiable function of the (strained)
    positions and cells; forces and stresses then come from one gradient, taken without a graph of
    the gradient itself (``create_graph=False``) and with the model's parameters frozen.
    """

    name: str = "potential"
    supported_numbers: frozenset[int] | set[int] | None = None  # atomic numbers the model knows

    def __init__(self, model: nn.Module, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        self.dtype = next(iter(self.model.parameters())).dtype

    @abstractmethod
    def energies(self, systems: Systems, positions: Tensor, cells: Tensor) -> Tensor:
        """Energy (B,) in eV of each replica at ``positions`` (N, 3) and ``cells`` (B, 3, 3)."""

    def __call__(self, systems: Systems) -> Evaluation:
        """Energies of ``systems``; forces and stresses from one gradient (positions, strain)."""
        positions = systems.positions.detach().to(self.device, self.dtype).requires_grad_(True)
        cells = systems.cells.detach().to(self.device, self.dtype)
        strain = torch.zeros_like(cells, requires_grad=True)
        deformation = torch.eye(3, dtype=self.dtype, device=self.device) + strain
        strained = torch.einsum("ni,nij->nj", positions, deformation[systems.owner])
        energies = self.energies(systems, strained, cells @ deformation)
        d_positions, d_strain = torch.autograd.grad(energies.sum(), [positions, strain])
        volumes = torch.linalg.det(cells).abs()
        return Evaluation(energies.detach(), -d_positions, d_strain / volumes[:, None, None])


class PotentialCalculator(Calculator):
    """A batched potential as an ASE calculator of one structure, for relaxations and statics."""

    # a class constant, though ASE's BaseCalculator annotates it without ClassVar (RUF012)
    implemented_properties: ClassVar[list[str]] = ["energy", "free_energy", "forces", "stress"]  # type: ignore[misc]

    def __init__(self, potential: BatchedPotential):
        super().__init__()
        self.potential = potential

    def calculate(
        self, atoms: Atoms | None = None, properties=("energy",), system_changes=all_changes
    ) -> None:
        """Energy, forces and stress of ``atoms`` from the potential, as a batch of one."""
        super().calculate(atoms, properties, system_changes)
        evaluation = self.potential(Systems.from_atoms([self.atoms], self.potential.device))
        energy = float(evaluation.energies[0])
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": evaluation.forces.double().cpu().numpy(),
            "stress": full_3x3_to_voigt_6_stress(evaluation.stresses[0].double().cpu().numpy()),
        }
