"""The batched engine: many MD tasks advanced together, one model call per step for all of them.

Each task has the run life of every engine (:mod:`amorph.md.lifecycle`): chunks with a checkpoint
after each, resume in the same directory, a completed run not repeated, blow-ups detected at the
step they happen. Tasks join a running batch as others finish, so a call with more tasks than fit at
once keeps the batch full.
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path

import numpy as np
import torch
from ase import units
from pymatgen.core import Structure
from tqdm.auto import tqdm

from amorph.constants import EV_A3_TO_GPA
from amorph.errors import EngineError, InputError, MDInstabilityError
from amorph.md.ase import ASEEngine
from amorph.md.engine import (
    Engine,
    EngineSpec,
    MDResult,
    MDTask,
    RelaxResult,
    SinglePoint,
    import_factory,
)
from amorph.md.integrators import INTEGRATORS, BatchedIntegrator
from amorph.md.lifecycle import Frames, RunFiles, RunState, instability, start_state
from amorph.potentials.base import BatchedPotential, PotentialCalculator
from amorph.potentials.graph import Systems

CPU_ATOMS_PER_THREAD = (
    64  # on a CPU a larger batch gains little: about one 100-atom replica per 2 threads
)
GPU_MEMORY_FRACTION = 0.6  # of the free device memory, for the activations of one batch


class BatchedEngine(Engine):
    """MD for many replicas at once with a :class:`BatchedPotential`.

    ``max_atoms`` bounds the atoms in one batch; by default it follows from the free GPU memory
    (measured on the first replica) or, on a CPU, from the number of threads. Relaxations, static
    energies and the check of elements go through an :class:`~amorph.md.ase.ASEEngine` around the
    same potential as an ASE calculator (:class:`PotentialCalculator`).
    """

    batches = True

    def __init__(self, potential: BatchedPotential, name: str, max_atoms: int | None = None):
        self.name = name
        self.potential = potential
        self.max_atoms = max_atoms
        supported = (
            None if potential.supported_numbers is None else set(potential.supported_numbers)
        )
        self.calculator_engine = ASEEngine(PotentialCalculator(potential), name, supported)
        self.calculator = self.calculator_engine.calculator

    def check_elements(self, symbols: list[str]) -> None:
        self.calculator_engine.check_elements(symbols)

    def relax(
        self,
        structure: Structure,
        work_dir: Path | None = None,
        relax_cell: bool = True,
        fmax: float = 0.05,
        max_steps: int = 200,
    ) -> RelaxResult:
        """FIRE through :meth:`ASEEngine.relax <amorph.md.ase.ASEEngine.relax>`."""
        return self.calculator_engine.relax(structure, work_dir, relax_cell, fmax, max_steps)

    def static(self, structure: Structure, work_dir: Path | None = None) -> float:
        return self.calculator_engine.static(structure, work_dir)

    def evaluate(self, structures: list[Structure]) -> list[SinglePoint]:
        """Single points of ``structures``, as many per model call as the atom budget allows."""
        from pymatgen.io.ase import AseAtomsAdaptor

        budget = self.max_atoms or CPU_ATOMS_PER_THREAD * torch.get_num_threads()
        points, batch = [], []
        for i, structure in enumerate(structures):
            batch.append(AseAtomsAdaptor.get_atoms(structure))
            size = sum(len(atoms) for atoms in batch)
            last = i == len(structures) - 1
            if not last and size + len(structures[i + 1]) <= budget:
                continue
            evaluation = self.potential(Systems.from_atoms(batch, self.potential.device))
            forces = torch.split(evaluation.forces, [len(atoms) for atoms in batch])
            for b, f in enumerate(forces):
                points.append(
                    SinglePoint(
                        float(evaluation.energies[b]),
                        f.double().cpu().numpy(),
                        evaluation.stresses[b].double().cpu().numpy(),
                    )
                )
            batch = []
        return points

    def run_one(self, task: MDTask) -> MDResult:
        return self.run([task])[0]

    def run(self, tasks: list[MDTask]) -> list[MDResult]:
        files = [(task.work_dir.resolve(), task.label) for task in tasks]
        if len(set(files)) < len(files):
            raise InputError(
                "tasks run together need distinct work_dir or label: their files would collide"
            )
        replicas = [_Replica(self.name, task) for task in tasks]
        results = [replica.files.finished() for replica in replicas]
        failures: list[MDInstabilityError] = []
        for kind in INTEGRATORS:
            group = [
                r
                for r, done in zip(replicas, results, strict=True)
                if done is None and r.task.settings.thermostat == kind
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
                batch = _Batch(self.potential, active)
                while all(r.running for r in active):
                    batch.step()
                    progress.update(len(active))
                batch.hand_back(range(len(active)))
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
        self.potential(_systems([replica], device))
        per_atom = (torch.cuda.max_memory_allocated(device) - before) / replica.n_atoms
        free, _ = torch.cuda.mem_get_info(device)
        self.max_atoms = max(replica.n_atoms, int(GPU_MEMORY_FRACTION * free / per_atom))
        return self.max_atoms


def potential_factory_engine(spec: EngineSpec) -> BatchedEngine:
    """The batched engine around the potential returned by ``spec.model``
    (``package.module:function``, called with ``spec.options`` but ``max_atoms``, which bounds the
    batch)."""
    options = dict(spec.options)
    max_atoms = options.pop("max_atoms", None)
    potential = import_factory(spec.model, "potential")(**options)
    if not isinstance(potential, BatchedPotential):
        raise EngineError(
            f"{spec.model} returned {type(potential).__name__}, not a BatchedPotential"
        )
    return BatchedEngine(potential, name=spec.model, max_atoms=max_atoms)


class _Replica:
    """One task in a batch: its files, its state as plain arrays, its frames and its counters."""

    def __init__(self, engine_name: str, task: MDTask):
        self.task = task
        self.files = RunFiles.integrated(task, engine_name)
        self.n_atoms = len(task.state.structure)
        self.dt_fs = task.time_step_fs
        self.interval = task.settings.sample_interval
        self.state: RunState | None = None  # set by start()
        self.step = 0
        self.forces: torch.Tensor | None = None  # kept between batches
        self.frames = Frames()
        self.failure: MDInstabilityError | None = None
        self.result: MDResult | None = None
        self.force_calls, self.force_seconds, self.started = 0, 0.0, 0.0

    @property
    def running(self) -> bool:
        return self.result is None and self.failure is None

    def start(self) -> None:
        """Positions, momenta and thermostat at the start or at the last checkpoint (once)."""
        if self.state is not None:
            return
        self.started = time.perf_counter()
        self.state = start_state(self.task, self.files)
        self.step = self.state.chunks_done * self.files.chunk_steps

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
        self.failure = instability(self.task, self.step, temperature, energy)
        if self.failure is None and self.step % self.interval == 0:
            self.frames.add(positions, self.step * self.dt_fs, energy, temperature, virial, kinetic)

    @property
    def at_chunk_end(self) -> bool:
        return self.step % self.files.chunk_steps == 0 or self.step == self.task.steps

    def end_chunk(self) -> None:
        """Write the chunk and a checkpoint (of the state handed back by the batch); finish at the
        end."""
        state, files = self.state, self.files
        state.chunks_done = (self.step - 1) // files.chunk_steps + 1
        files.save_chunk(
            state.chunks_done - 1, self.frames.pop_trajectory(state, files.metadata), state
        )
        if self.step == self.task.steps:
            self.result = files.result(
                files.finish(state.final_state()),
                n_force_calls=self.force_calls,
                force_time_s=self.force_seconds,
                wall_time_s=time.perf_counter() - self.started,
            )


def _systems(replicas: list[_Replica], device: torch.device) -> Systems:
    """The replicas' current positions, cells and atoms as one batch on ``device``."""
    return Systems.from_arrays(
        [r.state.positions for r in replicas],
        [r.state.cell for r in replicas],
        [r.state.numbers for r in replicas],
        device,
    )


