"""NVT molecular dynamics with any ASE calculator, behind the :class:`~amorph.md.engine.Engine`
interface.

Runs follow the life of :mod:`amorph.md.lifecycle`: chunks with a checkpoint after each (positions,
momenta, thermostat state), so a run killed part-way continues from its last chunk when rerun in the
same directory, with no frame lost or repeated.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.filters import FrechetCellFilter
from ase.md.langevin import Langevin
from ase.md.nose_hoover_chain import NoseHooverChainNVT
from ase.optimize import FIRE
from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor
from tqdm.auto import tqdm

from amorph.constants import EV_A3_TO_GPA
from amorph.errors import EngineError, InputError
from amorph.md.engine import (
    Engine,
    EngineSpec,
    MDResult,
    MDTask,
    RelaxResult,
    SinglePoint,
    import_factory,
)
from amorph.md.lifecycle import (
    Frames,
    RunFiles,
    chain_state,
    instability,
    langevin_state,
    start_state,
)


@dataclass
class ForceCallCounter:
    """Counts calculator calls and the time spent in them."""

    calls: int = 0
    seconds: float = 0.0

    def instrument(self, calculator: Calculator) -> Calculator:
        inner = calculator.calculate

        def timed_calculate(*args: Any, **kwargs: Any) -> None:
            start = time.perf_counter()
            try:
                inner(*args, **kwargs)
            finally:
                self.calls += 1
                self.seconds += time.perf_counter() - start

        calculator.calculate = timed_calculate
        return calculator


class ASEEngine(Engine):
    """MD with an ASE calculator (CHGNet, M3GNet, or any user-supplied one)."""

    def __init__(
        self, calculator: Calculator, name: str, supported_numbers: set[int] | None = None
    ):
        self.name = name
        self.counter = ForceCallCounter()
        self.calculator = self.counter.instrument(calculator)
        self.supported_numbers = supported_numbers

    def check_elements(self, symbols: list[str]) -> None:
        if self.supported_numbers is None:
            return
        from ase.data import atomic_numbers

        missing = [s for s in symbols if atomic_numbers[s] not in self.supported_numbers]
        if missing:
            raise InputError(
                f"engine {self.name} has no parameters for element(s) {', '.join(missing)}"
            )

    def run_one(self, task: MDTask) -> MDResult:
        files = RunFiles.integrated(task, self.name)
        finished = files.finished()
        if finished is not None:
            return finished
        clock = time.perf_counter()
        calls, seconds = self.counter.calls, self.counter.seconds
        state = start_state(task, files)
        atoms = AseAtomsAdaptor.get_atoms(task.state.structure)
        atoms.calc = self.calculator
        atoms.set_positions(state.positions)
        atoms.set_momenta(state.momenta)
        dyn = self._dynamics(atoms, task, state.rng)
        _restore_chain(dyn, state.thermostat)
        frames = Frames()
        with tqdm(
            total=task.steps,
            initial=min(state.chunks_done * files.chunk_steps, task.steps),
            desc=f"{task.label} {task.temperature:.0f} K",
            unit="step",
            disable=None,
            leave=False,
        ) as progress:
            observer = _Observer(atoms, dyn, task, frames, progress)
            for index in range(state.chunks_done, files.n_chunks):
                observer.start_chunk(index * files.chunk_steps)
                dyn.run(files.chunk_length(index))
                state.positions, state.momenta = atoms.get_positions(), atoms.get_momenta()
                state.thermostat = _thermostat_state(dyn, state.rng)
                state.chunks_done = index + 1
                files.save_chunk(index, frames.pop_trajectory(state, files.metadata), state)
        trajectory = files.finish(state.final_state())
        return files.result(
            trajectory,
            n_force_calls=self.counter.calls - calls,
            force_time_s=self.counter.seconds - seconds,
            wall_time_s=time.perf_counter() - clock,
        )

    @staticmethod
    def _dynamics(atoms: Atoms, task: MDTask, rng: np.random.Generator):
        settings = task.settings
        dt = task.time_step_fs * units.fs
        damping = settings.thermostat_time_fs * units.fs
        if settings.thermostat == "nose-hoover":
            return NoseHooverChainNVT(
                atoms, timestep=dt, temperature_K=task.temperature, tdamp=damping
            )
        return Langevin(
            atoms,
            timestep=dt,
            temperature_K=task.temperature,
            friction=1 / damping,
            rng=rng,
            fixcm=False,
        )

    def relax(
        self,
        structure: Structure,
        work_dir: Path | None = None,
        relax_cell: bool = True,
        fmax: float = 0.05,
        max_steps: int = 200,
    ) -> RelaxResult:
        """FIRE on the positions, and on the cell through ``FrechetCellFilter`` with
        ``relax_cell``."""
        atoms = AseAtomsAdaptor.get_atoms(structure)
        atoms.calc = self.calculator
        optimizer = FIRE(FrechetCellFilter(atoms) if relax_cell else atoms, logfile=None)
        converged = bool(optimizer.run(fmax=fmax, steps=max_steps))
        return RelaxResult(
            AseAtomsAdaptor.get_structure(atoms),
            float(atoms.get_potential_energy()),
            converged,
            optimizer.nsteps,
        )

    def static(self, structure: Structure, work_dir: Path | None = None) -> float:
        atoms = AseAtomsAdaptor.get_atoms(structure)
        atoms.calc = self.calculator
        return float(atoms.get_potential_energy())

    def evaluate(self, structures: list[Structure]) -> list[SinglePoint]:
        points = []
        for structure in structures:
            atoms = AseAtomsAdaptor.get_atoms(structure)
            atoms.calc = self.calculator
            points.append(
                SinglePoint(
                    float(atoms.get_potential_energy()),
                    atoms.get_forces(),
                    atoms.get_stress(voigt=False, include_ideal_gas=False),
                )
            )
        return points


def _thermostat_state(dyn, rng: np.random.Generator) -> dict[str, Any]:
    """The thermostat state of ASE dynamics in the engines' plain form."""
    if isinstance(dyn, NoseHooverChainNVT):
        chain = dyn._thermostat  # ASE keeps the chain variables private; they are the whole state
        return chain_state(chain._eta, chain._p_eta)
    return langevin_state(rng)


