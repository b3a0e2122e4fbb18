"""NVT molecular dynamics with any ASE calculator, behind the :class:`~amorph.md.engine.Engine` interface.

Runs are written in chunks with a checkpoint after each (positions, velocities, thermostat state,
random-number state), so a run killed part-way continues from its last chunk when rerun in the same
directory, with no frame lost or repeated.
"""

from __future__ import annotations

import json
import math
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
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary
from ase.optimize import FIRE
from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor
from tqdm.auto import tqdm

from amorph.errors import EngineError, InputError, MDInstabilityError
from amorph.files import atomic_path
from amorph.md.engine import (
    Engine,
    EngineSpec,
    MDResult,
    MDState,
    MDTask,
    RelaxResult,
    RunStats,
    import_factory,
)
from amorph.trajectory import Trajectory


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
        run = _Run(self, task)
        return run.execute()

    def relax(
        self,
        structure: Structure,
        work_dir: Path | None = None,
        relax_cell: bool = True,
        fmax: float = 0.05,
        max_steps: int = 200,
    ) -> RelaxResult:
        """FIRE on the positions, and on the cell through ``FrechetCellFilter`` with ``relax_cell``."""
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


class _Run:
    """One MD task: set up atoms and thermostat (fresh or from a checkpoint), integrate, write chunks."""

    def __init__(self, engine: ASEEngine, task: MDTask):
        self.engine = engine
        self.task = task
        self.settings = task.settings
        self.dt_fs = task.time_step_fs
        self.chunk_steps = task.chunk_size
        task.work_dir.mkdir(parents=True, exist_ok=True)
        self.final_path = task.path(".npz")
        self.checkpoint_path = task.path(".checkpoint.npz")
        self.fingerprint = {
            **task.fingerprint(engine.name),
            "thermostat": self.settings.thermostat,
            "thermostat_time_fs": self.settings.thermostat_time_fs,
        }
        self.metadata = {
            **self.fingerprint,
            "pressure_convention": self.settings.pressure_convention,
        }

    def execute(self) -> MDResult:
        finished = self._load_finished()
        if finished is not None:
            return finished
        start = time.perf_counter()
        calls0, seconds0 = self.engine.counter.calls, self.engine.counter.seconds
        atoms, dyn, rng, done_chunks = self._start()
        n_chunks = math.ceil(self.task.steps / self.chunk_steps)
        recorder = _FrameRecorder(atoms, dyn, self.task, self.dt_fs)
        with tqdm(
            total=self.task.steps,
            initial=min(done_chunks * self.chunk_steps, self.task.steps),
            desc=f"{self.task.label} {self.task.temperature:.0f} K",
            unit="step",
            disable=None,
            leave=False,
        ) as progress:
            recorder.progress = progress
            for index in range(done_chunks, n_chunks):
                steps = min(self.chunk_steps, self.task.steps - index * self.chunk_steps)
                recorder.reset(step_offset=index * self.chunk_steps)
                dyn.run(steps)
                recorder.trajectory(self.metadata).save(self.task.chunk_path(index))
                self._save_checkpoint(atoms, dyn, rng, index + 1)
        trajectory = Trajectory.concatenate(
            [Trajectory.load(self.task.chunk_path(i)) for i in range(n_chunks)]
        )
        trajectory.metadata["complete"] = True
        trajectory.metadata["final_state"] = self._state_dict(atoms, dyn)
        trajectory.save(self.final_path)
        for i in range(n_chunks):
            self.task.chunk_path(i).unlink(missing_ok=True)
        self.checkpoint_path.unlink(missing_ok=True)
        return self._result(
            trajectory,
            n_force_calls=self.engine.counter.calls - calls0,
            force_time_s=self.engine.counter.seconds - seconds0,
            wall_time_s=time.perf_counter() - start,
        )

    def _load_finished(self) -> MDResult | None:
        """The result of an identical run already completed in this directory, if any."""
        if not self.final_path.exists():
            return None
        trajectory = Trajectory.load(self.final_path)
        meta = trajectory.metadata
        if not meta.get("complete") or any(meta.get(k) != v for k, v in self.fingerprint.items()):
            return None
        return self._result(trajectory)

    def _result(self, trajectory: Trajectory, **timing: float) -> MDResult:
        state = trajectory.metadata["final_state"]
        structure = trajectory.structure(-1)
        return MDResult(
            final_state=MDState(
                structure=structure, velocities=state["velocities"], thermostat=state["thermostat"]
            ),
            stats=RunStats.from_trajectory(trajectory, self.settings),
            trajectory_path=str(self.final_path.resolve()),
            steps=self.task.steps,
            time_step_fs=self.dt_fs,
            **timing,
        )

    def _start(self) -> tuple[Atoms, Any, np.random.Generator, int]:
        """Atoms and dynamics at the task's start, or at the last checkpoint of an interrupted run."""
        task = self.task
        atoms = AseAtomsAdaptor.get_atoms(task.state.structure)
        atoms.calc = self.engine.calculator
        rng = np.random.default_rng(task.seed)
        thermostat_state = task.state.thermostat
        done_chunks = 0
        checkpoint = self._read_checkpoint()
        if checkpoint is not None:
            atoms.set_positions(checkpoint["positions"])
            atoms.set_momenta(checkpoint["momenta"])
            thermostat_state = checkpoint["thermostat"]
            done_chunks = checkpoint["chunks_done"]
        elif task.state.velocities is not None:
            atoms.set_velocities(np.asarray(task.state.velocities) / units.fs)
        else:
            MaxwellBoltzmannDistribution(atoms, temperature_K=task.temperature, rng=rng)
            Stationary(atoms)
        dyn = self._dynamics(atoms, rng)
        if thermostat_state and thermostat_state.get("kind") == self.settings.thermostat:
            _restore_thermostat(dyn, rng, thermostat_state)
        return atoms, dyn, rng, done_chunks

    def _dynamics(self, atoms: Atoms, rng: np.random.Generator):
        dt = self.dt_fs * units.fs
        damping = self.settings.thermostat_time_fs * units.fs
        if self.settings.thermostat == "nose-hoover":
            return NoseHooverChainNVT(
                atoms, timestep=dt, temperature_K=self.task.temperature, tdamp=damping
            )
        return Langevin(
            atoms,
            timestep=dt,
            temperature_K=self.task.temperature,
            friction=1 / damping,
            rng=rng,
            fixcm=False,
        )

    def _state_dict(self, atoms: Atoms, dyn) -> dict[str, Any]:
        return {
            "velocities": (atoms.get_velocities() * units.fs).tolist(),
            "thermostat": _thermostat_state(dyn, self.settings.thermostat),
        }

    def _save_checkpoint(
        self, atoms: Atoms, dyn, rng: np.random.Generator, chunks_done: int
    ) -> None:
        state = {
            "fingerprint": self.fingerprint,
            "chunks_done": chunks_done,
            "thermostat": _thermostat_state(dyn, self.settings.thermostat),
        }
        with atomic_path(self.checkpoint_path) as tmp, open(tmp, "wb") as handle:
            np.savez(
                handle,
                positions=atoms.get_positions(),
                momenta=atoms.get_momenta(),  # exact, unlike velocities converted to Å/fs
                state=np.array(json.dumps(state)),
            )

    def _read_checkpoint(self) -> dict[str, Any] | None:
        if not self.checkpoint_path.exists():
            return None
        with np.load(self.checkpoint_path) as data:
            state = json.loads(str(data["state"]))
            if state["fingerprint"] != self.fingerprint:
                return None
            return {**state, "positions": data["positions"], "momenta": data["momenta"]}