class _Batch:
    """The running replicas as one set of tensors, stepped together until one of them finishes."""

    def __init__(self, potential: BatchedPotential, replicas: list[_Replica]):
        self.potential, self.replicas = potential, replicas
        device = potential.device
        self.systems = _systems(replicas, device)
        self.positions = self.systems.positions
        states = [r.state for r in replicas]
        self.momenta, masses = (
            torch.from_numpy(np.concatenate(arrays)).to(device)
            for arrays in ([s.momenta for s in states], [s.masses for s in states])
        )
        settings = [r.task.settings for r in replicas]
        kind = settings[0].thermostat
        thermostat = (
            {"rngs": [s.rng for s in states]}
            if kind == "langevin"
            else {"states": [s.thermostat for s in states]}
        )
        self.integrator: BatchedIntegrator = INTEGRATORS[kind](
            masses,
            self.systems.owner,
            self.systems.counts,
            temperatures_K=[r.task.temperature for r in replicas],
            time_steps_fs=[r.dt_fs for r in replicas],
            damping_fs=[s.thermostat_time_fs for s in settings],
            **thermostat,
        )
        self.forces = self._initial_forces()

    def _initial_forces(self) -> torch.Tensor:
        """Forces kept from the previous batch, evaluated only for replicas that have none."""
        new = [r for r in self.replicas if r.forces is None]
        if new:
            evaluation = self._evaluate(_systems(new, self.positions.device), new)
            for replica, forces in zip(
                new, torch.split(evaluation.forces, [r.n_atoms for r in new]), strict=True
            ):
                replica.forces = forces.double()
        return torch.cat([r.forces for r in self.replicas])

    def _evaluate(self, systems: Systems, replicas: list[_Replica]):
        start = time.perf_counter()
        evaluation = self.potential(systems)
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
        virial = -evaluation.stresses.diagonal(dim1=1, dim2=2).sum(1).double() / 3 * EV_A3_TO_GPA
        thermo = (
            torch.stack(
                [
                    evaluation.energies.double(),
                    temperatures,
                    virial,
                    2 * kinetic / (3 * volumes) * EV_A3_TO_GPA,
                ]
            )
            .cpu()
            .numpy()
        )
        sampled = any((r.step + 1) % r.interval == 0 for r in self.replicas)
        positions = self.positions.to("cpu", copy=True).numpy() if sampled else None
        ends = np.cumsum(self.systems.counts)
        for b, replica in enumerate(self.replicas):
            replica.record(
                None if positions is None else positions[ends[b] - replica.n_atoms : ends[b]],
                *thermo[:, b],
            )
        ending = [b for b, r in enumerate(self.replicas) if r.at_chunk_end and r.failure is None]
        if ending:
            self.hand_back(ending)
            for b in ending:
                self.replicas[b].end_chunk()

    def hand_back(self, indices) -> None:
        """Hand the replicas ``indices`` (positions in the batch) their current positions, momenta,
        forces and thermostat state (to write a checkpoint, or to run on in another batch)."""
        sizes = self.systems.counts
        parts = zip(
            torch.split(self.positions, sizes),
            torch.split(self.momenta, sizes),
            torch.split(self.forces, sizes),
            strict=True,
        )
        for b, (positions, momenta, forces) in enumerate(parts):
            if b not in indices:
                continue
            replica = self.replicas[b]
            replica.state.positions = positions.to("cpu", copy=True).numpy()
            replica.state.momenta = momenta.to("cpu", copy=True).numpy()
            replica.state.thermostat = self.integrator.state(b)
            replica.forces = forces
