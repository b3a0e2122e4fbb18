"""The engine interface: what every MD engine (ML potentials, GPAW, VASP) provides to the flows.

A flow never talks to a potential directly. It describes MD runs as :class:`MDTask` objects and
hands them to the :class:`Engine` named by an :class:`EngineSpec`; the engine returns one
:class:`MDResult` per task, whose numbers (:class:`RunStats`) are computed here from the trajectory
the engine wrote, so that every engine reports pressures, temperatures and energies by the same
rules.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from monty.json import MSONable
from pymatgen.core import Composition, Structure

from amorph.analysis.timeseries import SampleMean, sample_mean
from amorph.constants import EV_A3_TO_GPA
from amorph.errors import AmorphError, EngineError, InputError, check_range
from amorph.trajectory import Trajectory

PressureConvention = Literal["virial", "total"]
Thermostat = Literal["nose-hoover", "langevin"]

# Engine kinds and the factory that builds each: "module:function", imported only when used.
ENGINE_FACTORIES = {
    "chgnet": "amorph.potentials.chgnet:chgnet_engine",  # amorph's batched evaluation
    "m3gnet": "amorph.potentials.m3gnet:m3gnet_engine",
    "chgnet-ase": "amorph.potentials.chgnet:chgnet_ase_engine",  # the packages' own ASE calculators
    "m3gnet-ase": "amorph.potentials.m3gnet:m3gnet_ase_engine",
    "sevennet": "amorph.potentials.sevennet:sevennet_engine",
    "sevennet-ase": "amorph.potentials.sevennet:sevennet_ase_engine",
    "ase": "amorph.md.ase:calculator_factory_engine",
    "batched": "amorph.md.batched:potential_factory_engine",
    "vasp": "amorph.md.vasp:vasp_engine",
    "gpaw": "amorph.md.gpaw:gpaw_engine",
}
BATCHED_KINDS = frozenset({"chgnet", "m3gnet", "sevennet", "batched"})
PLANE_WAVE_KINDS = frozenset({"gpaw", "vasp"})  # DFT engines, whose basis-set stress is measured


SEEDS = (0, 2**32 - 1)  # numpy's SeedSequence and packmol take non-negative 32-bit seeds
TEMPERATURES_K = (1.0, 20000.0)  # beyond, no potential (nor the paper's protocol) applies


@dataclass
class MDSettings(MSONable):
    """How an MD run is integrated and averaged; one instance per stage, visible on its Maker.

    ``pressure_convention`` "virial" averages the virial pressure without the kinetic (ideal-gas)
    term, as VASP's "external pressure" that the original MPMorph and the published database use;
    "total" adds N k_B T / V.
    """

    time_step_fs: float | None = (
        None  # None: 2 fs, or 0.5 fs when H is present (the paper's choice)
    )
    thermostat: Thermostat = "nose-hoover"
    thermostat_time_fs: float = 100.0  # Nosé–Hoover damping time, or 1/friction for Langevin
    sample_interval: int = 1  # steps between stored frames
    equilibration_fraction: float = 0.5  # leading fraction of frames left out of averages
    pressure_convention: PressureConvention = "virial"
    blowup_temperature_factor: float = 5.0  # a run whose T exceeds this × target has exploded

    def time_step_for(self, structure: Structure | Composition) -> float:
        """Time step (fs): ``time_step_fs``, else 0.5 with H in ``structure``, 2 without."""
        if self.time_step_fs is not None:
            return self.time_step_fs
        return 0.5 if "H" in getattr(structure, "composition", structure) else 2.0

    def validate(self) -> None:
        """Raise ``InputError`` for settings that cannot work."""
        if self.time_step_fs is not None:
            check_range("time step", self.time_step_fs, 0.01, 10, " fs")
        if self.thermostat_time_fs != math.inf:  # inf: uncoupled (Langevin without friction)
            check_range("thermostat time", self.thermostat_time_fs, 1, 1e6, " fs")
        check_range("blow-up temperature factor", self.blowup_temperature_factor, 1.5, 1e3)
        if self.sample_interval < 1:
            raise InputError(f"sample interval must be at least 1, got {self.sample_interval}")
        if not 0 <= self.equilibration_fraction < 1:
            raise InputError("equilibration fraction must lie in [0, 1)")
        if self.pressure_convention not in ("virial", "total"):
            raise InputError(f"unknown pressure convention {self.pressure_convention!r}")
        if self.thermostat not in ("nose-hoover", "langevin"):
            raise InputError(f"unknown thermostat {self.thermostat!r}")


CHAIN_LENGTH = 3  # Nosé–Hoover chain variables (ASE's default)


@dataclass
class ThermostatState(MSONable):
    """A thermostat's state, the same for every engine: the positions ``eta`` and momenta ``p_eta``
    of a Nosé–Hoover chain, or the state of the generator that draws the Langevin noise."""

    kind: Thermostat
    eta: list[float] | None = None
    p_eta: list[float] | None = None
    rng: dict[str, Any] | None = None

    @classmethod
    def chain(cls, eta, p_eta) -> ThermostatState:
        """A Nosé–Hoover chain with positions ``eta`` and momenta ``p_eta``."""
        return cls("nose-hoover", np.asarray(eta).tolist(), np.asarray(p_eta).tolist())

    @classmethod
    def langevin(cls, rng: np.random.Generator) -> ThermostatState:
        """The state of ``rng``, the generator of the Langevin noise."""
        return cls("langevin", rng=dict(rng.bit_generator.state))

    @classmethod
    def fresh(cls, kind: Thermostat, rng: np.random.Generator) -> ThermostatState:
        """A thermostat at rest: a chain with zero positions and momenta, or ``rng``'s state."""
        zeros = [0.0] * CHAIN_LENGTH
        return cls.langevin(rng) if kind == "langevin" else cls.chain(zeros, zeros)

    def values(self) -> dict[str, Any]:
        """The fields that are set (what identifies the state)."""
        return {k: v for k, v in self.as_dict().items() if v is not None and k[0] != "@"}


