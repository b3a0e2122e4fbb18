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
from typing import Any

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
from amorph.md.lifecycle import Run
from amorph.md.potential import BatchedPotential, PotentialCalculator, Systems

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

    def __init__(
        self,
        potential: BatchedPotential,
        name: str,
        max_atoms: int | None = None,
        description: dict[str, Any] | None = None,
    ):
        self.name = name
        self.description = description
        self.potential = potential
        self.max_atoms = max_atoms
        supported = (
            None if potential.supported_numbers is None else set(potential.supported_numbers)
        )
        self.calculator_engine = ASEEngine(
            PotentialCalculator(potential), name, supported, description
        )
        self.calculator = self.calculator_engine.calculator

    def check_elements(self, symbols: list[str]) -> None:
        """Raise ``InputError`` for elements outside the potential's ``supported_numbers``."""
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
        """The potential's energy of ``structure`` in eV, through its ASE calculator."""
        return self.calculator_engine.static(structure, work_dir)

    def evaluate(
        self, structures: list[Structure], work_dir: Path | None = None
    ) -> list[SinglePoint]:
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
        """The task run alone, as a batch of one."""
        return self.run([task])[0]

    def run(self, tasks: list[MDTask]) -> list[MDResult]:
        """The tasks' MD, advanced together per thermostat kind; finished runs are reused, and the
        first instability is raised once every group has run."""
        files = [(task.work_dir.resolve(), task.label) for task in tasks]
        if len(set(files)) < len(files):
            raise InputError(
                "tasks run together need distinct work_dir or label: their files would collide"
            )
        runs = [
            Run.integrated(task, self.name, self.describe(task.state.structure)) for task in tasks
        ]
        results = [run.finished() for run in runs]
        failures: list[MDInstabilityError] = []
        for kind in INTEGRATORS:
            group = [
                run
                for run, done in zip(runs, results, strict=True)
                if done is None and run.task.settings.thermostat == kind
            ]
            if group:
                failures += self._run_group(group)
        if failures:
            raise failures[0]
        finished = []
        for run, done in zip(runs, results, strict=True):
            result = done or run.result
            assert result is not None  # each run of a group ends in a result or a failure (raised)
            finished.append(result)
        return finished

    def _run_group(self, runs: list[Run]) -> list[MDInstabilityError]:
        """Run runs of one thermostat, as many at a time as the atom budget allows."""
        pending, failures = deque(runs), []
        active: list[Run] = []
        forces: dict[Run, torch.Tensor] = {}  # kept from one batch to the next
        with tqdm(
            total=sum(run.task.steps for run in runs),
            desc=f"{self.name} batch",
            unit="step",
            disable=None,
            leave=False,
        ) as progress:
            while pending or active:
                budget = self.max_atoms or self._atom_budget(pending[0] if pending else active[0])
                while pending and (
                    not active or sum(_size(r) for r in active) + _size(pending[0]) <= budget
                ):
                    run = pending.popleft()
                    if run.state is None:
                        run.start()
                        progress.update(run.step)
                    run.finish_if_done()  # killed while joining its chunks: no step left to run
                    if run.running:
                        active.append(run)
                if not active:
                    continue
                batch = _Batch(self.potential, active, forces)
                while all(run.running for run in active):
                    batch.step()
                    progress.update(len(active))
                batch.hand_back(range(len(active)))
                failures += [run.failure for run in active if run.failure is not None]
                active = [run for run in active if run.running]
        return failures

    def _atom_budget(self, run: Run) -> int:
        device = self.potential.device
        if device.type != "cuda":
            return CPU_ATOMS_PER_THREAD * torch.get_num_threads()
        if run.state is None:
            run.start()
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        self.potential(_systems([run], device))
        per_atom = (torch.cuda.max_memory_allocated(device) - before) / _size(run)
        free, _ = torch.cuda.mem_get_info(device)
        self.max_atoms = max(_size(run), int(GPU_MEMORY_FRACTION * free / per_atom))
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
    assert spec.model is not None  # import_factory raises EngineError without one
    return BatchedEngine(potential, name=spec.model, max_atoms=max_atoms)


