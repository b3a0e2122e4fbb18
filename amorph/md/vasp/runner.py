"""The VASP engine: NVT ab initio MD in restartable chunks, relaxations and static energies.

An MD task runs as consecutive VASP runs of at most ``chunk_steps`` steps, each in its own folder
``<label>.vasp/chunkNNNN`` and each continuing from the previous chunk's last positions and
velocities (the Nosé thermostat variable restarts with every chunk, as VASP does not write it). The
run's life is that of every engine (:class:`~amorph.md.lifecycle.Run`): a finished chunk is parsed
into ``<label>.chunkNNNN.npz`` with a checkpoint, so a task rerun in the same ``work_dir`` after a
walltime kill redoes only the chunk that was cut short, with no frame lost or repeated, and a task
already finished there (same fingerprint) is not run again. Atoms are in VASP's order (sorted by
electronegativity) throughout; a frame is the configuration an ionic step starts from, so a run's
frames go from its start to one step before its end.

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
import shutil
import time
import warnings
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from pymatgen.core import Structure
from pymatgen.io.vasp import Incar, Vasprun
from pymatgen.io.vasp.outputs import UnconvergedVASPWarning
from pymatgen.io.vasp.sets import VaspInputSet

from amorph.constants import EV_A3_TO_GPA
from amorph.errors import EngineError, InputError, WalltimeReached
from amorph.md.engine import (
    BasisStress,
    Engine,
    EngineSpec,
    MDResult,
    MDState,
    MDTask,
    RelaxResult,
    SinglePoint,
)
from amorph.md.lifecycle import Run, masses_of, start_momenta, to_momenta, to_velocities
from amorph.md.vasp.outputs import (
    KBAR_TO_GPA,
    check_finished,
    last_words,
    progress,
    read_md_output,
)
from amorph.md.vasp.settings import CONVERGED_ENCUT_FACTOR, VaspSettings


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
        """Raise ``EngineError`` for the first element whose POTCAR cannot be read."""
        self.settings.check_potcars(symbols)

    def describe(self, structure: Structure) -> dict[str, Any]:
        """:meth:`VaspSettings.describe`, the same for every structure."""
        return self.settings.describe()

    def run_one(self, task: MDTask) -> MDResult:
        """The task as VASP runs of ``chunk_steps`` steps, each going on from the last one's end."""
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

    def evaluate(
        self, structures: list[Structure], work_dir: Path | None = None
    ) -> list[SinglePoint]:
        """Single points with the MD's INCAR (:meth:`VaspSettings.point_set`), one VASP run each
        in ``work_dir/pointNNNN``."""
        folder = Path(work_dir or Path.cwd())
        return [
            self._point(structure, folder / f"point{i:04d}")
            for i, structure in enumerate(structures)
        ]

    def basis_stress(
        self, structure: Structure, work_dir: Path | None = None
    ) -> BasisStress | None:
        """``structure``'s pressure at the MD's ENCUT and at ``converged_encut``; None where
        the settings do not correct for it (``inputs="paper"``)."""
        settings = self.settings
        if not settings.corrects_basis:
            return None
        encut = settings.md_encut(structure)
        converged = settings.converged_encut or CONVERGED_ENCUT_FACTOR * encut
        folder = Path(work_dir or Path.cwd())
        points = [
            self._point(structure, folder / f"encut{cutoff:g}", cutoff)
            for cutoff in (encut, converged)
        ]
        return BasisStress(encut, converged, *(p.virial_pressure_GPa for p in points))

    def _point(self, structure: Structure, directory: Path, encut: float | None = None):
        """One single point, its forces in ``structure``'s atom order (VASP's is sorted)."""
        order = sorted(range(len(structure)), key=lambda i: structure[i])
        ordered = Structure.from_sites([structure[i] for i in order])
        vasprun = self._run(self.settings.point_set(ordered, encut), directory)
        step = vasprun.ionic_steps[-1]
        forces = np.empty((len(structure), 3))
        forces[order] = np.asarray(step["forces"], dtype=float)
        stress = -np.asarray(step["stress"], dtype=float) * KBAR_TO_GPA / EV_A3_TO_GPA
        return SinglePoint(float(step["e_fr_energy"]), forces, stress)

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
    input_set.write_input(str(directory))
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


