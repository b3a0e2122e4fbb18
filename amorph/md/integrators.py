"""NVT integrators over a batch of replicas, each with its own temperature, time step and
thermostat.

Both follow ASE's integrators step for step (``ase.md.langevin.Langevin`` with ``fixcm=False`` and
``ase.md.nose_hoover_chain.NoseHooverChainNVT``), in ASE units (eV, Å, amu), in float64, so their
thermostat states are interchangeable with those of the ASE engine. The Langevin noise of each
replica comes from its own numpy generator, drawn as ASE draws it, so a replica's trajectory does
not depend on the batch it runs in.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np
import torch
from ase import units
from torch import Tensor

from amorph.md.engine import CHAIN_LENGTH, ThermostatState

# Suzuki–Yoshida weights of the fourth-order factorisation of the chain propagator (as in ASE)
FOURTH_ORDER = (
    1 / (2 - 2 ** (1 / 3)),
    -(2 ** (1 / 3)) / (2 - 2 ** (1 / 3)),
    1 / (2 - 2 ** (1 / 3)),
)

Forces = Callable[[Tensor], Tensor]


def per_replica_sum(values: Tensor, owner: Tensor, n_replicas: int) -> Tensor:
    """Sum of per-atom ``values`` (N,) over the atoms of each replica: (B,)."""
    return values.new_zeros(n_replicas).index_add_(0, owner, values)


class BatchedIntegrator(ABC):
    """Positions (N, 3) and momenta (N, 3) of all replicas, advanced one step at a time.

    ``temperatures_K``, ``time_steps_fs`` and ``damping_fs`` (the thermostat's time) have one entry
    per replica.
    """

    kind: str

    def __init__(
        self,
        masses: Tensor,
        owner: Tensor,
        counts: list[int],
        temperatures_K: list[float],
        time_steps_fs: list[float],
        damping_fs: list[float],
    ):
        self.owner, self.counts = owner, counts
        self.masses = masses[:, None]
        self.kT, self.dt, self.damping, self.n_atoms = (
            torch.tensor(values, dtype=masses.dtype, device=masses.device) * unit
            for values, unit in (
                (temperatures_K, units.kB),
                (time_steps_fs, units.fs),
                (damping_fs, units.fs),
                (counts, 1),
            )
        )

    @property
    def n_replicas(self) -> int:
        """Number of replicas."""
        return len(self.counts)

    def kinetic_energies(self, momenta: Tensor) -> Tensor:
        """Kinetic energy (B,) of each replica in eV."""
        return 0.5 * per_replica_sum((momenta**2 / self.masses).sum(1), self.owner, self.n_replicas)

    @abstractmethod
    def step(
        self, positions: Tensor, momenta: Tensor, forces: Tensor, compute_forces: Forces
    ) -> Tensor:
        """Advance ``positions`` and ``momenta`` in place by one step; return the new forces."""

    @abstractmethod
    def state(self, replica: int) -> ThermostatState:
        """The thermostat state of one replica."""


class BatchedLangevin(BatchedIntegrator):
    """ASE's Langevin propagator (Vanden-Eijnden & Ciccotti 2006), friction 1/damping, per replica.

    ``rngs`` are the replicas' generators; their states are the thermostat's state.
    """

    kind = "langevin"

    def __init__(self, *args, rngs: list[np.random.Generator], **kwargs):
        super().__init__(*args, **kwargs)
        self.rngs = rngs
        dt, friction, kT = (
            values[self.owner][:, None] for values in (self.dt, 1 / self.damping, self.kT)
        )
        sigma = torch.sqrt(2 * kT * friction / self.masses)
        self.c1 = dt / 2 - dt * dt * friction / 8
        self.c2 = dt * friction / 2 - dt * dt * friction * friction / 8
        self.c3 = torch.sqrt(dt) * sigma / 2 - dt**1.5 * friction * sigma / 8
        self.c5 = dt**1.5 * sigma / (2 * np.sqrt(3))
        self.c4 = friction / 2 * self.c5
        self.time_step = dt

    def _noise(self, like: Tensor) -> tuple[Tensor, Tensor]:
        xi, eta = [], []
        for rng, n in zip(self.rngs, self.counts, strict=True):
            xi.append(rng.standard_normal(size=(n, 3)))
            eta.append(rng.standard_normal(size=(n, 3)))
        xi_t, eta_t = (torch.from_numpy(np.concatenate(parts)).to(like) for parts in (xi, eta))
        return xi_t, eta_t

    def step(
        self, positions: Tensor, momenta: Tensor, forces: Tensor, compute_forces: Forces
    ) -> Tensor:
        """One step of ASE's Langevin scheme, with noise drawn from each replica's generator."""
        xi, eta = self._noise(positions)
        random_position = self.c5 * eta
        random_velocity = self.c3 * xi - self.c4 * eta
        velocities = momenta / self.masses
        velocities += self.c1 * forces / self.masses - self.c2 * velocities + random_velocity
        positions += self.time_step * velocities + random_position
        forces = compute_forces(positions)
        velocities += self.c1 * forces / self.masses - self.c2 * velocities + random_velocity
        momenta.copy_(velocities * self.masses)
        return forces

    def state(self, replica: int) -> ThermostatState:
        """The state of the replica's noise generator."""
        return ThermostatState.langevin(self.rngs[replica])


class BatchedNoseHooverChain(BatchedIntegrator):
    """ASE's Nosé–Hoover chain (length 3, one fourth-order Suzuki–Yoshida loop) for every replica.

    The chain variables are a few numbers per replica, so they are propagated with numpy on the
    host; only each replica's kinetic energy goes there and one momentum scale factor comes back.
    ``states`` are the replicas' chain states.
    """

    kind = "nose-hoover"

    def __init__(self, *args, states: list[ThermostatState], **kwargs):
        super().__init__(*args, **kwargs)
        self.eta = np.array([state.eta for state in states], dtype=float).reshape(-1, CHAIN_LENGTH)
        self.p_eta = np.array([state.p_eta for state in states], dtype=float).reshape(
            -1, CHAIN_LENGTH
        )
        self.kT_host, self.n_atoms_host = (
            self.kT.cpu().numpy(),
            np.asarray(self.counts, dtype=float),
        )
        self.half_step_host = self.dt.cpu().numpy() / 2
        self.Q = np.repeat(
            (self.kT_host * self.damping.cpu().numpy() ** 2)[:, None], CHAIN_LENGTH, axis=1
        )
        self.Q[:, 0] *= 3 * self.n_atoms_host

    def step(
        self, positions: Tensor, momenta: Tensor, forces: Tensor, compute_forces: Forces
    ) -> Tensor:
        """Velocity Verlet between two half-step chain propagations."""
        dt = self.dt[self.owner][:, None]
        self._thermostat(momenta)
        momenta += dt / 2 * forces
        positions += dt * momenta / self.masses
        forces = compute_forces(positions)
        momenta += dt / 2 * forces
        self._thermostat(momenta)
        return forces

    def _thermostat(self, momenta: Tensor) -> None:
        """The chain propagator over half a time step; scales each replica's momenta in place."""
        twice_kinetic = 2 * self.kinetic_energies(momenta).cpu().numpy()
        scale = np.ones(self.n_replicas)
        for weight in FOURTH_ORDER:
            delta = weight * self.half_step_host
            for j in reversed(range(CHAIN_LENGTH)):
                self._update_p_eta(j, twice_kinetic, delta)
            self.eta += delta[:, None] * self.p_eta / self.Q
            factor = np.exp(-delta * self.p_eta[:, 0] / self.Q[:, 0])
            scale *= factor
            twice_kinetic *= factor**2
            for j in range(CHAIN_LENGTH):
                self._update_p_eta(j, twice_kinetic, delta)
        momenta *= torch.from_numpy(scale).to(momenta)[self.owner][:, None]

    def _update_p_eta(self, j: int, twice_kinetic: np.ndarray, delta: np.ndarray) -> None:
        p_eta, Q = self.p_eta, self.Q
        last = j == CHAIN_LENGTH - 1
        if not last:
            p_eta[:, j] *= np.exp(-delta / 4 * p_eta[:, j + 1] / Q[:, j + 1])
        if j == 0:
            force = twice_kinetic - 3 * self.n_atoms_host * self.kT_host
        else:
            force = p_eta[:, j - 1] ** 2 / Q[:, j - 1] - self.kT_host
        p_eta[:, j] += delta / 2 * force
        if not last:
            p_eta[:, j] *= np.exp(-delta / 4 * p_eta[:, j + 1] / Q[:, j + 1])

    def state(self, replica: int) -> ThermostatState:
        """The replica's chain positions and momenta."""
        return ThermostatState.chain(self.eta[replica], self.p_eta[replica])


INTEGRATORS = {cls.kind: cls for cls in (BatchedLangevin, BatchedNoseHooverChain)}
