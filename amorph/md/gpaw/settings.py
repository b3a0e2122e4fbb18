"""GPAW's settings for a cell, chosen by documented rules, and the PAW datasets they need.

Every rule below is a default: the engine option of the same name overrides it
(``EngineSpec("gpaw", options={"cutoff_eV": 600})``, ``amorph run --engine gpaw --engine-option
cutoff_eV=600``). The numbers behind the rules were measured with GPAW 26.7 on liquid frames
(README, "DFT with GPAW", has the tables and the script that reproduces them).

* **Functional, basis**: PBE, plane waves, no point-group symmetry (liquids have none, and MD must
  not reduce k-points by a symmetry that the next step breaks).
* **PAW datasets** (``setups``): GPAW's PBE datasets (the ``gpaw-data`` package), except for the
  elements whose Materials Project POTCAR (the published database's) keeps semicore states in the
  valence that GPAW's default freezes (:data:`SEMICORE`: Li with 3 electrons like ``Li_sv``, Be,
  Cr, Fe, Cu, Ga, Ge). gpaw-data's 14-electron Cr serves; the others are generated once with
  GPAW's own generator (``gpaw dataset``, 2 s each) into ``setup_dir``. A frozen Li 1s reads the
  pressure of Li2O 5 GPa too high on the compressed crystal, 3 GPa on liquid frames.
* **Cutoff** (``cutoff_eV``): the largest of the composition's elements' values in
  :data:`CUTOFF_EV`, the cutoff at which the virial pressure of liquid frames is within 0.1 GPa of
  its value at 1200 eV (O 900, N 1000, Cu 900, Li, Zn, P and S 600 eV; :data:`DEFAULT_CUTOFF_EV`,
  800 eV, for elements not measured). O and N are hard: at 600 eV oxides read 2.8–5.2 GPa too low,
  at 500 eV 11–17 GPa; a cutoff below :data:`MIN_CUTOFF_EV` (O 700, N 800 eV, pressures off by
  more than 1 GPa) or :data:`LOWEST_CUTOFF_EV` is refused. The basis-set stress is measured
  against ``converged_cutoff_eV`` (default ``CONVERGED_CUTOFF_FACTOR`` = 1.5 × the cutoff).
* **k-points** (``kpoints``): a Γ-centred grid with ``ceil(L / a)`` points along each cell vector
  of length ``a``, L from :data:`KPOINT_LENGTH_A`: 7 Å for ionic compositions (Γ only from about
  30 atoms), 12 Å for the others, as metals need (12-atom LiZn reads 2.07 GPa high at Γ); time
  reversal halves the points.
* **Occupations**: Fermi–Dirac smearing of ``smearing_eV`` (0.05 eV, the ``SIGMA`` of the
  published inputs, ``MPMDSet``).
* **Spin** (``spin_polarized``): polarised when the composition holds one of :data:`MAGNETIC`
  (starting moments of 5 μB on them, as Materials Project's ``MAGMOM``), else not (as ``MPMDSet``).
* **SCF**: converged when the energy changes by less than ``scf_energy_eV`` per valence electron
  over three iterations (GPAW's default, 5e-4 eV) and the density by less than ``scf_density``
  (1e-5) electrons per valence electron: the pressure within 1e-4 GPa of a 100-times tighter SCF,
  at one more iteration than GPAW's defaults; ``max_scf_iterations`` (200) at most, else the run
  stops naming the step.
* **Parallelism**: ``ranks`` MPI processes (default ``$SLURM_NTASKS`` inside a SLURM job, else 1)
  started with ``mpi_command`` (``mpiexec -n {ranks}``; ``srun -n {ranks}`` on SLURM clusters
  whose MPI is launched by srun). One rank runs GPAW in amorph's process.
"""

from __future__ import annotations

import gzip
import math
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import IO, Any

from monty.json import MSONable
from pymatgen.core import Structure

from amorph.errors import EngineError, InputError, check_range
from amorph.md.engine import check_options