@dataclass
class MDState(MSONable):
    """Where a run ends and the next may go on: positions, velocities (Å/fs), thermostat state."""

    structure: Structure
    velocities: list[list[float]] | None = None
    thermostat: ThermostatState | None = None

    def __post_init__(self) -> None:
        """Rebuild the thermostat state from a dict, as older documents and checkpoints hold it."""
        if isinstance(self.thermostat, dict):  # as older documents and checkpoints hold it
            self.thermostat = ThermostatState.from_dict(self.thermostat)

    def digest(self) -> str:
        """A short hash of the state, so that a finished run is reused only for the same start."""
        digest = hashlib.sha256(np.round(self.structure.lattice.matrix, 6).tobytes())
        digest.update(np.round(self.structure.cart_coords, 6).tobytes())
        digest.update(np.round(np.asarray(self.velocities or [], dtype=float), 8).tobytes())
        thermostat = self.thermostat.values() if self.thermostat else None
        digest.update(json.dumps(thermostat, sort_keys=True).encode())
        return digest.hexdigest()[:16]


@dataclass
class MDTask:
    """One NVT run: from ``state`` at ``temperature`` for ``steps`` steps, writes into ``work_dir``.

    Without velocities in ``state`` the engine draws Maxwell–Boltzmann velocities at ``temperature``
    from ``seed`` (an instantaneous quench when the structure comes from a hotter run). Runs with
    ``chunk_steps`` are written in chunks with a checkpoint after each, and a rerun in the same
    ``work_dir`` continues from the last checkpoint.
    """

    state: MDState
    temperature: float
    steps: int
    settings: MDSettings
    work_dir: Path
    seed: int = 0
    chunk_steps: int | None = None
    label: str = "md"

    def __post_init__(self) -> None:
        """Raise ``InputError`` for a task that cannot run; make ``work_dir`` a ``Path``."""
        if self.temperature <= 0:
            raise InputError(f"temperature must be positive, got {self.temperature} K")
        if self.steps <= 0:
            raise InputError(f"number of MD steps must be positive, got {self.steps}")
        self.settings.validate()
        if self.steps % self.settings.sample_interval:
            raise InputError(
                f"{self.steps} steps is not a multiple of the sample interval "
                f"{self.settings.sample_interval}"
            )
        self.work_dir = Path(self.work_dir)

    @property
    def time_step_fs(self) -> float:
        """Time step (fs) of the run, by ``settings`` for its structure."""
        return self.settings.time_step_for(self.state.structure)

    @property
    def chunk_size(self) -> int:
        """Steps per chunk: ``chunk_steps`` (else the whole run) in whole sample intervals."""
        chunk = self.chunk_steps or self.steps
        interval = self.settings.sample_interval
        return max(interval, chunk - chunk % interval)

    def path(self, suffix: str) -> Path:
        """A file of this run: ``<work_dir>/<label><suffix>``."""
        return self.work_dir / f"{self.label}{suffix}"

    def chunk_path(self, index: int) -> Path:
        """The file of chunk ``index``: ``<work_dir>/<label>.chunkNNNN.npz``, NNNN the index."""
        return self.path(f".chunk{index:04d}.npz")

    def fingerprint(self, engine: str) -> dict[str, Any]:
        """What identifies the run: a finished or checkpointed run is reused only when all of it
        matches."""
        return {
            "label": self.label,
            "steps": self.steps,
            "temperature_K": self.temperature,
            "time_step_fs": self.time_step_fs,
            "n_atoms": len(self.state.structure),
            "sample_interval": self.settings.sample_interval,
            "chunk_steps": self.chunk_size,
            "seed": self.seed,
            "engine": engine,
            "start": self.state.digest(),
        }


