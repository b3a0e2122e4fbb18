"""The batched engine: many MD tasks advanced together, one model call per step for all of them.

Each task keeps the guarantees of the ASE engine (:mod:`amorph.md.ase`), whose per-run file
handling it reuses: chunks with a checkpoint after each, resume in the same directory, a completed
run not repeated, blow-ups detected at the step they happen. Tasks join a running batch as others
finish, so a call with more tasks than fit at once keeps the batch full.
"""

from __future__ import annotations

import math
import time
from collections import deque

import numpy as np
import torch
from ase import units
from tqdm.auto import tqdm

from amorph.errors import EngineError, InputError, MDInstabilityError
from amorph.md.ase import ASEEngine, _restore_thermostat, _Run, _thermostat_state
from amorph.md.engine import EngineSpec, MDResult, MDTask, import_factory
from amorph.md.integrators import INTEGRATORS, BatchedIntegrator
from amorph.potentials.base import BatchedPotential, PotentialCalculator
from amorph.potentials.graph import Systems
from amorph.trajectory import Trajectory

CPU_ATOMS_PER_THREAD = (
    64  # on a CPU a larger batch gains little: about one 100-atom replica per 2 threads
)
GPU_MEMORY_FRACTION = 0.6  # of the free device memory, for the activations of one batch


class BatchedEngine(ASEEngine):
    """MD for many replicas at once with a :class:`BatchedPotential`.

    ``max_atoms`` bounds the atoms in one batch; by default it follows from the free GPU memory
    (measured on the first replica) or, on a CPU, from the number of threads. Relaxations and static
    energies go through the same potential as an ASE calculator (:class:`PotentialCalculator`).
    """

    batches = True

    def __init__(self, potential: BatchedPotential, name: str, max_atoms: int | None = None):
        supported = (
            None if potential.supported_numbers is None else set(potential.supported_numbers)
        )
        super().__init__(PotentialCalculator(potential), name, supported)
        self.potential = potential
        self.max_atoms = max_atoms

    def run_one(self, task: MDTask) -> MDResult:
        return self.run([task])[0]

    def run(self, tasks: list[MDTask]) -> list[MDResult]:
        files = [(task.work_dir.resolve(), task.label) for task in tasks]
        if len(set(files)) < len(files):
            raise InputError(
                "tasks run together need distinct work_dir or label: their files would collide"
            )
        replicas = [_Replica(self, task) for task in tasks]
        results = [replica._load_finished() for replica in replicas]
        failures: list[MDInstabilityError] = []
        for kind in INTEGRATORS:
            group = [
                r
                for r, done in zip(replicas, results, strict=True)
                if done is None and r.settings.thermostat == kind
            ]
            if group:
                failures += self._run_group(group)
        if failures:
            raise failures[0]
        return [done or replica.result for replica, done in zip(replicas, results, strict=True)]

    def _run_group(self, replicas: list[_Replica]) -> list[MDInstabilityError]:
        """Run replicas of one thermostat, as many at a time as the atom budget allows."""
        pending, active, failures = deque(replicas), [], []
        total = sum(r.task.steps - r.step for r in replicas)
        with tqdm(
            total=total, desc=f"{self.name} batch", unit="step", disable=None, leave=False
        ) as progress:
            while pending or active:
                budget = self.max_atoms or self._atom_budget(pending[0] if pending else active[0])
                while pending and (
                    not active or sum(r.n_atoms for r in active) + pending[0].n_atoms <= budget
                ):
                    replica = pending.popleft()
                    replica.start()
                    active.append(replica)
                batch = _Batch(self, active)
                while all(r.running for r in active):
                    batch.step()
                    progress.update(len(active))
                batch.hand_back()
                failures += [r.failure for r in active if r.failure is not None]
                active = [r for r in active if r.running]
        return failures

    def _atom_budget(self, replica: _Replica) -> int:
        device = self.potential.device
        if device.type != "cuda":
            return CPU_ATOMS_PER_THREAD * torch.get_num_threads()
        replica.start()
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        self.potential(_Batch.systems_of([replica], device))
        per_atom = (torch.cuda.max_memory_allocated(device) - before) / replica.n_atoms
        free, _ = torch.cuda.mem_get_info(device)
        self.max_atoms = max(replica.n_atoms, int(GPU_MEMORY_FRACTION * free / per_atom))
        return self.max_atoms


