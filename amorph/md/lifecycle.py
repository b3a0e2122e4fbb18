"""The life of one MD run, the same for every engine: its files, start, chunks, end and result.

A run of an :class:`~amorph.md.engine.MDTask` writes ``<label>.chunkNNNN.npz`` after every chunk of
``chunk_steps`` steps, with a checkpoint ``<label>.checkpoint.npz`` (positions, momenta, thermostat
state) where the engine integrates itself, and joins the chunks into ``<label>.npz`` marked complete
at the end. :class:`RunFiles` holds these files and the run's fingerprint: a rerun with the same
fingerprint reuses a completed run, or continues from the last checkpoint. :class:`RunState` is a
run in progress as plain arrays; :func:`start_state` sets it up, fresh or from the checkpoint.
A damaged file (final trajectory, checkpoint or a chunk it counts) is found before any step, moved
aside as ``<name>.corrupt`` with a warning, and the run recomputes from the last good state.

Thermostat states are plain dicts, the same for every engine:
``{"kind": "nose-hoover", "eta": [...], "p_eta": [...]}`` (a Nosé–Hoover chain of
:data:`CHAIN_LENGTH`) or ``{"kind": "langevin", "rng": ...}`` (the state of the numpy generator
that draws the noise).
"""

from __future__ import annotations

import json
import logging
import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import units
from ase.data import atomic_masses
from pymatgen.core import Structure

from amorph.errors import MDInstabilityError, TrajectoryError
from amorph.files import atomic_path
from amorph.md.engine import MDResult, MDState, MDTask, RunStats
from amorph.trajectory import Trajectory

logger = logging.getLogger(__name__)

CHAIN_LENGTH = 3  # Nosé–Hoover chain variables (ASE's default)
FRAME_COLUMNS = (  # what Frames.add takes, as Trajectory names it
    "positions",
    "time_fs",
    "energies",
    "temperatures",
    "virial_pressures",
    "kinetic_pressures",
)


def chain_state(eta, p_eta) -> dict[str, Any]:
    """A Nosé–Hoover chain's thermostat state."""
    return {
        "kind": "nose-hoover",
        "eta": np.asarray(eta).tolist(),
        "p_eta": np.asarray(p_eta).tolist(),
    }


def langevin_state(rng: np.random.Generator) -> dict[str, Any]:
    """A Langevin thermostat's state: that of the generator of its noise."""
    return {"kind": "langevin", "rng": rng.bit_generator.state}


def masses_of(numbers: np.ndarray) -> np.ndarray:
    """Atomic masses (amu) of ``numbers``, as ASE assigns them."""
    return atomic_masses[numbers]


