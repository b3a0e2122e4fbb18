"""The VASP engine: NVT ab initio MD in restartable chunks, relaxations and static energies.

An MD task runs as consecutive VASP runs of at most ``chunk_steps`` steps, each in its own folder
``<label>.vasp/chunkNNNN`` and each continuing from the previous chunk's CONTCAR positions and
velocities (the Nosé thermostat variable restarts with every chunk, as VASP does not write it). A
finished chunk is parsed into ``<label>.chunkNNNN.npz``, the mark that it is done: a task rerun in
the same ``work_dir`` after a walltime kill redoes only the chunk that was cut short, so no frame is
lost or repeated, and a task already finished there (same fingerprint) is not run again
(:mod:`amorph.md.lifecycle`).

Each VASP run goes through custodian (:mod:`amorph.md.vasp.recovery`), which fixes the inputs of a
run that fails recoverably and reruns the chunk from its start; its corrections are kept in the
chunk's metadata (``vasp_corrections``) and in ``custodian.json`` in the chunk's folder. An error
that custodian cannot fix raises ``EngineError`` in one line naming the composition, temperature,
chunk and custodian's reason. With a walltime (``VaspSettings.wall_time_s``, or custodian's
detection from the scheduler), a chunk is not started unless the time left exceeds the buffer plus
the last chunk's duration, and custodian stops a chunk that runs into the buffer (STOPCAR):
both raise :class:`~amorph.errors.WalltimeReached`, and the requeued job resumes from the last
complete chunk.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import time
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from pymatgen.core import Structure
from pymatgen.io.vasp import Incar, Vasprun
from pymatgen.io.vasp.outputs import UnconvergedVASPWarning
from pymatgen.io.vasp.sets import VaspInputSet

from amorph.errors import EngineError, InputError, WalltimeReached
from amorph.md.engine import Engine, EngineSpec, MDResult, MDTask, RelaxResult
from amorph.md.lifecycle import (
    RunFiles,
    instability,
    masses_of,
    maxwell_boltzmann_momenta,
    to_velocities,
)
from amorph.md.vasp.outputs import check_finished, last_words, progress, read_md_output
from amorph.md.vasp.settings import VaspSettings
from amorph.trajectory import Trajectory


class VaspEngine(Engine):
    """VASP behind the engine interface; every setting is on :class:`VaspSettings`."""

    name = "vasp"

    def __init__(self, settings: VaspSettings):
        if importlib.util.find_spec("custodian") is None:
            raise EngineError(
                "the VASP engine runs VASP under custodian: pip install 'amorph[vasp]'"
            )
        settings.check_potcar_directory()
        self.settings = settings

    def check_elements(self, symbols: list[str]) -> None:
        self.settings.check_potcars(symbols)

    def run_one(self, task: MDTask) -> MDResult:
        return _ChunkedRun(self.settings, task).execute()

    def relax(
        self,
        structure: Structure,
        work_dir: Path,
        relax_cell: bool = True,
        fmax: float = 0.05,
        max_steps: int = 200,
    ) -> RelaxResult:
        """One MP relaxation (``MPRelaxSet``) in ``work_dir/relax``; not converged if NSW steps were
        used up.

        (MP's workflows relax twice to shed the Pulay stress of the first cell; relax the result
        again for that.)"""
        vasprun = self._run(
            self.settings.relax_set(structure, relax_cell, fmax, max_steps),
            Path(work_dir) / "relax",
        )
        return RelaxResult(
            vasprun.final_structure,
            float(vasprun.final_energy),
            bool(vasprun.converged_ionic),
            len(vasprun.ionic_steps),
        )

    def static(self, structure: Structure, work_dir: Path) -> float:
        """The total energy (``e_0_energy``) of an MP static run (``MPStaticSet``) in
        ``work_dir/static``."""
        return float(
            self._run(self.settings.static_set(structure), Path(work_dir) / "static").final_energy
        )

    def _run(self, input_set: VaspInputSet, directory: Path) -> Vasprun:
        from amorph.md.vasp.recovery import single_run_handlers

        run_in_fresh_directory(self.settings, input_set, directory, single_run_handlers())
        check_finished(directory)
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore", UnconvergedVASPWarning
            )  # ionic convergence is reported instead
            return Vasprun(
                directory / "vasprun.xml",
                parse_dos=False,
                parse_eigen=False,
                parse_potcar_file=False,
            )


def run_in_fresh_directory(
    settings: VaspSettings,
    input_set: VaspInputSet,
    directory: Path,
    handlers: list,
    expected_steps: int | None = None,
) -> list[dict[str, Any]]:
    """Write ``input_set`` into an emptied ``directory`` and run VASP there under custodian; return
    custodian's corrections. An MD chunk (``expected_steps``) restarts from the POSCAR written."""
    from amorph.md.vasp.recovery import ChunkJob, FreshJob, run_with_custodian

    if directory.exists():
        shutil.rmtree(directory)  # what an interrupted attempt left
    input_set.write_input(directory)
    try:
        return run_with_custodian(
            settings.command,
            directory,
            handlers,
            settings.custodian_kwargs,
            FreshJob if expected_steps is None else ChunkJob,
        )
    except EngineError as exc:
        raise EngineError(
            f"{progress(directory, expected_steps)}; {exc}{last_words(directory)}"
        ) from None