def potential_factory_engine(spec: EngineSpec) -> BatchedEngine:
    """The batched engine around the potential returned by ``spec.model`` (``package.module:function``,
    called with ``spec.options`` but ``max_atoms``, which bounds the batch)."""
    options = dict(spec.options)
    max_atoms = options.pop("max_atoms", None)
    potential = import_factory(spec.model, "potential")(**options)
    if not isinstance(potential, BatchedPotential):
        raise EngineError(
            f"{spec.model} returned {type(potential).__name__}, not a BatchedPotential"
        )
    return BatchedEngine(potential, name=spec.model, max_atoms=max_atoms)


class _Replica(_Run):
    """One task in a batch: its ASE run set-up and files, its frames, and its place in the batch."""

    def __init__(self, engine: BatchedEngine, task: MDTask):
        super().__init__(engine, task)
        self.n_atoms = len(task.state.structure)
        self.n_chunks = math.ceil(task.steps / self.chunk_steps)
        self.step = 0
        self.atoms = None
        self.forces = None
        self.failure: MDInstabilityError | None = None
        self.result: MDResult | None = None
        self.force_calls, self.force_seconds = 0, 0.0

    @property
    def running(self) -> bool:
        return self.result is None and self.failure is None

    def start(self) -> None:
        """Positions, velocities and thermostat at the start or at the last checkpoint (once)."""
        if self.atoms is not None:
            return
        self.started = time.perf_counter()
        self.atoms, self.dyn, self.rng, done_chunks = self._start()
        self.step = done_chunks * self.chunk_steps
        self.thermostat = _thermostat_state(self.dyn, self.settings.thermostat)
        self.frames: dict[str, list] = {
            k: []
            for k in (
                "positions",
                "energies",
                "temperatures",
                "virial_pressures",
                "kinetic_pressures",
                "time_fs",
            )
        }

    def update(self, positions: np.ndarray, momenta: np.ndarray, thermostat: dict) -> None:
        """Carry the batch's state of this replica into its ASE atoms and dynamics."""
        self.atoms.set_positions(positions)
        self.atoms.set_momenta(momenta)
        self.thermostat = thermostat
        _restore_thermostat(self.dyn, self.rng, thermostat)

    def record(
        self,
        positions: np.ndarray | None,
        energy: float,
        temperature: float,
        virial: float,
        kinetic: float,
    ) -> None:
        """Check the step just taken for a blow-up and store it if it is a sample."""
        self.step += 1
        if (
            not (math.isfinite(energy) and math.isfinite(temperature))
            or temperature > self.settings.blowup_temperature_factor * self.task.temperature
        ):
            self.failure = MDInstabilityError(
                f"MD at {self.task.temperature:g} K became unstable at step {self.step}: "
                f"temperature {temperature:.3g} K, energy {energy:.6g} eV ({self.task.label} in {self.task.work_dir})"
            )
            return
        if self.step % self.settings.sample_interval == 0:
            for key, value in zip(
                self.frames,
                (positions, energy, temperature, virial, kinetic, self.step * self.dt_fs),
                strict=True,
            ):
                self.frames[key].append(value)

    @property
    def at_chunk_end(self) -> bool:
        return self.step % self.chunk_steps == 0 or self.step == self.task.steps

    def end_chunk(self) -> None:
        """Write the chunk and a checkpoint (state already carried in by :meth:`update`); finish at the end."""
        f = self.frames
        cell = self.atoms.cell.array
        Trajectory(
            numbers=self.atoms.numbers,
            positions=np.array(f["positions"]),
            cells=np.broadcast_to(cell, (len(f["positions"]), 3, 3)),
            time_fs=np.array(f["time_fs"]),
            energies=np.array(f["energies"]),
            temperatures=np.array(f["temperatures"]),
            virial_pressures=np.array(f["virial_pressures"]),
            kinetic_pressures=np.array(f["kinetic_pressures"]),
            metadata=dict(self.metadata),
        ).save(self.task.chunk_path(self._chunk_index()))
        for values in f.values():
            values.clear()
        self._save_checkpoint(self.atoms, self.dyn, self.rng, self._chunk_index() + 1)
        if self.step == self.task.steps:
            self._finish()

    def _chunk_index(self) -> int:
        return (self.step - 1) // self.chunk_steps

    def _finish(self) -> None:
        trajectory = Trajectory.concatenate(
            [Trajectory.load(self.task.chunk_path(i)) for i in range(self.n_chunks)]
        )
        trajectory.metadata["complete"] = True
        trajectory.metadata["final_state"] = self._state_dict(self.atoms, self.dyn)
        trajectory.save(self.final_path)
        for i in range(self.n_chunks):
            self.task.chunk_path(i).unlink(missing_ok=True)
        self.checkpoint_path.unlink(missing_ok=True)
        self.result = self._result(
            trajectory,
            n_force_calls=self.force_calls,
            force_time_s=self.force_seconds,
            wall_time_s=time.perf_counter() - self.started,
        )


