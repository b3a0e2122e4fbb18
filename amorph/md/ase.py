"""NVT molecular dynamics with any ASE calculator, behind the :class:`~amorph.md.engine.Engine`
interface.

Runs follow the life of :mod:`amorph.md.lifecycle`: chunks with a checkpoint after each (positions,
momenta, thermostat state), so a run killed part-way continues from its last chunk when rerun in the
same directory, with no frame lost or repeated.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
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
    ThermostatState,
    import_factory,
)
from amorph.md.lifecycle import Run


@dataclass
class ForceCallCounter:
    """Counts calculator calls and the time spent in them."""

    calls: int = 0
    seconds: float = 0.0

    def instrument(self, calculator: Calculator) -> Calculator:
        """``calculator``, its ``calculate`` wrapped to count the calls and their time here."""
        inner = calculator.calculate

        def timed_calculate(*args: Any, **kwargs: Any) -> None:
            start = time.perf_counter()
            try:
                inner(*args, **kwargs)
            finally:
                self.calls += 1
                self.seconds += time.perf_counter() - start

        calculator.calculate = timed_calculate  # type: ignore[method-assign]  # wrapped on purpose
        return calculator


class ASEEngine(Engine):
    """MD with an ASE calculator (CHGNet, M3GNet, GPAW, or any user-supplied one).

    Every run and evaluation takes its calculator from :meth:`session`: the engine's one calculator
    here; engines whose calculator belongs to a cell (a DFT code's basis, an MPI process) make one
    per session.
    """

    def __init__(
        self,
        calculator: Calculator | None,
        name: str,
        supported_numbers: set[int] | None = None,
        description: dict[str, Any] | None = None,
    ):
        self.name = name
        self.description = description
        self.counter = ForceCallCounter()
        self.calculator = None if calculator is None else self.counter.instrument(calculator)
        self.supported_numbers = supported_numbers

    def check_elements(self, symbols: list[str]) -> None:
        """Raise ``InputError`` for elements outside ``supported_numbers`` (when it is given)."""
        if self.supported_numbers is None:
            return
        from ase.data import atomic_numbers

        missing = [s for s in symbols if atomic_numbers[s] not in self.supported_numbers]
        if missing:
            raise InputError(
                f"engine {self.name} has no parameters for element(s) {', '.join(missing)}"
            )

    @contextmanager
    def session(self, structure: Structure, log: Path | None = None) -> Iterator[Calculator]:
        """The calculator for structures with the atoms and cell of ``structure``; ``log``: where
        a calculator that writes a log writes it."""
        assert self.calculator is not None  # engines made without one override session()
        yield self.calculator

    def run_one(self, task: MDTask) -> MDResult:
        """ASE NVT dynamics (Nosé–Hoover chain or Langevin), chunk by chunk from the last
        checkpoint; an identical finished run is reused."""
        run = Run.integrated(task, self.name, self.describe(task.state.structure))
        finished = run.finished()
        if finished is not None:
            return finished
        state = run.start()
        atoms = AseAtomsAdaptor.get_atoms(task.state.structure)
        with (
            self.session(task.state.structure, task.path(".log")) as calculator,
            tqdm(
                total=task.steps,
                initial=run.step,
                desc=f"{task.label} {task.temperature:.0f} K",
                unit="step",
                disable=None,
                leave=False,
            ) as progress,
        ):
            atoms.calc = calculator
            atoms.set_positions(state.positions)
            atoms.set_momenta(state.momenta)
            dyn = self._dynamics(atoms, task, state.rng)
            assert state.thermostat is not None  # start() gives integrated runs a thermostat
            _restore_chain(dyn, state.thermostat)
            calls, seconds = self.counter.calls, self.counter.seconds
            observer = _Observer(atoms, dyn, run, progress)
            for steps in run.chunks():
                observer.start_nsteps = dyn.nsteps
                try:
                    dyn.run(steps)
                except EngineError as exc:
                    formula = task.state.structure.composition.reduced_formula
                    raise EngineError(
                        f"{self.name} MD of {formula} at {task.temperature:g} K ({task.label} in "
                        f"{task.work_dir}), step {run.step + 1}: {exc}"
                    ) from None
                run.force_calls = self.counter.calls - calls
                run.force_seconds = self.counter.seconds - seconds
                run.end_chunk(
                    atoms.get_positions(), atoms.get_momenta(), _thermostat_state(dyn, state.rng)
                )
        assert run.result is not None  # the last chunk, or chunks() at the end, finished the run
        return run.result

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
        with self.session(structure, _log(work_dir, "relax")) as calculator:
            atoms.calc = calculator
            optimizer = FIRE(FrechetCellFilter(atoms) if relax_cell else atoms, logfile=None)
            converged = bool(optimizer.run(fmax=fmax, steps=max_steps))
            energy = float(atoms.get_potential_energy())
        return RelaxResult(
            AseAtomsAdaptor.get_structure(atoms), energy, converged, optimizer.nsteps
        )

    def static(self, structure: Structure, work_dir: Path | None = None) -> float:
        """The calculator's potential energy of ``structure`` in eV."""
        atoms = AseAtomsAdaptor.get_atoms(structure)
        with self.session(structure, _log(work_dir, "static")) as calculator:
            atoms.calc = calculator
            return float(atoms.get_potential_energy())

    def evaluate(
        self, structures: list[Structure], work_dir: Path | None = None
    ) -> list[SinglePoint]:
        """Energy, forces and stress of each structure, one calculator session per set of atoms."""
        points = []
        for group in _same_atoms(structures):
            with self.session(structures[group[0]], _log(work_dir, "evaluate")) as calculator:
                for i in group:
                    atoms = AseAtomsAdaptor.get_atoms(structures[i])
                    atoms.calc = calculator
                    points.append(
                        (
                            i,
                            SinglePoint(
                                float(atoms.get_potential_energy()),
                                atoms.get_forces(),
                                atoms.get_stress(voigt=False, include_ideal_gas=False),
                            ),
                        )
                    )
        return [point for _, point in sorted(points, key=lambda item: item[0])]


def _log(work_dir: Path | None, name: str) -> Path | None:
    return None if work_dir is None else Path(work_dir) / f"{name}.log"


def _same_atoms(structures: list[Structure]) -> list[list[int]]:
    """Indices of ``structures`` grouped by their atoms (in order), first appearance first."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, structure in enumerate(structures):
        groups.setdefault(tuple(structure.atomic_numbers), []).append(i)
    return list(groups.values())


def _thermostat_state(dyn, rng: np.random.Generator) -> ThermostatState:
    """The thermostat state of ASE dynamics."""
    if isinstance(dyn, NoseHooverChainNVT):
        chain = dyn._thermostat  # ASE keeps the chain variables private; they are the whole state
        return ThermostatState.chain(chain._eta, chain._p_eta)
    return ThermostatState.langevin(rng)


def _restore_chain(dyn, state: ThermostatState) -> None:
    """Set the chain variables of ASE's Nosé–Hoover dynamics (Langevin's state is its
    generator's)."""
    if isinstance(dyn, NoseHooverChainNVT):
        dyn._thermostat._eta = np.array(state.eta, dtype=float)
        dyn._thermostat._p_eta = np.array(state.p_eta, dtype=float)


class _Observer:
    """Called by the dynamics after every step: counts it (blow-ups raise) and samples frames."""

    def __init__(self, atoms: Atoms, dyn, run: Run, progress):
        self.atoms, self.dyn, self.run, self.progress = atoms, dyn, run, progress
        self.start_nsteps = 0  # the dynamics' step count where the chunk in progress began
        dyn.attach(self, interval=1)

    def __call__(self) -> None:
        if self.dyn.nsteps == self.start_nsteps:  # ASE calls observers before a run()'s 1st step
            return
        atoms = self.atoms
        energy, temperature = atoms.get_potential_energy(), atoms.get_temperature()
        step = self.run.advance(energy, temperature)
        self.progress.update(1)
        if not self.run.sampled(step):
            return
        stress = atoms.get_stress(voigt=False, include_ideal_gas=False)
        self.run.add_frame(
            step,
            atoms.get_positions(),
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
    assert spec.model is not None  # import_factory raises EngineError without one
    return ASEEngine(calculator, name=spec.model)