SEMICORE = {"Li": "sv", "Be": "sv", "Cr": "14", "Fe": "sv", "Cu": "sv", "Ga": "sv", "Ge": "sv"}
"""The dataset of each element whose GPAW default has fewer valence electrons than the Materials
Project POTCAR (Li_sv, Be_sv, Cr_pv, Fe_pv, Cu_pv, Ga_d, Ge_d): gpaw-data's 14-electron Cr, and
generated ones (tag ``sv``) for the others."""
GENERATED = {"Li": 3, "Be": 4, "Fe": 16, "Cu": 19, "Ga": 13, "Ge": 14}
"""Valence electrons of the ``sv`` datasets amorph generates, as GPAW's generator knows them."""
CUTOFF_EV = {"O": 900.0, "N": 1000.0, "Cu": 900.0, "Li": 600.0, "Zn": 600.0, "P": 600.0, "S": 600.0}
"""Per element, the cutoff at which liquid frames' virial pressure is within 0.1 GPa of 1200 eV
(12-atom frames of Li2O, Li3N, LiAlO2, Li2SiO3, LiCuSi2, LiZn, Li3PS4 and 16 Li, 2000–2500 K)."""
DEFAULT_CUTOFF_EV = 800.0
MIN_CUTOFF_EV = {"O": 700.0, "N": 800.0}
"""Cutoffs refused: below these, liquid frames read pressures off by more than 1 GPa."""
LOWEST_CUTOFF_EV = 250.0
CONVERGED_CUTOFF_FACTOR = 1.5
KPOINT_LENGTH_A = {"ionic": 7.0, "metallic": 12.0}
"""Length (Å) a k-point grid spans along each cell vector: 7 Å where the composition has a
charge-balanced oxidation-state assignment (Γ-only from about 30 atoms: 12-atom Li2O reads 0.20 GPa
high at Γ), 12 Å otherwise, as for a metal (12-atom LiZn reads 2.07 GPa high at Γ)."""
MAGNETIC = {"Cr": 5.0, "Mn": 5.0, "Fe": 5.0, "Co": 5.0, "Ni": 5.0}
"""Elements that make a composition spin-polarised, with their starting moments (μB)."""
MEMORY_FACTOR = 6.0
"""Peak memory over the size of one set of wave functions (GPAW keeps several), and the memory of
a rank beside them: 33- and 99-atom Li2O at 800 eV peaked at 0.5 and 1.5 GB on one rank."""
MEMORY_BASE_BYTES = 0.35e9
HARTREE_EV, BOHR_A = 27.211386245988, 0.529177210903


def default_setup_dir() -> Path:
    """Where generated datasets go: ``$AMORPH_GPAW_SETUPS``, else
    ``~/.cache/amorph/gpaw-setups``."""
    folder = os.environ.get("AMORPH_GPAW_SETUPS")
    return Path(folder) if folder else Path.home() / ".cache" / "amorph" / "gpaw-setups"