class _Batch:
    """The running replicas as one set of tensors, stepped together until one of them finishes."""

    def __init__(self, engine: BatchedEngine, replicas: list[_Replica]):
        self.engine, self.replicas = engine, replicas
        potential = engine.potential
        device = potential.device
        self.systems = self.systems_of(replicas, device)
        self.positions = self.systems.positions
        self.momenta = torch.from_numpy(
            np.concatenate([r.atoms.get_momenta() for r in replicas])
        ).to(device)
        masses = torch.from_numpy(np.concatenate([r.atoms.get_masses() for r in replicas])).to(
            device
        )
        settings = [r.settings for r in replicas]
        kind = settings[0].thermostat
        state = (
            {"rngs": [r.rng for r in replicas]}
            if kind == "langevin"
            else {"states": [r.thermostat for r in replicas]}
        )
        self.integrator: BatchedIntegrator = INTEGRATORS[kind](
            masses,
            self.systems.owner,
            self.systems.counts,
            temperatures_K=[r.task.temperature for r in replicas],
            time_steps_fs=[r.dt_fs for r in replicas],
            damping_fs=[s.thermostat_time_fs for s in settings],
            **state,
        )
        self.forces = self._initial_forces()

    @staticmethod
    def systems_of(replicas: list[_Replica], device: torch.device) -> Systems:
        return Systems.from_atoms([r.atoms for r in replicas], device)

    def _initial_forces(self) -> torch.Tensor:
        """Forces kept from the previous batch, evaluated only for replicas that have none."""
        new = [i for i, r in enumerate(self.replicas) if r.forces is None]
        if new:
            evaluation = self._evaluate(
                self.systems_of([self.replicas[i] for i in new], self.positions.device),
                [self.replicas[i] for i in new],
            )
            for i, forces in zip(
                new,
                torch.split(evaluation.forces, [self.replicas[i].n_atoms for i in new]),
                strict=True,
            ):
                self.replicas[i].forces = forces.double()
        return torch.cat([r.forces for r in self.replicas])

    def _evaluate(self, systems: Systems, replicas: list[_Replica]):
        start = time.perf_counter()
        evaluation = self.engine.potential(systems)
        if systems.positions.device.type == "cuda":
            torch.cuda.synchronize(systems.positions.device)
        share = (time.perf_counter() - start) / len(replicas)
        for replica in replicas:
            replica.force_calls += 1
            replica.force_seconds += share
        return evaluation

    def step(self) -> None:
        evaluations = []

        def compute_forces(positions: torch.Tensor) -> torch.Tensor:
            evaluations.append(self._evaluate(self.systems, self.replicas))
            return evaluations[-1].forces.double()

        integrator = self.integrator
        self.forces = integrator.step(self.positions, self.momenta, self.forces, compute_forces)
        evaluation = evaluations[-1]
        kinetic = integrator.kinetic_energies(self.momenta)
        temperatures = 2 * kinetic / (3 * integrator.n_atoms * units.kB)
        volumes = self.systems.volumes
        virial = -evaluation.stresses.diagonal(dim1=1, dim2=2).sum(1).double() / 3 / units.GPa
        thermo = (
            torch.stack(
                [
                    evaluation.energies.double(),
                    temperatures,
                    virial,
                    2 * kinetic / (3 * volumes) / units.GPa,
                ]
            )
            .cpu()
            .numpy()
        )
        sampled = any((r.step + 1) % r.settings.sample_interval == 0 for r in self.replicas)
        positions = self.positions.to("cpu", copy=True).numpy() if sampled else None
        ends = np.cumsum(self.systems.counts)
        for b, replica in enumerate(self.replicas):
            replica.record(
                None if positions is None else positions[ends[b] - replica.n_atoms : ends[b]],
                *thermo[:, b],
            )
        if any(r.at_chunk_end for r in self.replicas):
            self.hand_back()
            for replica in self.replicas:
                if replica.at_chunk_end and replica.failure is None:
                    replica.end_chunk()

    def hand_back(self) -> None:
        """Hand each replica its current positions, momenta, forces and thermostat state (to write a
        checkpoint, or to run on in another batch)."""
        sizes = self.systems.counts
        for b, (replica, positions, momenta, forces) in enumerate(
            zip(
                self.replicas,
                torch.split(self.positions, sizes),
                torch.split(self.momenta, sizes),
                torch.split(self.forces, sizes),
                strict=True,
            )
        ):
            replica.update(positions.cpu().numpy(), momenta.cpu().numpy(), self.integrator.state(b))
            replica.forces = forces
