"""Cheap potentials for testing the MD machinery (imported by tests, and by name as engine
factories): ASE calculators, and the same argon as a batched torch potential."""

import torch
from ase.calculators.lj import LennardJones

from amorph.constants import EV_A3_TO_GPA
from amorph.md.potential import BatchedPotential
from amorph.potentials.graph import neighbor_list

ARGON = {"sigma": 3.4, "epsilon": 0.0104, "rc": 8.0, "smooth": True}


def argon(pressure_offset_GPa: float = 0.0, **overrides: float) -> LennardJones:
    """Lennard-Jones argon (Rahman's parameters), smoothly cut at 8 Å; ``overrides`` change them.

    ``pressure_offset_GPa`` adds ``-ΔP V`` to the energy: the same forces, so the same ensemble at
    every volume, with a virial pressure higher by exactly ΔP.
    """
    if pressure_offset_GPa:
        return OffsetArgon(pressure_offset_GPa / EV_A3_TO_GPA, **{**ARGON, **overrides})
    return LennardJones(**{**ARGON, **overrides})


class OffsetArgon(LennardJones):
    """Argon whose energy has an extra ``-offset V`` (offset in eV/Å³)."""

    def __init__(self, offset: float, **parameters: float):
        super().__init__(**parameters)
        self.offset = offset

    def calculate(self, *args, **kwargs):
        super().calculate(*args, **kwargs)
        volume = self.atoms.get_volume()
        self.results["energy"] -= self.offset * volume
        self.results["free_energy"] -= self.offset * volume
        if "stress" in self.results:
            self.results["stress"][:3] -= self.offset


class KilledAfter(LennardJones):
    """Argon that raises after ``calls`` evaluations, standing in for a job killed mid-run."""

    def __init__(self, calls: int):
        super().__init__(**ARGON)
        self.remaining = calls

    def calculate(self, *args, **kwargs):
        if self.remaining <= 0:
            raise KeyboardInterrupt("killed")
        self.remaining -= 1
        super().calculate(*args, **kwargs)


class NaNAfter(LennardJones):
    """Argon whose energy turns NaN after ``calls`` evaluations."""

    def __init__(self, calls: int):
        super().__init__(**ARGON)
        self.remaining = calls

    def calculate(self, *args, **kwargs):
        super().calculate(*args, **kwargs)
        self.remaining -= 1
        if self.remaining < 0:
            self.results["energy"] = float("nan")


def exploding_argon() -> LennardJones:
    """Argon with a well 10^4 times too deep: any random packing heats past the blow-up limit."""
    return LennardJones(**{**ARGON, "epsilon": 104.0})


class TorchArgon(BatchedPotential):
    """``argon()`` as a batched potential (float64), for the batched engine."""

    def __init__(self):
        super().__init__(
            torch.nn.Linear(1, 1).double()
        )  # a parameter-carrying stand-in for a model
        self.calls = 0

    def energies(self, systems, positions, cells):
        self.calls += 1
        sigma, epsilon, rc = ARGON["sigma"], ARGON["epsilon"], ARGON["rc"]
        ro = 0.66 * rc
        edges = neighbor_list(systems, rc)
        r2 = (edges.vectors(positions, cells, systems.owner) ** 2).sum(1)
        c6 = (sigma**2 / r2) ** 3
        smooth = (rc**2 - r2) ** 2 * (rc**2 + 2 * r2 - 3 * ro**2) / (rc**2 - ro**2) ** 3
        pair = 2 * epsilon * (c6**2 - c6) * torch.where(r2 < ro**2, torch.ones_like(r2), smooth)
        return pair.new_zeros(systems.n_replicas).index_add(0, systems.owner[edges.center], pair)


class TorchArgonKilledAfter(TorchArgon):
    """``TorchArgon`` that raises after ``calls`` evaluations, standing in for a job killed
    mid-run."""

    def __init__(self, calls: int):
        super().__init__()
        self.remaining = calls

    def energies(self, *args):
        if self.remaining <= 0:
            raise KeyboardInterrupt("killed")
        self.remaining -= 1
        return super().energies(*args)