def to_velocities(momenta: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Velocities in Å/fs from momenta in ASE units."""
    return momenta / masses[:, None] * units.fs


def to_momenta(velocities: np.ndarray, masses: np.ndarray) -> np.ndarray:
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


def instability(
    task: MDTask, step: int, temperature: float, energy: float
) -> MDInstabilityError | None:
    """The error for a step whose energy or temperature is not finite, or whose temperature exceeds
    ``blowup_temperature_factor`` × the target; ``None`` for a sound step."""
    limit = task.settings.blowup_temperature_factor * task.temperature
    if math.isfinite(energy) and math.isfinite(temperature) and temperature <= limit:
        return None
    return MDInstabilityError(
        f"MD at {task.temperature:g} K became unstable at step {step}: temperature "
        f"{temperature:.3g} K, energy {energy:.6g} eV ({task.label} in {task.work_dir})"
    )


@dataclass
class RunState:
    """A run in progress as plain arrays in ASE units (Å, amu, momenta in amu·Å per ASE time unit).

    ``thermostat`` is the thermostat state dict as of the last update; ``rng`` draws the Langevin
    noise; ``chunks_done`` counts the chunks written.
    """

    positions: np.ndarray
    momenta: np.ndarray
    masses: np.ndarray
    numbers: np.ndarray
    cell: np.ndarray
    thermostat: dict[str, Any]
    rng: np.random.Generator
    chunks_done: int = 0

    def final_state(self) -> dict[str, Any]:
        """What a completed run stores for the next one: velocities (Å/fs) and thermostat state."""
        return {
            "velocities": to_velocities(self.momenta, self.masses).tolist(),
            "thermostat": self.thermostat,
        }


def start_state(task: MDTask, files: RunFiles) -> RunState:
    """The state at the last checkpoint of ``files``, or else at the task's start: its velocities,
    or Maxwell–Boltzmann ones from its seed. A saved thermostat state of another kind is not
    used."""
    structure = task.state.structure
    numbers = np.array(structure.atomic_numbers, dtype=np.int64)
    masses = masses_of(numbers)
    rng = np.random.default_rng(task.seed)
    positions = structure.cart_coords.copy()
    thermostat = task.state.thermostat
    chunks_done = 0
    checkpoint = files.read_checkpoint()
    if checkpoint is not None:
        positions, momenta = checkpoint["positions"], checkpoint["momenta"]
        thermostat, chunks_done = checkpoint["thermostat"], checkpoint["chunks_done"]
    elif task.state.velocities is not None:
        momenta = to_momenta(task.state.velocities, masses)
    else:
        momenta = maxwell_boltzmann_momenta(masses, task.temperature, rng)
    kind = task.settings.thermostat
    if not thermostat or thermostat.get("kind") != kind:
        zeros = [0.0] * CHAIN_LENGTH
        thermostat = langevin_state(rng) if kind == "langevin" else chain_state(zeros, zeros)
    elif kind == "langevin":
        rng.bit_generator.state = thermostat["rng"]
    return RunState(
        positions,
        momenta,
        masses,
        numbers,
        structure.lattice.matrix.copy(),
        thermostat,
        rng,
        chunks_done,
    )


class RunFiles:
    """The files of one task's run, named by its ``work_dir`` and ``label``, and its fingerprint.

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
        task.work_dir.mkdir(parents=True, exist_ok=True)

    @classmethod
    def integrated(cls, task: MDTask, engine_name: str) -> RunFiles:
        """The files of a run integrated by amorph (the ASE and batched engines): the thermostat and
        its time are part of the fingerprint."""
        settings = task.settings
        fingerprint = {
            **task.fingerprint(engine_name),
            "thermostat": settings.thermostat,
            "thermostat_time_fs": settings.thermostat_time_fs,
        }
        return cls(task, fingerprint)

    def chunk_path(self, index: int) -> Path:
        return self.task.chunk_path(index)

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
        """The result of an identical run already completed here, if any."""
        trajectory = self.load(self.final_path)
        if trajectory is None or not trajectory.metadata.get("complete"):
            return None
        return self.result(trajectory)

    def read_checkpoint(self) -> dict[str, Any] | None:
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
            if self.load(self.chunk_path(index)) is None:  # missing, damaged or foreign
                self.checkpoint_path.unlink()
                return None
        return checkpoint

    def save_chunk(self, index: int, chunk: Trajectory, state: RunState | None = None) -> None:
        """Write chunk ``index``, then, given the ``state`` at its end, the checkpoint (each file
        atomically: a checkpoint never points past the chunks on disk)."""
        chunk.save(self.chunk_path(index))
        if state is None:
            return
        saved = {
            "fingerprint": self.fingerprint,
            "chunks_done": state.chunks_done,
            "thermostat": state.thermostat,
        }
        with atomic_path(self.checkpoint_path) as tmp, open(tmp, "wb") as handle:
            np.savez(
                handle,
                positions=state.positions,
                momenta=state.momenta,  # exact, unlike velocities converted to Å/fs
                state=np.array(json.dumps(saved)),
            )

    def finish(self, final_state: dict[str, Any]) -> Trajectory:
        """Join the chunks into the final trajectory, marked complete with ``final_state``, and
        delete the chunks and the checkpoint."""
        trajectory = Trajectory.concatenate(
            [Trajectory.load(self.chunk_path(i)) for i in range(self.n_chunks)]
        )
        trajectory.metadata = {**self.metadata, "complete": True, "final_state": final_state}
        trajectory.save(self.final_path)
        for i in range(self.n_chunks):
            self.chunk_path(i).unlink(missing_ok=True)
        self.checkpoint_path.unlink(missing_ok=True)
        return trajectory

    def result(self, trajectory: Trajectory, **timing: float) -> MDResult:
        """The task's result from its complete trajectory; ``timing``: ``MDResult``'s counters."""
        final = trajectory.metadata["final_state"]
        structure = (
            Structure.from_dict(final["structure"])
            if "structure" in final
            else trajectory.structure(-1)
        )
        return MDResult(
            final_state=MDState(
                structure=structure,
                velocities=final["velocities"],
                thermostat=final.get("thermostat"),
            ),
            stats=RunStats.from_trajectory(trajectory, self.task.settings),
            trajectory_path=str(self.final_path.resolve()),
            steps=self.task.steps,
            time_step_fs=self.task.time_step_fs,
            **timing,
        )


def set_aside(path: Path, error: Exception) -> None:
    """Rename the damaged file ``path`` to ``<name>.corrupt`` and say so."""
    corrupt = path.with_name(f"{path.name}.corrupt")
    os.replace(path, corrupt)
    logger.warning("%s is damaged (%s): moved to %s; computing it again", path, error, corrupt.name)


class Frames:
    """The sampled frames of the chunk in progress, turned into its trajectory."""

    def __init__(self) -> None:
        self.rows: list[tuple] = []

    def add(
        self,
        positions: np.ndarray,
        time_fs: float,
        energy: float,
        temperature: float,
        virial: float,
        kinetic: float,
    ) -> None:
        """One frame: positions (Å), time (fs), energy (eV), temperature (K), virial and kinetic
        pressure (GPa)."""
        self.rows.append((positions, time_fs, energy, temperature, virial, kinetic))

    def pop_trajectory(self, state: RunState, metadata: dict[str, Any]) -> Trajectory:
        """The frames added since the last call, as a trajectory in ``state``'s fixed cell."""
        columns = zip(*self.rows, strict=True)
        arrays = {k: np.array(v) for k, v in zip(FRAME_COLUMNS, columns, strict=True)}
        self.rows = []
        return Trajectory(
            numbers=state.numbers, cells=state.cell, metadata=dict(metadata), **arrays
        )
