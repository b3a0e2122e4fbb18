"""The life of one MD run, the same for every engine: files, start, frames, chunks, end, result.

An engine only advances its systems; a :class:`Run` does the rest. It writes
``<label>.chunkNNNN.npz`` after every chunk of ``chunk_steps`` steps, with a checkpoint
``<label>.checkpoint.npz`` (positions, momenta, thermostat state), and at the end joins the chunks
into ``<label>.npz``, marked complete and holding the final :class:`~amorph.md.engine.MDState`. A
rerun with the same fingerprint reuses a completed run, or continues from the last checkpoint with
no frame lost or repeated. A damaged file (final trajectory, checkpoint or a chunk it counts) is
found before any step, moved aside as ``<name>.corrupt`` with a warning, and the run recomputes from
the last good state; temporary files that a killed run left are removed. An engine drives a run so::

    run = Run.integrated(task, engine_name)  # or Run(task, fingerprint) for an engine of its own
    if (result := run.finished()) is not None:
        return result
    state = run.start()  # arrays at the task's start or at the last checkpoint
    for steps in run.chunks():
        ...  # each step: run.advance(energy, temperature); run.add_frame(...) if run.sampled(step)
        run.end_chunk(positions, momenta, thermostat)
    return run.result
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
from ase import units
from ase.data import atomic_masses
from numpy.typing import ArrayLike
from pymatgen.core import Lattice, Structure

from amorph.errors import MDInstabilityError, TrajectoryError
from amorph.files import atomic_path
from amorph.md.engine import MDResult, MDState, MDTask, RunStats, ThermostatState
from amorph.trajectory import Trajectory

logger = logging.getLogger(__name__)


def masses_of(numbers: np.ndarray) -> np.ndarray:
    """Atomic masses (amu) of ``numbers``, as ASE assigns them."""
    return atomic_masses[numbers]


def to_velocities(momenta: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Velocities in Å/fs from momenta in ASE units."""
    return momenta / masses[:, None] * units.fs


def to_momenta(velocities: ArrayLike, masses: np.ndarray) -> np.ndarray:
    """Momenta in ASE units from velocities in Å/fs."""
    return masses[:, None] * (np.asarray(velocities, dtype=float) / units.fs)


def _kinetic_energy(momenta: np.ndarray, masses: np.ndarray) -> float:
    return 0.5 * np.vdot(momenta, momenta / masses[:, None])


def maxwell_boltzmann_momenta(
    masses: np.ndarray, temperature_K: float, rng: np.random.Generator
) -> np.ndarray:
    """Maxwell–Boltzmann momenta (ASE units) at ``temperature_K`` drawn from ``rng``, less their
    centre-of-mass motion at the temperature of the draw (ASE's ``MaxwellBoltzmannDistribution``
    then ``Stationary``, operation for operation, so that a seed gives the velocities it always
    gave)."""
    momenta = rng.standard_normal((len(masses), 3))
    momenta = momenta * np.sqrt(masses * (units.kB * temperature_K))[:, None]
    degrees_of_freedom = momenta.size
    drawn_K = 2 * _kinetic_energy(momenta, masses) / (degrees_of_freedom * units.kB)
    momenta -= np.sum(momenta, 0) / np.sum(masses) * masses[:, None]
    current_eV = 2 * _kinetic_energy(momenta, masses) / degrees_of_freedom
    scale = drawn_K * units.kB / current_eV if drawn_K > 1e-12 else 0.0
    return momenta * np.sqrt(scale)


def start_momenta(task: MDTask, rng: np.random.Generator) -> np.ndarray:
    """The momenta a task starts with: its state's velocities, else Maxwell–Boltzmann ones at its
    temperature drawn from ``rng`` (an instantaneous quench when the structure comes hotter)."""
    masses = masses_of(np.array(task.state.structure.atomic_numbers))
    if task.state.velocities is not None:
        return to_momenta(task.state.velocities, masses)
    return maxwell_boltzmann_momenta(masses, task.temperature, rng)