@dataclass
class GpawSettings(MSONable):
    """GPAW's settings; None means "by the rule" (module docstring)."""

    cutoff_eV: float | None = None
    converged_cutoff_eV: float | None = None
    kpoints: list[int] | None = None
    setups: dict[str, str] = field(default_factory=dict)
    smearing_eV: float = 0.05
    spin_polarized: bool | None = None
    scf_energy_eV: float = 5e-4
    scf_density: float = 1e-5
    max_scf_iterations: int = 200
    ranks: int | None = None
    mpi_command: str = "mpiexec -n {ranks}"
    basis_correction: bool = True
    setup_dir: str | None = None

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> GpawSettings:
        """The settings of ``EngineSpec.options``; an unknown option is an ``InputError``."""
        check_options(cls, options, "GPAW")
        settings = cls(**options)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise ``InputError`` for settings that cannot work."""
        for name in ("cutoff_eV", "converged_cutoff_eV"):
            value = getattr(self, name)
            if value is not None:
                check_range(name.replace("_eV", ""), value, LOWEST_CUTOFF_EV, 5000, " eV")
        check_range("smearing", self.smearing_eV, 1e-4, 2, " eV")
        check_range("SCF energy tolerance", self.scf_energy_eV, 1e-10, 0.1, " eV")
        check_range("SCF density tolerance", self.scf_density, 1e-10, 0.1)
        if self.max_scf_iterations < 1 or (self.ranks is not None and self.ranks < 1):
            raise InputError("GPAW needs at least one SCF iteration and one MPI rank")
        if self.kpoints is not None and (len(self.kpoints) != 3 or min(self.kpoints) < 1):
            raise InputError(f"k-points must be three positive integers, got {self.kpoints}")
        if "{ranks}" not in self.mpi_command:
            raise InputError("the MPI command must hold {ranks}, e.g. 'mpiexec -n {ranks}'")

    @property
    def n_ranks(self) -> int:
        """MPI ranks: ``ranks``, else ``$SLURM_NTASKS``, else 1."""
        return self.ranks or int(os.environ.get("SLURM_NTASKS", "1"))

    @property
    def dataset_dir(self) -> Path:
        """Where generated datasets go: ``setup_dir``, else :func:`default_setup_dir`."""
        return Path(self.setup_dir) if self.setup_dir else default_setup_dir()

    def cutoff(self, symbols: list[str]) -> float:
        """Plane-wave cutoff (eV): ``cutoff_eV``, else the largest of ``symbols``' values in
        :data:`CUTOFF_EV` (:data:`DEFAULT_CUTOFF_EV` for elements not in it)."""
        if self.cutoff_eV is not None:
            return self.cutoff_eV
        return max(CUTOFF_EV.get(symbol, DEFAULT_CUTOFF_EV) for symbol in symbols)

    def converged_cutoff(self, symbols: list[str]) -> float:
        """Cutoff (eV) of the basis-set stress: ``converged_cutoff_eV``, else 1.5 × the cutoff."""
        return self.converged_cutoff_eV or CONVERGED_CUTOFF_FACTOR * self.cutoff(symbols)

    def kpoint_grid(self, structure: Structure) -> list[int]:
        """``kpoints``, else ``ceil(L / a)`` points along each cell vector of length ``a``, L from
        :data:`KPOINT_LENGTH_A`."""
        if self.kpoints is not None:
            return list(self.kpoints)
        ionic = bool(structure.composition.oxi_state_guesses(max_sites=-50))
        length = KPOINT_LENGTH_A["ionic" if ionic else "metallic"]
        return [max(1, math.ceil(length / a)) for a in structure.lattice.abc]

    def dataset_names(self, symbols: list[str]) -> dict[str, str]:
        """The dataset of each element: :data:`SEMICORE`'s, ``"paw"`` (GPAW's default) else, or
        what ``setups`` says."""
        return {s: self.setups.get(s, SEMICORE.get(s, "paw")) for s in symbols}

    def spin(self, symbols: list[str]) -> bool:
        """``spin_polarized``, else whether one of ``symbols`` is in :data:`MAGNETIC`."""
        if self.spin_polarized is not None:
            return self.spin_polarized
        return any(symbol in MAGNETIC for symbol in symbols)

    def parameters(self, structure: Structure, cutoff_eV: float | None = None) -> dict[str, Any]:
        """GPAW's keyword arguments for ``structure`` (JSON-ready), at ``cutoff_eV`` if given."""
        symbols = sorted({site.specie.symbol for site in structure})
        spin = self.spin(symbols)
        parameters = {
            "mode": {"name": "pw", "ecut": cutoff_eV or self.cutoff(symbols)},
            "xc": "PBE",
            "kpts": {"size": self.kpoint_grid(structure), "gamma": True},
            "setups": {s: name for s, name in self.dataset_names(symbols).items() if name != "paw"},
            "occupations": {"name": "fermi-dirac", "width": self.smearing_eV},
            "spinpol": spin,
            "convergence": {"energy": self.scf_energy_eV, "density": self.scf_density},
            "maxiter": self.max_scf_iterations,
            "symmetry": {"point_group": False},  # time reversal only: MD breaks the rest
        }
        if spin:
            parameters["magmoms"] = [MAGNETIC.get(site.specie.symbol, 0.0) for site in structure]
        return parameters

    def describe(self, structure: Structure) -> dict[str, Any]:
        """What decides GPAW's numbers for ``structure``, for fingerprints and stage documents."""
        symbols = sorted({site.specie.symbol for site in structure})
        names = self.dataset_names(symbols)
        parameters = self.parameters(structure)
        return {
            "code": f"gpaw {_gpaw_version()}",
            "xc": "PBE",
            "cutoff_eV": parameters["mode"]["ecut"],
            "kpoints": parameters["kpts"]["size"],
            "datasets": {
                s: f"{names[s]} ({valence(s, names[s], self.dataset_dir)} e)" for s in symbols
            },
            "smearing": f"Fermi-Dirac {self.smearing_eV:g} eV",
            "spin_polarized": parameters["spinpol"],
            "scf": parameters["convergence"],
        }

    def check_elements(self, symbols: list[str]) -> None:
        """Raise ``InputError`` for a cutoff below an element's :data:`MIN_CUTOFF_EV` and for
        elements without a dataset (generating semicore ones)."""
        cutoff = self.cutoff(symbols)
        for symbol in symbols:
            if cutoff < MIN_CUTOFF_EV.get(symbol, 0):
                raise InputError(
                    f"a {cutoff:g} eV cutoff is below {MIN_CUTOFF_EV[symbol]:g} eV, GPAW's minimum "
                    f"for {symbol}: its pressures would be off by more than 1 GPa"
                )
        self.check_datasets(symbols)

    def check_datasets(self, symbols: list[str]) -> None:
        """Raise ``InputError`` for elements without a dataset (generating semicore ones)."""
        names = self.dataset_names(symbols)
        missing = [s for s in symbols if dataset_file(s, names[s], self.dataset_dir) is None]
        if missing:
            raise InputError(
                f"GPAW has no PAW-PBE dataset for {', '.join(missing)} (looked in "
                f"{', '.join(str(p) for p in setup_paths(self.dataset_dir))})"
            )

    def check(self, structure: Structure) -> None:
        """Raise ``InputError`` before any SCF if the cell cannot run: :meth:`check_elements`,
        or more memory than this machine has."""
        symbols = sorted({site.specie.symbol for site in structure})
        self.check_elements(symbols)
        need = memory_bytes(structure, self)
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        if need > have:
            raise InputError(
                f"GPAW needs about {need / 1e9:.0f} GB for {len(structure)} atoms of "
                f"{structure.composition.reduced_formula} at {self.cutoff(symbols):g} eV, this "
                f"machine has {have / 1e9:.0f} GB: fewer atoms, a lower cutoff or more nodes"
            )