def _restore_chain(dyn, state: dict[str, Any]) -> None:
    """Set the chain variables of ASE's Nosé–Hoover dynamics (Langevin's state is its
    generator's)."""
    if isinstance(dyn, NoseHooverChainNVT):
        dyn._thermostat._eta = np.array(state["eta"], dtype=float)
        dyn._thermostat._p_eta = np.array(state["p_eta"], dtype=float)


class _Observer:
    """Called by the dynamics after every step: detects blow-ups and samples frames."""

    def __init__(self, atoms: Atoms, dyn, task: MDTask, frames: Frames, progress):
        self.atoms, self.dyn, self.task = atoms, dyn, task
        self.frames, self.progress = frames, progress
        self.dt_fs = task.time_step_fs
        self.interval = task.settings.sample_interval
        self.step_offset = 0
        self.start_nsteps = 0
        dyn.attach(self, interval=1)

    def start_chunk(self, step_offset: int) -> None:
        self.step_offset, self.start_nsteps = step_offset, self.dyn.nsteps

    def __call__(self) -> None:
        steps_in_chunk = self.dyn.nsteps - self.start_nsteps
        if steps_in_chunk == 0:  # ASE calls observers once before the first step of every run()
            return
        step = self.step_offset + steps_in_chunk
        atoms = self.atoms
        energy = atoms.get_potential_energy()
        temperature = atoms.get_temperature()
        error = instability(self.task, step, temperature, energy)
        if error is not None:
            raise error
        self.progress.update(1)
        if step % self.interval:
            return
        stress = atoms.get_stress(voigt=False, include_ideal_gas=False)
        self.frames.add(
            atoms.get_positions(),
            step * self.dt_fs,
            energy,
            temperature,
            -np.trace(stress) / 3 * EV_A3_TO_GPA,
            2 * atoms.get_kinetic_energy() / (3 * atoms.get_volume()) * EV_A3_TO_GPA,
        )


def calculator_factory_engine(spec: EngineSpec) -> ASEEngine:
    """Engine around the ASE calculator returned by ``spec.model``, a ``package.module:function``
    path."""
    calculator = import_factory(spec.model, "calculator")(**spec.options)
    if not isinstance(calculator, Calculator) and not hasattr(calculator, "get_forces"):
        raise EngineError(
            f"{spec.model} returned {type(calculator).__name__}, not an ASE calculator"
        )
    return ASEEngine(calculator, name=spec.model)