def _thermostat_state(dyn, kind: str) -> dict[str, Any]:
    if isinstance(dyn, NoseHooverChainNVT):
        chain = dyn._thermostat  # ASE keeps the chain variables private; they are the whole state
        return {"kind": kind, "eta": chain._eta.tolist(), "p_eta": chain._p_eta.tolist()}
    return {"kind": kind, "rng": dyn.rng.bit_generator.state}


def _restore_thermostat(dyn, rng: np.random.Generator, state: dict[str, Any]) -> None:
    if isinstance(dyn, NoseHooverChainNVT):
        dyn._thermostat._eta = np.array(state["eta"], dtype=float)
        dyn._thermostat._p_eta = np.array(state["p_eta"], dtype=float)
    else:
        rng.bit_generator.state = state["rng"]


class _FrameRecorder:
    """Observer of the dynamics: stores every ``sample_interval``-th frame and detects blow-ups."""

    def __init__(self, atoms: Atoms, dyn, task: MDTask, dt_fs: float):
        self.atoms = atoms
        self.task = task
        self.dt_fs = dt_fs
        self.interval = task.settings.sample_interval
        self.max_temperature = task.settings.blowup_temperature_factor * task.temperature
        self.progress = None
        self.dyn = dyn
        dyn.attach(self.observe, interval=1)
        self.reset(0)

    def reset(self, step_offset: int) -> None:
        self.step_offset = step_offset
        self.start_nsteps = self.dyn.nsteps
        self.frames: dict[str, list] = {
            k: []
            for k in (
                "positions",
                "cells",
                "time_fs",
                "energies",
                "temperatures",
                "virial",
                "kinetic",
            )
        }

    def observe(self) -> None:
        steps_in_chunk = self.dyn.nsteps - self.start_nsteps
        if steps_in_chunk == 0:  # ASE calls observers once before the first step of every run()
            return
        step = self.step_offset + steps_in_chunk
        atoms = self.atoms
        energy = atoms.get_potential_energy()
        temperature = atoms.get_temperature()
        if (
            not (math.isfinite(energy) and math.isfinite(temperature))
            or temperature > self.max_temperature
        ):
            raise MDInstabilityError(
                f"MD at {self.task.temperature:g} K became unstable at step {step}: "
                f"temperature {temperature:.3g} K, energy {energy:.6g} eV"
            )
        if self.progress is not None:
            self.progress.update(1)
        if step % self.interval:
            return
        volume = atoms.get_volume()
        virial = -np.trace(atoms.get_stress(voigt=False, include_ideal_gas=False)) / 3 / units.GPa
        kinetic = 2 * atoms.get_kinetic_energy() / (3 * volume) / units.GPa
        frames = self.frames
        frames["positions"].append(atoms.get_positions())
        frames["cells"].append(atoms.get_cell().array.copy())
        frames["time_fs"].append(step * self.dt_fs)
        frames["energies"].append(energy)
        frames["temperatures"].append(temperature)
        frames["virial"].append(virial)
        frames["kinetic"].append(kinetic)

    def trajectory(self, metadata: dict[str, Any]) -> Trajectory:
        f = self.frames
        return Trajectory(
            numbers=self.atoms.numbers,
            positions=np.array(f["positions"]),
            cells=np.array(f["cells"]),
            time_fs=np.array(f["time_fs"]),
            energies=np.array(f["energies"]),
            temperatures=np.array(f["temperatures"]),
            virial_pressures=np.array(f["virial"]),
            kinetic_pressures=np.array(f["kinetic"]),
            metadata=dict(metadata),
        )


def calculator_factory_engine(spec: EngineSpec) -> ASEEngine:
    """Engine around the ASE calculator returned by ``spec.model``, a ``package.module:function`` path."""
    calculator = import_factory(spec.model, "calculator")(**spec.options)
    if not isinstance(calculator, Calculator) and not hasattr(calculator, "get_forces"):
        raise EngineError(
            f"{spec.model} returned {type(calculator).__name__}, not an ASE calculator"
        )
    return ASEEngine(calculator, name=spec.model)
