"""amorph's batched potentials as torch-sim models (the ``torchsim`` extra, Python ≥ 3.12).

:class:`TorchSimModel` wraps any :class:`~amorph.md.potential.BatchedPotential` in
torch-sim's ``ModelInterface``, so that torch-sim's integrators, optimizers and autobatching drive
CHGNet and M3GNet as amorph evaluates them; :func:`chgnet_model` and :func:`m3gnet_model` load them
as amorph's batched engines do. No other amorph module imports this one or ``torch_sim``.
"""

from __future__ import annotations

import torch
from torch_sim.models.interface import ModelInterface
from torch_sim.state import SimState

from amorph.errors import InputError
from amorph.md.engine import EngineSpec
from amorph.md.potential import BatchedPotential, Systems
from amorph.potentials.chgnet import CHGNetPotential, load_chgnet_model
from amorph.potentials.m3gnet import DEFAULT_M3GNET_MODEL, load_m3gnet_potential


class TorchSimModel(ModelInterface):
    """A batched amorph potential behind torch-sim's model interface.

    ``forward`` returns ``energy`` (B,) in eV, ``forces`` (N, 3) in eV/Å and ``stress`` (B, 3, 3) in
    eV/Å³ with ASE's sign ((1/V) dE/dε), which is torch-sim's convention, in the state's dtype; the
    potential itself computes in the dtype of its parameters. States must be periodic along all
    three axes or none: a non-periodic system is evaluated in a box ``vacuum`` Å wider than the
    system along each axis (keep it above the model's cutoff), and its stress is zero.
    """

    def __init__(
        self, potential: BatchedPotential, dtype: torch.dtype = torch.float64, vacuum: float = 20.0
    ):
        super().__init__()
        self.potential = potential
        self.vacuum = vacuum
        self._device = potential.device
        self._dtype = dtype
        self._compute_forces = True
        self._compute_stress = True
        self._memory_scales_with = (
            "n_atoms_x_density"  # a radial cutoff: neighbours grow with density
        )

    def forward(self, state: SimState, **kwargs) -> dict[str, torch.Tensor]:
        """``energy``, ``forces`` and ``stress`` of ``state``, as the class docstring says."""
        self._check_elements(state.atomic_numbers)
        periodic = bool(state.pbc.all())
        if not periodic and bool(state.pbc.any()):
            raise InputError("amorph potentials need states periodic along all three axes or none")
        systems = Systems(
            positions=state.positions,
            cells=state.row_vector_cell if periodic else self._vacuum_boxes(state),
            numbers=state.atomic_numbers,
            counts=state.n_atoms_per_system.tolist(),
        )
        with (
            torch.enable_grad()
        ):  # forces and stresses are gradients, also when called under no_grad
            evaluation = self.potential(systems)
        stress = evaluation.stresses if periodic else torch.zeros_like(evaluation.stresses)
        return {
            "energy": evaluation.energies.to(state.dtype),
            "forces": evaluation.forces.to(state.dtype),
            "stress": stress.to(state.dtype),
        }

    def _check_elements(self, numbers: torch.Tensor) -> None:
        supported = self.potential.supported_numbers
        if supported is None:
            return
        missing = sorted(set(torch.unique(numbers).tolist()) - set(supported))
        if missing:
            raise InputError(
                f"potential {self.potential.name} has no parameters for atomic number(s) "
                f"{', '.join(map(str, missing))}"
            )

    def _vacuum_boxes(self, state: SimState) -> torch.Tensor:
        """Orthorhombic cells (B, 3, 3) as rows, ``vacuum`` Å longer than each system's extent."""
        index = state.system_idx[:, None].expand(-1, 3)
        empty = state.positions.new_zeros(state.n_systems, 3)
        highest = empty.scatter_reduce(0, index, state.positions, "amax", include_self=False)
        lowest = empty.scatter_reduce(0, index, state.positions, "amin", include_self=False)
        return torch.diag_embed(highest - lowest + self.vacuum)


def chgnet_model(
    model: str | None = None, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float64
) -> TorchSimModel:
    """CHGNet as a torch-sim model; ``model``: a CHGNet version (default "0.3.0") or checkpoint."""
    spec = EngineSpec("chgnet", model=model, device=str(device))
    return TorchSimModel(CHGNetPotential(load_chgnet_model(spec), device=device), dtype=dtype)


def m3gnet_model(
    model: str = DEFAULT_M3GNET_MODEL,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float64,
) -> TorchSimModel:
    """M3GNet (matgl) as a torch-sim model.

    ``model`` is a pretrained model name or a directory written by ``Potential.save``.
    """
    from amorph.potentials.m3gnet import M3GNetPotential  # imports matgl, the m3gnet extra

    return TorchSimModel(M3GNetPotential(load_m3gnet_potential(model), device=device), dtype=dtype)