@dataclass
class _ChunkStart:
    """Where a chunk starts: the structure VASP gets, its velocities and its unwrapped positions."""

    structure: Structure
    velocities: np.ndarray  # Å/fs
    positions: np.ndarray  # Cartesian, unwrapped: continues the previous chunk's trajectory

    def as_dict(self) -> dict[str, Any]:
        return {
            "structure": json.loads(self.structure.to_json()),
            "velocities": self.velocities.tolist(),
            "positions": self.positions.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> _ChunkStart:
        return cls(
            Structure.from_dict(data["structure"]),
            np.array(data["velocities"]),
            np.array(data["positions"]),
        )


class _ChunkedRun:
    """One MD task as VASP runs of ``chunk_steps`` steps, each continuing from the last one's
    CONTCAR."""

    def __init__(self, settings: VaspSettings, task: MDTask):
        if task.settings.thermostat != "nose-hoover":
            raise InputError(
                "the VASP engine runs Nosé–Hoover NVT (MDALGO = 2) only, "
                f"not {task.settings.thermostat!r}"
            )
        self.settings = settings
        self.task = task
        self.dt_fs = task.time_step_fs
        fingerprint = {
            **task.fingerprint("vasp"),
            "incar": settings.md_incar,
            "ediff_per_atom": settings.ediff_per_atom,
            "potcars": [
                settings.potcar_functional,
                settings.potcar_settings,
                settings.spin_polarized,
            ],
        }
        self.files = RunFiles(task, fingerprint, thermostat="nose-hoover (VASP MDALGO = 2)")
        from amorph.md.vasp.recovery import walltime_handler

        self.walltime = walltime_handler(settings.wall_time_s, settings.wall_time_buffer_s)
        self.last_chunk_s = 0.0  # how long the last chunk run here took

    def where(self, index: int) -> str:
        formula = self.task.state.structure.composition.reduced_formula
        return (
            f"VASP MD of {formula} at {self.task.temperature:g} K, "
            f"chunk {index + 1} of {self.files.n_chunks}"
        )

    def chunk_dir(self, index: int) -> Path:
        return self.task.work_dir / f"{self.task.label}.vasp" / f"chunk{index:04d}"

    def execute(self) -> MDResult:
        files = self.files
        finished = files.finished()
        if finished is not None:
            return finished
        clock = time.perf_counter()
        start, ionic_steps, resuming, corrections = self._first_start(), 0, True, {}
        for index in range(files.n_chunks):
            piece = files.load(files.chunk_path(index)) if resuming else None
            if piece is None:
                # later chunk files, if any, continued another attempt of this chunk
                resuming = False
                piece = self._run_chunk(index, start)
                ionic_steps += files.chunk_length(index)
            start = _ChunkStart.from_dict(piece.metadata["end"])
            if piece.metadata.get("vasp_corrections"):
                corrections[str(index)] = piece.metadata["vasp_corrections"]
        files.metadata["vasp_corrections"] = corrections  # custodian's, by chunk
        wall = time.perf_counter() - clock
        final_state = {
            "structure": json.loads(start.structure.to_json()),
            "velocities": start.velocities.tolist(),
        }
        return files.result(
            files.finish(final_state),
            n_force_calls=ionic_steps,
            force_time_s=wall,
            wall_time_s=wall,
        )

    def _first_start(self) -> _ChunkStart:
        """The task's structure in VASP's atom order (by electronegativity), with its velocities."""
        task = self.task
        structure = task.state.structure
        if task.state.velocities is not None:
            velocities = np.asarray(task.state.velocities, dtype=float)
        else:
            masses = masses_of(np.array(structure.atomic_numbers))
            rng = np.random.default_rng(task.seed)
            momenta = maxwell_boltzmann_momenta(masses, task.temperature, rng)
            velocities = to_velocities(momenta, masses)
        bare = Structure(
            structure.lattice,
            structure.species,
            structure.frac_coords,
            site_properties={"velocities": velocities.tolist()},
        )
        ordered = bare.get_sorted_structure()
        return _ChunkStart(
            ordered, np.array(ordered.site_properties["velocities"]), ordered.cart_coords
        )

    def _run_chunk(self, index: int, start: _ChunkStart) -> Trajectory:
        try:
            return self._try_chunk(index, start)
        except EngineError as exc:
            raise type(exc)(f"{self.where(index)}: {exc}") from None

    def _check_walltime(self) -> None:
        """Raise ``WalltimeReached`` unless the time left exceeds the buffer and the last chunk."""
        if self.walltime is None:
            return
        spent = (datetime.now() - self.walltime.start_time).total_seconds()
        left = self.walltime.wall_time - spent
        if left < self.walltime.buffer_time + self.last_chunk_s:
            raise WalltimeReached(
                f"not started with {max(left, 0):.0f} s of the walltime left (buffer "
                f"{self.walltime.buffer_time:g} s, last chunk {self.last_chunk_s:.0f} s); "
                "run again to resume"
            )

    def _try_chunk(self, index: int, start: _ChunkStart) -> Trajectory:
        from amorph.md.vasp.recovery import md_handlers

        self._check_walltime()
        steps = self.files.chunk_length(index)
        directory = self.chunk_dir(index)
        structure = start.structure.copy(site_properties={"velocities": start.velocities.tolist()})
        input_set = self.settings.md_set(
            structure, self.task.temperature, steps, self.dt_fs, self.task.settings.sample_interval
        )
        clock = time.perf_counter()
        corrections = run_in_fresh_directory(
            self.settings, input_set, directory, md_handlers(self.walltime), steps
        )
        self.last_chunk_s = time.perf_counter() - clock
        if (directory / "STOPCAR").exists():
            raise WalltimeReached(
                f"{progress(directory, steps)}: stopped cleanly by custodian's WalltimeHandler "
                "(STOPCAR); run again to resume"
            )
        check_finished(directory, steps)
        changed = changed_md_tags(input_set.incar, Incar.from_file(directory / "INCAR"))
        if changed:
            raise EngineError(
                f"custodian's corrections changed the MD itself ({changed}) in {directory}"
            )
        output = read_md_output(directory)
        frames = output.steps
        if not np.array_equal(frames.numbers, start.structure.atomic_numbers):
            raise EngineError(
                f"{directory}: VASP's atoms are not those of the POSCAR written for it"
            )
        lattice = start.structure.lattice.matrix
        images = np.round((start.positions - frames.positions[0]) @ np.linalg.inv(lattice))
        # continue the previous chunk's unwrapped path
        positions = frames.positions + images @ lattice
        step_frac = output.end_structure.frac_coords - positions[-1] @ np.linalg.inv(lattice)
        end_positions = positions[-1] + (step_frac - np.round(step_frac)) @ lattice
        first_step = index * self.files.chunk_steps
        for i, (temperature, energy) in enumerate(
            zip(frames.temperatures, frames.energies, strict=True)
        ):
            error = instability(self.task, first_step + i + 1, temperature, energy)
            if error is not None:
                raise error
        keep = slice(None, None, self.task.settings.sample_interval)
        end = _ChunkStart(output.end_structure, output.end_velocities, end_positions)
        piece = Trajectory(
            numbers=frames.numbers,
            positions=positions[keep],
            cells=frames.cells[keep],
            time_fs=(first_step + np.arange(steps))[keep] * self.dt_fs,
            energies=frames.energies[keep],
            temperatures=frames.temperatures[keep],
            virial_pressures=output.virial_pressures_GPa[keep],
            kinetic_pressures=(output.total_pressures_GPa - output.virial_pressures_GPa)[keep],
            metadata={
                **self.files.metadata,
                "chunk": index,
                "end": end.as_dict(),
                "vasp_corrections": corrections,
            },
        )
        self.files.save_chunk(index, piece)
        return piece


MD_TAGS = ("IBRION", "NSW", "POTIM", "TEBEG", "TEEND", "MDALGO", "SMASS", "ISIF", "NBLOCK")


def changed_md_tags(planned: Incar, run: Incar) -> str:
    """The MD tags that differ between the planned INCAR and the one VASP ran, as text."""
    return ", ".join(
        f"{tag} {planned.get(tag)} -> {run.get(tag)}"
        for tag in MD_TAGS
        if planned.get(tag) != run.get(tag)
    )


def vasp_engine(spec: EngineSpec) -> VaspEngine:
    """The VASP engine for ``EngineSpec("vasp", options={...})``; options are
    :class:`VaspSettings` fields."""
    return VaspEngine(VaspSettings.from_options(spec.options))