def _size(run: Run) -> int:
    return len(run.task.state.structure)


def _systems(runs: list[Run], device: torch.device) -> Systems:
    """The runs' current positions, cells and atoms as one batch on ``device``."""
    return Systems.from_arrays(
        [r.current.positions for r in runs],
        [r.current.cell for r in runs],
        [r.current.numbers for r in runs],
        device,
    )


class _Batch:
    """The running runs as one set of tensors, stepped together until one of them finishes.

    ``forces`` holds each run's forces from an earlier batch; the others' are evaluated first.
    """

    def __init__(
        self, potential: BatchedPotential, runs: list[Run], forces: dict[Run, torch.Tensor]
    ):
        self.potential, self.runs, self.kept = potential, runs, forces
        device = potential.device
        self.systems = _systems(runs, device)
        self.positions = self.systems.positions
        states = [r.current for r in runs]
        self.momenta, masses = (
            torch.from_numpy(np.concatenate(arrays)).to(device)
            for arrays in ([s.momenta for s in states], [s.masses for s in states])
        )
        settings = [r.task.settings for r in runs]
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
            temperatures_K=[r.task.temperature for r in runs],
            time_steps_fs=[r.dt_fs for r in runs],
            damping_fs=[s.thermostat_time_fs for s in settings],
            **thermostat,
        )
        self.forces = self._initial_forces()

    def _initial_forces(self) -> torch.Tensor:
        """Forces kept from the previous batch, evaluated only for runs that have none."""
        new = [r for r in self.runs if r not in self.kept]
        if new:
            evaluation = self._evaluate(_systems(new, self.positions.device), new)
            for run, forces in zip(
                new, torch.split(evaluation.forces, [_size(r) for r in new]), strict=True
            ):
                self.kept[run] = forces.double()
        return torch.cat([self.kept[r] for r in self.runs])

    def _evaluate(self, systems: Systems, runs: list[Run]):
        start = time.perf_counter()
        evaluation = self.potential(systems)
        if systems.positions.device.type == "cuda":
            torch.cuda.synchronize(systems.positions.device)
        share = (time.perf_counter() - start) / len(runs)
        for run in runs:
            run.force_calls += 1
            run.force_seconds += share
        return evaluation

    def step(self) -> None:
        evaluations = []

        def compute_forces(positions: torch.Tensor) -> torch.Tensor:
            evaluations.append(self._evaluate(self.systems, self.runs))
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
        sampled = any(r.sampled(r.step + 1) for r in self.runs)
        positions = self.positions.to("cpu", copy=True).numpy() if sampled else None
        ends = np.cumsum(self.systems.counts)
        for b, run in enumerate(self.runs):
            energy, temperature, virial_b, kinetic_b = thermo[:, b]
            try:
                step = run.advance(energy, temperature)
            except MDInstabilityError:  # kept as run.failure; the others go on
                continue
            if run.sampled(step):
                assert positions is not None  # copied above, as this step is sampled
                atoms = positions[ends[b] - _size(run) : ends[b]]
                run.add_frame(step, atoms, energy, temperature, virial_b, kinetic_b)
        ending = [b for b, r in enumerate(self.runs) if r.at_chunk_end and r.failure is None]
        if ending:
            self.hand_back(ending)
            for b in ending:
                run = self.runs[b]
                run.end_chunk(run.current.positions, run.current.momenta)

    def hand_back(self, indices) -> None:
        """Hand the runs ``indices`` (positions in the batch) their current positions, momenta,
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
            run = self.runs[b]
            state = run.current
            state.positions = positions.to("cpu", copy=True).numpy()
            state.momenta = momenta.to("cpu", copy=True).numpy()
            state.thermostat = self.integrator.state(b)
            self.kept[run] = forces