@dataclass
class RunStats(MSONable):
    """Averages of a run over its equilibrated part (frames after ``equilibration_fraction``)."""

    volume_A3: float
    n_atoms: int
    temperature_K: float
    pressure_GPa: float  # by ``pressure_convention``
    pressure_sem_GPa: float  # standard error from block averages (amorph.analysis.timeseries)
    virial_pressure_GPa: float
    kinetic_pressure_GPa: float
    energy_eV_per_atom: float
    energy_drift_eV_per_atom: float  # mean energy of the second half minus the first half
    pressure_convention: str
    n_frames_averaged: int
    pressure_dof: int = 4  # degrees of freedom of the standard error (Student's t)
    energy_drift_sem_eV_per_atom: float = 0.0  # from the halves' block-average errors

    @classmethod
    def from_trajectory(
        cls, trajectory: Trajectory, settings: MDSettings, start: int | None = None
    ) -> RunStats:
        """Averages over frames ``start:`` (default: after ``settings.equilibration_fraction``);
        the energy drift compares the two halves of the whole trajectory."""
        n = trajectory.n_frames
        if start is None:
            start = int(n * settings.equilibration_fraction)
        eq = slice(min(start, n - 1), None)
        # runs write energies, temperatures and both pressures for every frame (Run.add_frame)
        assert trajectory.virial_pressures is not None and trajectory.kinetic_pressures is not None
        assert trajectory.energies is not None and trajectory.temperatures is not None
        virial = trajectory.virial_pressures[eq]
        kinetic = trajectory.kinetic_pressures[eq]
        pressure = sample_mean(
            virial + kinetic if settings.pressure_convention == "total" else virial
        )
        energies = trajectory.energies / trajectory.n_atoms
        drift, drift_sem = 0.0, 0.0
        if n > 1:
            first, second = sample_mean(energies[: n // 2]), sample_mean(energies[n // 2 :])
            drift = second.mean - first.mean
            drift_sem = float(np.hypot(first.sem, second.sem)) if n > 3 else 0.0
        return cls(
            volume_A3=float(trajectory.volumes[-1]),
            n_atoms=trajectory.n_atoms,
            temperature_K=float(trajectory.temperatures[eq].mean()),
            pressure_GPa=pressure.mean,
            pressure_sem_GPa=pressure.sem,
            virial_pressure_GPa=float(virial.mean()),
            kinetic_pressure_GPa=float(kinetic.mean()),
            energy_eV_per_atom=float(energies[eq].mean()),
            energy_drift_eV_per_atom=drift,
            energy_drift_sem_eV_per_atom=drift_sem,
            pressure_convention=settings.pressure_convention,
            n_frames_averaged=int(n - eq.start),
            pressure_dof=pressure.dof,
        )

    @property
    def pressure(self) -> SampleMean:
        """The mean pressure with its standard error and degrees of freedom."""
        return SampleMean(self.pressure_GPa, self.pressure_sem_GPa, self.pressure_dof)

    def corrected(self, basis: BasisStress | None) -> RunStats:
        """These statistics with the pressures at a converged basis (``basis``'s correction
        added); unchanged without one."""
        if basis is None:
            return self
        shift = basis.correction_GPa
        return replace(
            self,
            pressure_GPa=self.pressure_GPa + shift,
            virial_pressure_GPa=self.virial_pressure_GPa + shift,
        )


@dataclass
class MDResult(MSONable):
    """What a run leaves: its final state, its statistics and the path of its trajectory."""

    final_state: MDState
    stats: RunStats
    trajectory_path: str
    steps: int
    time_step_fs: float
    n_force_calls: int = 0
    force_time_s: float = 0.0
    wall_time_s: float = 0.0
    trajectory: Trajectory | None = None  # set only where the trajectory itself goes to the store

    def load_trajectory(self) -> Trajectory:
        """The trajectory: the one carried where it went to the store, else its file."""
        return self.trajectory or Trajectory.load(self.trajectory_path)


class Engine(ABC):
    """Runs MD tasks. Subclasses implement :meth:`run_one`; batched engines override :meth:`run`."""

    name: str = "engine"
    batches: bool = False  # True when one call of run(tasks) advances its tasks together
    description: dict[str, Any] | None = None  # what :meth:`describe` returns (a model's hash)

    def run(self, tasks: list[MDTask]) -> list[MDResult]:
        """Run ``tasks`` (independent of one another) and return their results in order."""
        return [self.run_one(task) for task in tasks]

    @abstractmethod
    def run_one(self, task: MDTask) -> MDResult:
        """Run one task."""

    def check_elements(self, symbols: list[str]) -> None:
        """Raise ``InputError`` if the engine cannot model one of ``symbols``.

        The base engine accepts every element; engines with a limited element set override this.
        """
        return None

    def check_cell(self, structure: Structure) -> None:
        """Raise ``InputError`` if the engine cannot run a cell of ``structure``'s atoms and size
        (its elements, the memory it needs); called before anything runs."""
        self.check_elements(sorted({site.specie.symbol for site in structure}))

    def describe(self, structure: Structure) -> dict[str, Any]:
        """The settings that decide this engine's numbers for ``structure`` (a DFT code's cutoff,
        k-points and datasets, a model's hash), JSON-ready: part of every run's fingerprint and
        of the stage documents. Empty for engines whose name says it all."""
        return dict(self.description or {})

    def relax(
        self,
        structure: Structure,
        work_dir: Path,
        relax_cell: bool = True,
        fmax: float = 0.05,
        max_steps: int = 200,
    ) -> RelaxResult:
        """Relax positions (and the cell with ``relax_cell``) until every force is below ``fmax``
        eV/Å, in at most ``max_steps`` ionic steps; engines that write files write them under
        ``work_dir``."""
        raise NotImplementedError(f"engine {self.name} cannot relax structures")

    def static(self, structure: Structure, work_dir: Path) -> float:
        """The total energy of ``structure`` in eV."""
        raise NotImplementedError(f"engine {self.name} cannot compute static energies")

    def evaluate(
        self, structures: list[Structure], work_dir: Path | None = None
    ) -> list[SinglePoint]:
        """Energy, forces and stress of each structure (no MD), e.g. frames of a trajectory;
        engines that write files write them under ``work_dir``."""
        raise NotImplementedError(f"engine {self.name} cannot evaluate structures")

    def basis_stress(
        self, structure: Structure, work_dir: Path | None = None
    ) -> BasisStress | None:
        """A plane-wave engine's basis-set (Pulay) stress on ``structure``; None for engines
        without a basis to converge (ML potentials) or told not to correct for it."""
        return None


@dataclass
class SinglePoint:
    """A structure's energy (eV), forces (N, 3) in eV/Å and stress (3, 3) in eV/Å³ (ASE's sign:
    the virial pressure is ``-trace(stress) / 3``)."""

    energy_eV: float
    forces: np.ndarray
    stress: np.ndarray

    @property
    def virial_pressure_GPa(self) -> float:
        """``-trace(stress) / 3`` in GPa."""
        return float(-np.trace(self.stress) / 3 * EV_A3_TO_GPA)


@dataclass
class PointComparison:
    """Single points of one engine against another's on the same frames (first minus second):
    the virial pressure difference (mean of the paired differences, its standard error), force
    RMSE and MAE, the second's force RMS, the energy difference per atom (mean and spread)."""

    pressure: SampleMean
    force_rmse_eV_A: float
    force_mae_eV_A: float
    reference_force_rms_eV_A: float
    energy_offset_eV_per_atom: float
    energy_spread_eV_per_atom: float

    @classmethod
    def of(cls, points: list[SinglePoint], reference: list[SinglePoint]) -> PointComparison:
        """``points`` against ``reference``, frame by frame."""
        n = len(points)
        pairs = list(zip(points, reference, strict=True))
        dp = np.array([a.virial_pressure_GPa - b.virial_pressure_GPa for a, b in pairs])
        forces = np.concatenate([a.forces - b.forces for a, b in pairs])
        de = np.array([(a.energy_eV - b.energy_eV) / len(a.forces) for a, b in pairs])
        sem = float(dp.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0
        return cls(
            SampleMean(float(dp.mean()), sem, max(n - 1, 1)),
            float(np.sqrt(np.mean(forces**2))),
            float(np.mean(np.abs(forces))),
            float(np.sqrt(np.mean(np.concatenate([b.forces for b in reference]) ** 2))),
            float(de.mean()),
            float(de.std(ddof=1)) if n > 1 else 0.0,
        )


@dataclass
class BasisStress(MSONable):
    """A plane-wave engine's virial pressure (GPa) on one structure at the run's cutoff and at a
    converged one (eV): what the run's pressures lack is :attr:`correction_GPa`."""

    cutoff_eV: float
    converged_cutoff_eV: float
    pressure_GPa: float
    converged_pressure_GPa: float

    @property
    def correction_GPa(self) -> float:
        """What the run's pressures lack (GPa): the converged pressure less the run-cutoff one."""
        return self.converged_pressure_GPa - self.pressure_GPa


@dataclass
class RelaxResult(MSONable):
    """A relaxed structure, its energy (eV), and whether forces met the tolerance in time."""

    structure: Structure
    energy_eV: float
    converged: bool
    steps: int


@dataclass
class EngineSpec(MSONable):
    """A serialisable description of an engine, resolved to a live engine once per process.

    ``kind`` is a key of :data:`ENGINE_FACTORIES` ("chgnet", "m3gnet", "chgnet-ase", "ase", "vasp"
    ...). ``model`` is engine specific: a pretrained model name or a local model directory for the
    ML potentials, ``"package.module:function"`` returning an ASE calculator for ``kind="ase"``, or
    returning a :class:`~amorph.md.potential.BatchedPotential` for ``kind="batched"``.
    """

    kind: str = "chgnet"
    model: str | None = None
    device: str = "cpu"
    options: dict[str, Any] = field(default_factory=dict)  # keyword arguments of the calculator

    @property
    def label(self) -> str:
        """The engine's name in results: its kind, or the factory path of a ``module:function``."""
        return self.model if self.kind in ("ase", "batched") and self.model else self.kind

    @property
    def batches(self) -> bool:
        """Whether the engine advances many MD runs in one call (known without loading it)."""
        return self.kind in BATCHED_KINDS

    @property
    def plane_waves(self) -> bool:
        """Whether the engine is a plane-wave DFT code, with a basis-set (Pulay) stress."""
        return self.kind in PLANE_WAVE_KINDS

    @classmethod
    def parse(cls, text: str, model: str | None = None, device: str = "cpu") -> EngineSpec:
        """A spec from the command line: an engine kind, or a ``module:function`` ASE calculator
        factory."""
        if ":" in text:
            return cls(kind="ase", model=text, device=device)
        if text not in ENGINE_FACTORIES:
            known = ", ".join(sorted(ENGINE_FACTORIES))
            raise InputError(
                f"unknown engine {text!r}: choose one of {known}, or give module:function"
            )
        return cls(kind=text, model=model, device=device)

    def load(self) -> Engine:  # type: ignore[override]  # a spec loads its engine, not a file
        """The live engine, built once per process (a model is loaded once, not once per MD run).

        Whatever building it raises, beyond amorph's own one-line errors (a user's
        ``module:function`` may be any function), is one :class:`~amorph.errors.EngineError`
        naming the engine.
        """
        key = json.dumps(
            [self.kind, self.model, self.device, self.options], sort_keys=True, default=str
        )
        if key not in _LOADED_ENGINES:
            if self.kind not in ENGINE_FACTORIES:
                raise EngineError(f"no engine of kind {self.kind!r}")
            module_name, function_name = ENGINE_FACTORIES[self.kind].split(":")
            factory = getattr(importlib.import_module(module_name), function_name)
            try:
                _LOADED_ENGINES[key] = factory(self)
            except AmorphError:
                raise
            except Exception as exc:
                raise EngineError(
                    f"engine {self.label} could not be made: {type(exc).__name__}: {exc}"
                ) from exc
        return _LOADED_ENGINES[key]


_LOADED_ENGINES: dict[str, Engine] = {}


def check_options(settings: type, options: dict[str, Any], engine: str) -> None:
    """Raise ``InputError`` naming the ``options`` that are not fields of the dataclass
    ``settings`` (an engine's settings)."""
    known = {f.name for f in fields(settings)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise InputError(
            f"unknown {engine} option(s) {', '.join(unknown)}: choose from "
            + ", ".join(sorted(known))
        )


def import_factory(path: str | None, what: str):
    """The callable at ``package.module:function``; else ``EngineError`` naming ``what``."""
    module_name, _, function_name = (path or "").partition(":")
    try:
        return getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise EngineError(f"cannot import {what} factory {path!r}: {exc}") from None