@cache
def _gpaw_version() -> str:
    import gpaw

    return gpaw.__version__


def setup_paths(generated: Path) -> list[Path]:
    """Where GPAW looks for datasets: the folder of generated ones first, then GPAW's own."""
    import gpaw

    return [generated, *(Path(p) for p in gpaw.setup_paths)]


def dataset_file(symbol: str, name: str, generated: Path) -> Path | None:
    """The file of ``symbol``'s dataset ``name`` ("paw": GPAW's default), generating a semicore
    one first if needed; None if there is none."""
    stem = f"{symbol}.PBE" if name == "paw" else f"{symbol}.{name}.PBE"
    for folder in setup_paths(generated):
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.exists():
                return candidate
    if name == "sv" and symbol in GENERATED:
        return generate_dataset(symbol, generated)
    return None


def generate_dataset(symbol: str, folder: Path) -> Path:
    """Generate ``symbol``'s semicore dataset (:data:`GENERATED`) with GPAW's generator into
    ``folder`` (atomically: concurrent runs may generate it at once)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{symbol}.sv.PBE"
    with tempfile.TemporaryDirectory(dir=folder, prefix=".generate-") as scratch:
        command = [sys.executable, "-m", "gpaw", "dataset", symbol, "-f", "PBE"]
        command += ["-e", str(GENERATED[symbol]), "-t", "sv", "-w"]
        done = subprocess.run(command, cwd=scratch, capture_output=True, text=True)
        written = Path(scratch) / target.name
        if done.returncode or not written.exists():
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise EngineError(f"GPAW could not generate the {symbol} dataset: {last[0]}")
        os.replace(written, target)
    return target


def valence(symbol: str, name: str, generated: Path) -> int:
    """Valence electrons of a dataset, from its file; ``InputError`` if there is none."""
    path = dataset_file(symbol, name, generated)
    if path is None:  # describe() may come before check_datasets()
        raise InputError(
            f"GPAW has no PAW-PBE dataset for {symbol} (looked in "
            f"{', '.join(str(p) for p in setup_paths(generated))})"
        )
    opener: Callable[..., IO[str]] = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as handle:
        head = handle.read(4000)
    found = re.search(r'valence="([\d.]+)"', head)
    if found is None:
        raise EngineError(f"{path} does not give the dataset's valence")
    return int(float(found.group(1)))


def memory_bytes(structure: Structure, settings: GpawSettings) -> float:
    """GPAW's peak memory for ``structure``, estimated from the size of its wave functions:
    plane waves within the cutoff × bands (valence/2 × 1.2, at least 4 more) × k-points × spins,
    complex, × :data:`MEMORY_FACTOR`, plus :data:`MEMORY_BASE_BYTES` per rank."""
    symbols = [site.specie.symbol for site in structure]
    names = settings.dataset_names(sorted(set(symbols)))
    electrons = sum(valence(s, names[s], settings.dataset_dir) for s in symbols)
    cutoff_hartree = settings.cutoff(sorted(set(symbols))) / HARTREE_EV
    volume_bohr3 = structure.volume / BOHR_A**3
    plane_waves = volume_bohr3 * (2 * cutoff_hartree) ** 1.5 / (6 * math.pi**2)
    bands = max(math.ceil(0.6 * electrons), electrons // 2 + 4)
    spins = 2 if settings.spin(sorted(set(symbols))) else 1
    kpoints = math.prod(settings.kpoint_grid(structure))
    wave_functions = 16 * plane_waves * bands * kpoints * spins
    return MEMORY_FACTOR * wave_functions + MEMORY_BASE_BYTES * settings.n_ranks