@dataclass
class RunState:
    """A run in progress as plain arrays in ASE units (Å, amu, momenta in amu·Å per ASE time unit).

    ``positions`` are unwrapped (continuous across chunks); ``rng`` draws the Langevin noise;
    ``thermostat`` is None for an engine whose thermostat state is its own (VASP).
    """

    positions: np.ndarray
    momenta: np.ndarray
    masses: np.ndarray
    numbers: np.ndarray
    cell: np.ndarray
    thermostat: ThermostatState | None
    rng: np.random.Generator

    def md_state(self) -> MDState:
        """The state the next run starts from: positions wrapped into the cell, velocities in
        Å/fs."""
        structure = Structure(
            Lattice(self.cell), self.numbers.tolist(), self.positions, coords_are_cartesian=True,
            to_unit_cell=True,
        )  # fmt: skip
        velocities = to_velocities(self.momenta, self.masses).tolist()
        return MDState(structure, velocities, self.thermostat)


class Run:
    """One task's run: its files and fingerprint, its state, the frames of the chunk in progress.

    Parameters
    ----------
    task
        The run's task.
    fingerprint
        What identifies the run (at least ``task.fingerprint(engine_name)``): files written under
        another fingerprint are not reused.
    metadata
        Further entries of the trajectory's metadata, after the fingerprint's.
    """

    def __init__(self, task: MDTask, fingerprint: dict[str, Any], **metadata: Any):
        self.task = task
        self.fingerprint = fingerprint
        self.metadata = {
            **fingerprint,
            **metadata,
            "pressure_convention": task.settings.pressure_convention,
        }
        self.final_path = task.path(".npz")
        self.checkpoint_path = task.path(".checkpoint.npz")
        self.chunk_steps = task.chunk_size
        self.n_chunks = math.ceil(task.steps / self.chunk_steps)
        self.dt_fs = task.time_step_fs
        self.state: RunState | None = None  # set by start()
        self.step = 0  # steps done
        self.frames: list[tuple] = []  # of the chunk in progress
        self.chunk_notes: dict[str, Any] = {}  # engine-specific entries of the chunk's metadata
        self.failure: MDInstabilityError | None = None
        self.result: MDResult | None = None
        self.force_calls, self.force_seconds, self.started = 0, 0.0, 0.0
        task.work_dir.mkdir(parents=True, exist_ok=True)

    @classmethod
    def integrated(
        cls, task: MDTask, engine_name: str, engine_settings: dict[str, Any] | None = None
    ) -> Run:
        """The run of a task integrated by amorph (the ASE and batched engines): the thermostat and
        its time are part of the fingerprint, and so are the engine's settings for it
        (:meth:`~amorph.md.engine.Engine.describe`), where it has any."""
        settings = task.settings
        fingerprint = {
            **task.fingerprint(engine_name),
            "thermostat": settings.thermostat,
            "thermostat_time_fs": settings.thermostat_time_fs,
        }
        if engine_settings:
            fingerprint["engine_settings"] = engine_settings
        return cls(task, fingerprint)

    @property
    def running(self) -> bool:
        """Whether the run has neither a result nor a failure yet."""
        return self.result is None and self.failure is None

    def chunk_length(self, index: int) -> int:
        """Steps of chunk ``index`` (the last may be shorter)."""
        return min(self.chunk_steps, self.task.steps - index * self.chunk_steps)

    def load(self, path: Path) -> Trajectory | None:
        """The trajectory at ``path`` if a run with this fingerprint wrote it."""
        if not path.exists():
            return None
        try:
            trajectory = Trajectory.load(path)
        except TrajectoryError as exc:
            set_aside(path, exc)
            return None
        meta = trajectory.metadata
        return trajectory if all(meta.get(k) == v for k, v in self.fingerprint.items()) else None

    def finished(self) -> MDResult | None:
        """The result of an identical run already completed here, if any (and, either way, the
        temporary files a killed run was writing removed)."""
        for stale in self.task.work_dir.glob(f".{self.task.label}.*.tmp"):
            stale.unlink(missing_ok=True)
        trajectory = self.load(self.final_path)
        if trajectory is None or not trajectory.metadata.get("complete"):
            return None
        return self._result(trajectory)

    def start(self) -> RunState:
        """The state at the last checkpoint, or else at the task's start (:func:`start_momenta`
        from the task's seed); a saved thermostat state of another kind is not used."""
        self.started = time.perf_counter()
        task = self.task
        structure = task.state.structure
        numbers = np.array(structure.atomic_numbers, dtype=np.int64)
        rng = np.random.default_rng(task.seed)
        positions, thermostat = structure.cart_coords.copy(), task.state.thermostat
        checkpoint = self._read_checkpoint()
        if checkpoint is not None:
            positions, momenta = checkpoint["positions"], checkpoint["momenta"]
            thermostat = checkpoint["thermostat"] and cast(
                ThermostatState, ThermostatState.from_dict(checkpoint["thermostat"])
            )
            self.step = min(checkpoint["chunks_done"] * self.chunk_steps, task.steps)
        else:
            momenta = start_momenta(task, rng)
        kind = task.settings.thermostat
        if thermostat is None or thermostat.kind != kind:
            thermostat = ThermostatState.fresh(kind, rng)
        elif kind == "langevin":
            assert thermostat.rng is not None  # a Langevin state is its generator's (langevin())
            rng.bit_generator.state = thermostat.rng
        self.state = RunState(
            positions,
            momenta,
            masses_of(numbers),
            numbers,
            structure.lattice.matrix.copy(),
            thermostat,
            rng,
        )
        return self.state

    @property
    def current(self) -> RunState:
        """:attr:`state`, for the steps that come after :meth:`start`."""
        assert self.state is not None, "the run has not started"
        return self.state

    def chunks(self) -> Iterator[int]:
        """The lengths in steps of the chunks still to run, from the current step on; a run with
        none left but no result yet is finished after them (:meth:`finish_if_done`)."""
        while self.step < self.task.steps:
            yield self.chunk_length(self.step // self.chunk_steps)
        self.finish_if_done()

    def finish_if_done(self) -> None:
        """Finish into :attr:`result` a run with every step done but no result: one killed while
        joining its chunks, whose last checkpoint counts them all."""
        if self.step == self.task.steps and self.running:
            self.result = self._finish()

    def sampled(self, step: int) -> bool:
        """Whether the frame after ``step`` steps is stored."""
        return step % self.task.settings.sample_interval == 0

    def advance(self, energy: float, temperature: float) -> int:
        """Count one step taken and check it; return the number of steps done.

        A step whose energy or temperature is not finite, or whose temperature exceeds
        ``blowup_temperature_factor`` × the target, sets :attr:`failure` and raises it.
        """
        self.step += 1
        task = self.task
        limit = task.settings.blowup_temperature_factor * task.temperature
        if math.isfinite(energy) and math.isfinite(temperature) and temperature <= limit:
            return self.step
        self.failure = MDInstabilityError(
            f"MD at {task.temperature:g} K became unstable at step {self.step}: temperature "
            f"{temperature:.3g} K, energy {energy:.6g} eV ({task.label} in {task.work_dir})"
        )
        raise self.failure

    def add_frame(
        self,
        step: int,
        positions: np.ndarray,
        energy: float,
        temperature: float,
        virial: float,
        kinetic: float,
    ) -> None:
        """The frame after ``step`` steps: positions (Å), energy (eV), temperature (K), virial and
        kinetic pressure (GPa)."""
        self.frames.append((positions, step * self.dt_fs, energy, temperature, virial, kinetic))

    @property
    def at_chunk_end(self) -> bool:
        """Whether the current step ends a chunk (or the run)."""
        return self.step % self.chunk_steps == 0 or self.step == self.task.steps

    def end_chunk(
        self, positions: np.ndarray, momenta: np.ndarray, thermostat: ThermostatState | None = None
    ) -> None:
        """Write the chunk that ends at the current step and a checkpoint of the state at its end
        (each file atomically: a checkpoint never points past the chunks on disk); at the last
        step, finish the run into :attr:`result`."""
        state = self.current
        state.positions, state.momenta = positions, momenta
        if thermostat is not None:
            state.thermostat = thermostat
        done = math.ceil(self.step / self.chunk_steps)
        self._chunk_trajectory().save(self.task.chunk_path(done - 1))
        saved = {
            "fingerprint": self.fingerprint,
            "chunks_done": done,
            "thermostat": state.thermostat and state.thermostat.as_dict(),
        }
        with atomic_path(self.checkpoint_path) as tmp, open(tmp, "wb") as handle:
            np.savez(
                handle,
                positions=state.positions,
                momenta=state.momenta,  # exact, unlike velocities converted to Å/fs
                state=np.array(json.dumps(saved)),
            )
        if self.step == self.task.steps:
            self.result = self._finish()

    def _chunk_trajectory(self) -> Trajectory:
        """The frames added since the last chunk, as a trajectory in the fixed cell."""
        columns = [np.array(column) for column in zip(*self.frames, strict=True)]
        self.frames = []
        positions, time_fs, energies, temperatures, virial, kinetic = columns
        notes, self.chunk_notes = self.chunk_notes, {}
        return Trajectory(
            numbers=self.current.numbers,
            positions=positions,
            cells=self.current.cell,
            time_fs=time_fs,
            energies=energies,
            temperatures=temperatures,
            virial_pressures=virial,
            kinetic_pressures=kinetic,
            metadata={**self.metadata, "chunk_notes": notes},
        )

    def _read_checkpoint(self) -> dict[str, Any] | None:
        """The last checkpoint of a run with this fingerprint: ``positions``, ``momenta``,
        ``thermostat``, ``chunks_done``; None if there is none, or if it or a chunk it counts is
        damaged (set aside: the run starts again)."""
        if not self.checkpoint_path.exists():
            return None
        try:
            with np.load(self.checkpoint_path, allow_pickle=False) as data:
                state = json.loads(str(data["state"]))
                checkpoint = {**state, "positions": data["positions"], "momenta": data["momenta"]}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
            set_aside(self.checkpoint_path, exc)
            return None
        if state["fingerprint"] != self.fingerprint:
            return None
        for index in range(state["chunks_done"]):
            if self.load(self.task.chunk_path(index)) is None:  # missing, damaged or foreign
                self.checkpoint_path.unlink()
                return None
        return checkpoint

    def _finish(self) -> MDResult:
        """Join the chunks into the final trajectory, marked complete with the final state and the
        chunks' non-empty notes by chunk index, delete the chunks and the checkpoint, and return
        the result."""
        chunks = [Trajectory.load(self.task.chunk_path(i)) for i in range(self.n_chunks)]
        notes: dict[str, dict[str, Any]] = {}
        for index, chunk in enumerate(chunks):
            for key, value in chunk.metadata.get("chunk_notes", {}).items():
                notes.setdefault(key, {})
                if value:
                    notes[key][str(index)] = value
        trajectory = Trajectory.concatenate(chunks)
        trajectory.metadata = {
            **self.metadata,
            **notes,
            "complete": True,
            "final_state": self.current.md_state().as_dict(),
        }
        trajectory.save(self.final_path)
        for i in range(self.n_chunks):
            self.task.chunk_path(i).unlink(missing_ok=True)
        self.checkpoint_path.unlink(missing_ok=True)
        return self._result(
            trajectory,
            n_force_calls=self.force_calls,
            force_time_s=self.force_seconds,
            wall_time_s=time.perf_counter() - self.started,
        )

    def _result(
        self,
        trajectory: Trajectory,
        n_force_calls: int = 0,
        force_time_s: float = 0.0,
        wall_time_s: float = 0.0,
    ) -> MDResult:
        """The task's result from its complete trajectory, with ``MDResult``'s counters."""
        final = trajectory.metadata["final_state"]
        if "structure" not in final:  # a run completed before final states held their structure
            final = {**final, "structure": trajectory.structure(-1).as_dict()}
        return MDResult(
            final_state=cast(MDState, MDState.from_dict(final)),
            stats=RunStats.from_trajectory(trajectory, self.task.settings),
            trajectory_path=str(self.final_path.resolve()),
            steps=self.task.steps,
            time_step_fs=self.task.time_step_fs,
            n_force_calls=n_force_calls,
            force_time_s=force_time_s,
            wall_time_s=wall_time_s,
        )


def set_aside(path: Path, error: Exception) -> None:
    """Rename the damaged file ``path`` to ``<name>.corrupt`` and say so."""
    corrupt = path.with_name(f"{path.name}.corrupt")
    os.replace(path, corrupt)
    logger.warning("%s is damaged (%s): moved to %s; computing it again", path, error, corrupt.name)