class _ChunkedRun:
    """One MD task as VASP runs of ``chunk_steps`` steps, each going on from the last one's end."""

    def __init__(self, settings: VaspSettings, task: MDTask):
        if task.settings.thermostat != "nose-hoover":
            raise InputError(
                "the VASP engine runs Nosé–Hoover NVT (MDALGO = 2) only, "
                f"not {task.settings.thermostat!r}"
            )
        self.settings = settings
        fingerprint = {**task.fingerprint("vasp"), "engine_settings": settings.describe()}
        self.task = replace(task, state=_in_vasp_order(task))
        self.run = Run(self.task, fingerprint, thermostat="nose-hoover (VASP MDALGO = 2)")
        from amorph.md.vasp.recovery import walltime_handler

        self.walltime = walltime_handler(settings.wall_time_s, settings.wall_time_buffer_s)
        self.last_chunk_s = 0.0  # how long the last chunk run here took

    def where(self, index: int) -> str:
        formula = self.task.state.structure.composition.reduced_formula
        return (
            f"VASP MD of {formula} at {self.task.temperature:g} K, "
            f"chunk {index + 1} of {self.run.n_chunks}"
        )

    def chunk_dir(self, index: int) -> Path:
        return self.task.work_dir / f"{self.task.label}.vasp" / f"chunk{index:04d}"

    def execute(self) -> MDResult:
        run = self.run
        finished = run.finished()
        if finished is not None:
            return finished
        run.start().thermostat = None  # VASP restarts its Nosé thermostat with every chunk
        for steps in run.chunks():
            index = run.step // run.chunk_steps
            try:
                self._run_chunk(index, steps)
            except EngineError as exc:
                raise type(exc)(f"{self.where(index)}: {exc}") from None
        assert run.result is not None  # the last chunk, or chunks() at the end, finished the run
        return run.result

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

    def _run_chunk(self, index: int, steps: int) -> None:
        from amorph.md.vasp.recovery import md_handlers

        self._check_walltime()
        run, state = self.run, self.run.current
        directory = self.chunk_dir(index)
        structure = state.md_state().structure
        structure.add_site_property(
            "velocities", to_velocities(state.momenta, state.masses).tolist()
        )
        input_set = self.settings.md_set(
            structure, self.task.temperature, steps, run.dt_fs, self.task.settings.sample_interval
        )
        clock = time.perf_counter()
        corrections = run_in_fresh_directory(
            self.settings, input_set, directory, md_handlers(self.walltime), steps
        )
        self.last_chunk_s = time.perf_counter() - clock
        run.force_seconds += self.last_chunk_s
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
        energies, temperatures = frames.energies, frames.temperatures
        if energies is None or temperatures is None:
            raise EngineError(f"{directory}: vasprun.xml lacks a step's energy or kinetic energy")
        if not np.array_equal(frames.numbers, state.numbers):
            raise EngineError(
                f"{directory}: VASP's atoms are not those of the POSCAR written for it"
            )
        lattice = state.cell
        images = np.round((state.positions - frames.positions[0]) @ np.linalg.inv(lattice))
        # continue the previous chunk's unwrapped path
        positions = frames.positions + images @ lattice
        step_frac = output.end_structure.frac_coords - positions[-1] @ np.linalg.inv(lattice)
        end_positions = positions[-1] + (step_frac - np.round(step_frac)) @ lattice
        kinetic = output.total_pressures_GPa - output.virial_pressures_GPa
        for i in range(steps):  # ionic step i starts from the configuration after run.step steps
            if run.sampled(run.step):
                run.add_frame(
                    run.step,
                    positions[i],
                    energies[i],
                    temperatures[i],
                    output.virial_pressures_GPa[i],
                    kinetic[i],
                )
            run.advance(energies[i], temperatures[i])
        run.force_calls += steps
        run.chunk_notes["vasp_corrections"] = corrections
        run.end_chunk(end_positions, to_momenta(output.end_velocities, state.masses))


def _in_vasp_order(task: MDTask) -> MDState:
    """The task's start state with its atoms sorted as VASP's inputs sort them (by
    electronegativity), with its velocities, or Maxwell–Boltzmann ones from its seed."""
    structure = task.state.structure
    momenta = start_momenta(task, np.random.default_rng(task.seed))
    velocities = to_velocities(momenta, masses_of(np.array(structure.atomic_numbers)))
    bare = Structure(
        structure.lattice,
        structure.species,
        structure.frac_coords,
        site_properties={"velocities": velocities.tolist()},
    )
    ordered = bare.get_sorted_structure()
    bare = Structure(ordered.lattice, ordered.species, ordered.frac_coords)
    return MDState(bare, list(ordered.site_properties["velocities"]))


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
