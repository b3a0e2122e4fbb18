#!/usr/bin/env python
"""A stand-in for the VASP binary in tests, run as the VASP command (no VASP is available here).

Run in a folder holding INCAR, POSCAR (velocities optional), KPOINTS and POTCAR, it writes what VASP
writes there: vasprun.xml, OUTCAR, OSZICAR, XDATCAR, CONTCAR (with velocities after MD) and stdout,
step by step, from a simple model instead of DFT:

* one Lennard-Jones potential for all atoms (σ from the mean covalent radius, ε = 0.1 eV, smooth
  cut-off), plus a fixed energy per element, so that the virial pressure falls with volume and
  changes sign at a density of condensed matter;
* a basis-set (Pulay) stress: the stress lacks ``BASIS_GPA`` × exp(-(ENCUT - 400 eV) / 100 eV)
  of pressure (ENCUT 400 eV where the INCAR has none, the fake POTCARs' ENMAX), as a real
  plane-wave basis reads pressures too low at low cutoffs (0.6 GPa at MP's 520 eV);
* IBRION = 0: velocity Verlet with POTIM, with the velocities rescaled towards TEBEG over 40 steps
  (the thermostat period of SMASS = 0); the stress "in kB" leaves out the kinetic term, which
  "Total+kin." adds, as in VASP; temperatures count 3N - 3 degrees of freedom;
* IBRION = 1, 2, 3: FIRE until forces are below -EDIFFG (the cell too when ISIF = 3), at most NSW
  steps;
* NSW = 0 or IBRION = -1: one static step.

A POTCAR whose elements do not match the POSCAR stops it with VASP's kind of error. Failures on
demand (``FAKE_VASP_FAIL``): ``no-output`` (exit status 1, nothing written), ``unconverged`` (every
SCF uses NELM steps, whatever the INCAR), ``killed:K`` (SIGKILL after K ionic steps, leaving
truncated files, as a walltime kill), and the errors of :data:`ERRORS`, which custodian's handlers
recognise and fix: each is written after :data:`ERROR_STEP` ionic steps until the INCAR holds the
fix. With ``FAKE_VASP_LOG`` every run appends ``<folder> NSW=<n>`` to that file, and
``FAKE_VASP_FAIL_ON_RUN=n`` makes only the n-th logged run fail. ``FAKE_VASP_STEP_SECONDS`` makes
each ionic step take that long; a STOPCAR with ``LSTOP = .TRUE.`` ends the run cleanly after the
current ionic step, as in VASP. CONTCAR is rewritten after every ionic step, as VASP does.

Imported (not run), it offers :func:`write_potcar_library`, :data:`COMMAND` and
:data:`FAST_CUSTODIAN` (custodian polling that suits its runs of seconds) to tests.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

if __name__ == "__main__":  # as the fake vasp_std only: importing tests keep their threads
    for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_variable, "1")  # 3x3 linear algebra: BLAS threads only cost time

import numpy as np  # after the thread variables, which numpy reads on import

COMMAND = f"{sys.executable} {Path(__file__).resolve()}"
FAST_CUSTODIAN = {"polling_time_step": 0.1, "monitor_freq": 2}
EV_PER_AMU_A2_FS2 = 103.6427  # 1 amu Å²/fs² in eV
KBAR_PER_EV_A3 = 1602.1766208
BOLTZMANN_EV = 8.617333262e-5
EPSILON_EV = 0.1
THERMOSTAT_STEPS = 40
BASIS_GPA = 2.0
ENMAX_EV = 400.0
SCF_STEPS = 6
ERROR_STEP = 2


def _false(value: str | None) -> bool:
    return (value or "").strip(".").upper() in ("F", "FALSE")


# error -> (what VASP prints, to stdout or with "grad_not_orth" stderr; whether VASP stops there;
# whether the INCAR holds custodian's fix)
ERRORS = {
    # VaspErrorHandler: ALGO = All
    "edddav": (
        " Error EDDDAV: Call to ZHEGV failed. Returncode =   7 1  16",
        True,
        lambda tags: tags.get("ALGO", "Fast").upper() != "FAST",
    ),
    # VaspErrorHandler: LREAL = False (a warning: VASP goes on)
    "subspace": (
        " WARNING: Sub-Space-Matrix is not hermitian in DAV            4",
        False,
        lambda tags: _false(tags.get("LREAL")),
    ),
    # VaspErrorHandler: EDIFF tightened and NELMIN = 8 (and CONTCAR to POSCAR, for relaxations)
    "zbrent": (
        " ZBRENT: fatal error in bracketing",
        True,
        lambda tags: int(tags.get("NELMIN", 2)) >= 8,
    ),
    # VaspErrorHandler: ALGO = Normal, or with ALGO = Normal already, POTIM halved
    "eddrmm": (
        " WARNING in EDDRMM: call to ZHEGV failed, returncode =   6 3      16",
        True,
        lambda tags: tags != read_incar(Path("INCAR.orig")),
    ),
    # StdErrHandler (VASP prints it to stderr): NBANDS raised by 10 %
    "grad_not_orth": (
        " EDWAV: internal error, the gradient is not orthogonal",
        True,
        lambda tags: "NBANDS" in tags,
    ),
    # UnconvergedStepHandler (NonConvergingErrorHandler's ladder): ALGO Fast -> Normal
    "scf": ("", False, lambda tags: tags.get("ALGO", "Fast").upper() != "FAST"),
    # PositiveEnergyErrorHandler (OSZICAR's energies > 0): ALGO Fast -> Normal
    "positive": ("", False, lambda tags: tags.get("ALGO", "Fast").upper() != "FAST"),
}
POSITIVE_SHIFT_EV = 1e4  # added to OSZICAR's energies for "positive"


def write_potcar_library(root: Path, symbols: list[str]) -> Path:
    """Tiny fake POTCARs that pymatgen parses, in its layout ``POT_GGA_PAW_PBE/<symbol>/POTCAR``."""
    from ase.data import atomic_masses, atomic_numbers

    for symbol in symbols:
        element = symbol.split("_")[0]
        folder = root / "POT_GGA_PAW_PBE" / symbol
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "POTCAR").write_text(
            f"  PAW_PBE {symbol} 01Jan2000\n 1.0\n parameters from PSCTR are:\n"
            f"   VRHFIN ={element}: fake\n   LEXCH  = PE\n   TITEL  = PAW_PBE {symbol} 01Jan2000\n"
            f"   POMASS = {atomic_masses[atomic_numbers[element]]:8.3f}; "
            "ZVAL   =    1.000    mass and valenz\n"
            "   ENMAX  =  400.000; ENMIN  =  300.000 eV\n"
            " END of PSCTR-controll parameters\n local part\n 0.0\n End of Dataset\n"
        )
    return root


# --- inputs


def read_incar(path: Path) -> dict[str, str]:
    tags = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].split("!")[0]
        if "=" in line:
            key, value = line.split("=", 1)
            tags[key.strip().upper()] = value.strip()
    return tags


def read_poscar(path: Path):
    """Species, lattice (rows), fractional positions and Cartesian velocities (Å/fs) or None."""
    lines = path.read_text().splitlines()
    scale = float(lines[1].split()[0])
    lattice = np.array([[float(x) for x in line.split()[:3]] for line in lines[2:5]]) * scale
    species = lines[5].split()
    counts = [int(x) for x in lines[6].split()]
    row = 7 + (lines[7].strip()[:1] in "sS")
    cartesian = lines[row].strip()[:1] in "cCkK"
    n = sum(counts)
    coords = np.array(
        [[float(x) for x in line.split()[:3]] for line in lines[row + 1 : row + 1 + n]]
    )
    frac = coords * scale @ np.linalg.inv(lattice) if cartesian else coords
    rest = lines[row + 1 + n :]
    velocities = None
    if len(rest) > n and all(len(line.split()) >= 3 for line in rest[1 : n + 1]):
        velocities = np.array([[float(x) for x in line.split()[:3]] for line in rest[1 : n + 1]])
    symbols = [s for s, c in zip(species, counts, strict=True) for _ in range(c)]
    return species, counts, symbols, lattice, frac, velocities


def read_potcar_titles(path: Path) -> list[tuple[str, str]]:
    """(element, title) of each POTCAR in the file."""
    titles, elements = [], []
    for line in path.read_text().splitlines():
        if "TITEL" in line:
            titles.append(line.split("=", 1)[1].strip())
        elif "VRHFIN" in line:
            elements.append(line.split("=", 1)[1].split(":")[0].strip())
    return list(zip(elements, titles, strict=True))


# --- the model


class Model:
    """Lennard-Jones for every pair, plus -Z/4 eV per atom standing in for the atomic energies."""

    def __init__(self, symbols: list[str], encut: float = ENMAX_EV):
        from ase.calculators.lj import LennardJones
        from ase.data import atomic_numbers, covalent_radii

        self.basis_kbar = -10 * BASIS_GPA * np.exp(-(encut - ENMAX_EV) / 100)
        sigma = 2 * np.mean([covalent_radii[atomic_numbers[s]] for s in symbols]) / 2 ** (1 / 6)
        self.calculator = LennardJones(sigma=sigma, epsilon=EPSILON_EV, rc=3 * sigma, smooth=True)
        self.offset = -0.25 * sum(atomic_numbers[s] for s in symbols)

    def evaluate(self, atoms):
        """Energy (eV), forces (eV/Å) and VASP's stress "in kB" (positive when compressed)."""
        atoms.calc = self.calculator
        energy = atoms.get_potential_energy() + self.offset
        stress = -atoms.get_stress(voigt=False) * KBAR_PER_EV_A3 + self.basis_kbar * np.eye(3)
        return energy, atoms.get_forces(), stress


# --- outputs


def _v(values) -> str:
    return "    <v>" + "".join(f" {x:16.8f}" for x in values) + " </v>\n"


def _varray(name: str, rows) -> str:
    return f'   <varray name="{name}" >\n' + "".join(_v(r) for r in rows) + "   </varray>\n"


def _xml_value(key: str, value: str) -> str:
    text = value.strip()
    if text.upper() in ("T", "F", "TRUE", "FALSE", ".TRUE.", ".FALSE."):
        return f'  <i type="logical" name="{key}"> {"T" if "T" in text.upper() else "F"}  </i>\n'
    try:
        int(text)
        return f'  <i type="int" name="{key}">{text}</i>\n'
    except ValueError:
        pass
    try:
        float(text)
        return f'  <i name="{key}">{text}</i>\n'
    except ValueError:
        return f'  <i type="string" name="{key}">{text}</i>\n'


class Outputs:
    """VASP's output files, written and flushed one ionic step at a time."""

    def __init__(
        self, tags, species, counts, symbols, potcars, kpoints, atoms, md, unconverged, shift
    ):
        self.tags, self.symbols, self.md = tags, symbols, md
        self.species, self.counts = species, counts
        self.nblock = int(tags.get("NBLOCK", 1))
        self.scf_steps = int(tags.get("NELM", 60)) if unconverged else SCF_STEPS
        self.oszicar_shift = shift  # eV, on OSZICAR's energies only
        self.step_clock = time.perf_counter()
        self.previous_energy = 0.0
        # open until finish(), or until a kill leaves them truncated as VASP's would be
        self.files = tuple(
            open(name, "w")  # noqa: SIM115 - kept open across methods, closed in finish()
            for name in ("OSZICAR", "OUTCAR", "XDATCAR", "vasprun.xml")
        )
        self.oszicar, self.outcar, self.xdatcar, self.xml = self.files
        self.outcar.write(
            " vasp.6.4.2 (fake: amorph tests)\n"
            + "".join(f"   POTCAR:    {t}\n" for _, t in potcars)
            + f"   NIONS = {len(symbols)}\n   NSW   = {tags.get('NSW', 0)}\n"
            + "   k-points           NKPTS =      1   k-points in BZ     NKDIM =      1   "
            + f"number of bands    NBANDS=     {2 * len(symbols)}\n"
            + "   total plane-waves  NPLWV =  32768\n"
            + f"   IBRION =     {tags.get('IBRION', -1 if tags.get('NSW', '0') == '0' else 0)}\n"
            + f" number of electron  {2 * len(symbols):14.7f} magnetization       0.0000000\n"
        )
        self.xdatcar.write(self._poscar_header(atoms, species, counts))
        self.xml.write(
            '<?xml version="1.0" encoding="ISO-8859-1"?>\n<modeling>\n <generator>\n'
            '  <i name="program" type="string">vasp </i>\n'
            '  <i name="version" type="string">6.4.2 </i>\n </generator>\n <incar>\n'
            + "".join(_xml_value(k, v) for k, v in tags.items())
            + " </incar>\n"
        )
        self.xml.write(self._kpoints_xml(kpoints))
        self.xml.write(self._parameters_xml())
        self.xml.write(self._atominfo_xml(species, counts, potcars, atoms))
        self.xml.write(self._structure_xml(atoms, ' name="initialpos"'))

    @staticmethod
    def _poscar_header(atoms, species, counts) -> str:
        return (
            "fake\n   1.0\n"
            + "".join(" " + " ".join(f"{x:12.6f}" for x in row) + "\n" for row in atoms.cell.array)
            + " "
            + " ".join(species)
            + "\n "
            + " ".join(map(str, counts))
            + "\n"
        )

    @staticmethod
    def _kpoints_xml(kpoints: str) -> str:
        lines = kpoints.splitlines()
        style = "Gamma" if lines[2].strip()[:1] in "gG" else "Monkhorst-Pack"
        return (
            f' <kpoints>\n  <generation param="{style}">\n   <v type="int" name="divisions">'
            f" {lines[3].strip()} </v>\n  </generation>\n"
            + _varray("kpointlist", [[0, 0, 0]])
            + _varray("weights", [[1.0]])
            + " </kpoints>\n"
        )

    def _parameters_xml(self) -> str:
        defaults = {
            "NELM": "60",
            "NSW": "0",
            "IBRION": "-1" if self.tags.get("NSW", "0") == "0" else "0",
            "ISIF": "2",
            "EDIFFG": "0.001",
            "ISPIN": "1",
            "POTIM": "0.5",
            "NBLOCK": "1",
        }
        values = {k: self.tags.get(k, v) for k, v in defaults.items()}
        return (
            ' <parameters>\n  <separator name="ionic" >\n'
            + "".join(_xml_value(k, v) for k, v in values.items())
            + "  </separator>\n </parameters>\n"
        )

    @staticmethod
    def _atominfo_xml(species, counts, potcars, atoms) -> str:
        masses = dict(zip(atoms.get_chemical_symbols(), atoms.get_masses(), strict=True))
        atoms_rows = "".join(
            f"    <rc><c>{s}</c><c>{species.index(s) + 1}</c></rc>\n"
            for s in atoms.get_chemical_symbols()
        )
        type_rows = "".join(
            f"    <rc><c>{c}</c><c>{s}</c><c>{masses[s]:.8f}</c><c>1.0</c><c>{title}</c></rc>\n"
            for s, c, (_, title) in zip(species, counts, potcars, strict=True)
        )
        return (
            f" <atominfo>\n  <atoms>{len(atoms)}</atoms>\n  <types>{len(species)}</types>\n"
            '  <array name="atoms" >\n   <set>\n' + atoms_rows + "   </set>\n  </array>\n"
            '  <array name="atomtypes" >\n   <set>\n'
            + type_rows
            + "   </set>\n  </array>\n </atominfo>\n"
        )

    @staticmethod
    def _structure_xml(atoms, name: str = "") -> str:
        cell = atoms.cell.array
        return (
            f" <structure{name}>\n  <crystal>\n"
            + _varray("basis", cell)
            + f'   <i name="volume">{atoms.get_volume():.8f}</i>\n'
            + _varray("rec_basis", np.linalg.inv(cell).T)
            + "  </crystal>\n"
            + _varray("positions", atoms.get_scaled_positions(wrap=True))
            + " </structure>\n"
        )

    def ionic_step(
        self, step: int, atoms, energy: float, forces, stress_kbar, velocities=None
    ) -> None:
        volume = atoms.get_volume()
        shown = energy + self.oszicar_shift
        nelm = int(self.tags.get("NELM", 60))
        self.oszicar.write(
            "       N       E                     dE             d eps       ncg     rms"
            "          rms(c)\n"
        )
        for k in range(1, self.scf_steps + 1):
            error = 10.0 ** (-k) if self.scf_steps < nelm else 1e-2
            self.oszicar.write(
                f"DAV: {k:3d}    {energy + error: .12E}   {error: .5E}   {-error: .5E}"
                "   96   0.1E+00\n"
            )
        voigt = [
            stress_kbar[0, 0],
            stress_kbar[1, 1],
            stress_kbar[2, 2],
            stress_kbar[0, 1],
            stress_kbar[1, 2],
            stress_kbar[2, 0],
        ]
        pressure = float(np.mean(voigt[:3]))
        self.outcar.write(
            "  FORCE on cell =-STRESS in cart. coord.  units (eV):\n"
            "  Direction    XX          YY          ZZ          XY          YZ          ZX\n"
            "  " + "-" * 86 + "\n"
            "  Total   " + "".join(f"{x * volume / KBAR_PER_EV_A3:12.5f}" for x in voigt) + "\n"
            "  in kB   " + "".join(f"{x:12.5f}" for x in voigt) + "\n"
            f"  external pressure = {pressure:11.2f} kB  Pullay stress = {0.0:11.2f} kB\n\n"
        )
        energies = (
            f'   <i name="e_fr_energy"> {energy:16.8f} </i>\n'
            f'   <i name="e_wo_entrp"> {energy:16.8f} </i>\n'
            f'   <i name="e_0_energy"> {energy:16.8f} </i>\n'
        )
        extra = ""
        if velocities is not None:
            masses = atoms.get_masses()[:, None]
            kinetic_energy = 0.5 * float((masses * velocities**2).sum()) * EV_PER_AMU_A2_FS2
            temperature = 2 * kinetic_energy / ((3 * len(atoms) - 3) * BOLTZMANN_EV)
            kinetic = (
                np.einsum("i,ij,ik->jk", masses[:, 0], velocities, velocities)
                * EV_PER_AMU_A2_FS2
                / volume
                * KBAR_PER_EV_A3
            )
            with_kinetic = np.array(voigt) + np.array(
                [
                    kinetic[0, 0],
                    kinetic[1, 1],
                    kinetic[2, 2],
                    kinetic[0, 1],
                    kinetic[1, 2],
                    kinetic[2, 0],
                ]
            )
            self.outcar.write(
                f"  kinetic pressure (ideal gas correction) = {np.trace(kinetic) / 3:9.2f} kB\n"
                f"  total pressure  = {pressure + np.trace(kinetic) / 3:9.2f} kB\n"
                f"  Total+kin. {with_kinetic[0]:9.3f}"
                + "".join(f"{x:12.3f}" for x in with_kinetic[1:])
                + "\n"
            )
            self.oszicar.write(
                f"{step:6d} T= {temperature:6.0f}. E= {shown + kinetic_energy:.8E} "
                f"F= {shown:.8E} "
                f"E0= {shown:.8E}  EK= {kinetic_energy:.5E} SP= 0.00E+00 SK= 0.00E+00\n"
            )
            extra = (
                f'   <i name="kinetic"> {kinetic_energy:16.8f} </i>\n'
                '   <i name="lattice kinetic"> 0.0 </i>\n'
                f'   <i name="nosepot"> 0.0 </i>\n   <i name="nosekinetic"> 0.0 </i>\n'
                f'   <i name="total"> {energy + kinetic_energy:16.8f} </i>\n'
            )
            if step % self.nblock == 0:
                self._xdatcar_frame(step // self.nblock, atoms)
        else:
            self.oszicar.write(
                f"{step:4d} F= {shown:.8E} E0= {shown:.8E}  "
                f"d E ={energy - self.previous_energy:.6E}\n"
            )
            self._xdatcar_frame(step, atoms)
        self.previous_energy = energy
        seconds = time.perf_counter() - self.step_clock
        self.outcar.write(
            " POSITION                                       TOTAL-FORCE (eV/Angst)\n "
            + "-" * 83
            + "\n"
            + "".join(
                f" {p[0]:12.5f}{p[1]:12.5f}{p[2]:12.5f}    {f[0]:14.6f}{f[1]:14.6f}{f[2]:14.6f}\n"
                for p, f in zip(atoms.positions, forces, strict=True)
            )
            + f"     LOOP+:  cpu time {seconds:9.4f}: real time {seconds:9.4f}\n"
            + "  FREE ENERGIE OF THE ION-ELECTRON SYSTEM (eV)\n"
            "  ---------------------------------------------------\n"
            f"  free  energy   TOTEN  = {energy:18.8f} eV\n\n"
            f"  energy  without entropy= {energy:18.8f}  energy(sigma->0) = {energy:18.8f}\n\n"
        )
        scsteps = "".join(
            f"  <scstep>\n   <energy>\n{energies}   </energy>\n  </scstep>\n"
            for _ in range(self.scf_steps)
        )
        self.xml.write(
            " <calculation>\n"
            + scsteps
            + self._structure_xml(atoms)
            + _varray("forces", forces)
            + _varray("stress", stress_kbar)
            + f"  <energy>\n{energies}{extra}  </energy>\n </calculation>\n"
        )
        print(f"{step:6d} F= {energy:.8E}", flush=True)
        for handle in self.files:
            handle.flush()
        self.write_contcar(atoms, velocities)
        self.step_clock = time.perf_counter()

    def write_contcar(self, atoms, velocities=None) -> None:
        contcar = (
            self._poscar_header(atoms, self.species, self.counts)
            + "Direct\n"
            + "".join(
                " " + " ".join(f"{x:19.16f}" for x in row) + "\n"
                for row in atoms.get_scaled_positions(wrap=True)
            )
        )
        if velocities is not None:
            contcar += "\n" + "".join(
                " " + " ".join(f"{x:16.8E}" for x in row) + "\n" for row in velocities
            )
        Path("CONTCAR").write_text(contcar)

    def _xdatcar_frame(self, index: int, atoms) -> None:
        self.xdatcar.write(
            f"Direct configuration= {index:5d}\n"
            + "".join(
                " " + " ".join(f"{x:11.8f}" for x in row) + "\n"
                for row in atoms.get_scaled_positions(wrap=True)
            )
        )

    def finish(self, atoms, velocities=None) -> None:
        self.xml.write(self._structure_xml(atoms, ' name="finalpos"') + "</modeling>\n")
        self.outcar.write(
            " General timing and accounting informations for this job:\n"
            " ========================================================\n"
        )
        self.write_contcar(atoms, velocities)
        for handle in self.files:
            handle.close()


# --- the run


def _fail_now() -> str:
    """The run's failure mode: FAKE_VASP_FAIL, unless FAKE_VASP_FAIL_ON_RUN names another run."""
    mode = os.environ.get("FAKE_VASP_FAIL", "")
    log = os.environ.get("FAKE_VASP_LOG")
    only_run = os.environ.get("FAKE_VASP_FAIL_ON_RUN")
    if mode and only_run and log:
        runs = len(Path(log).read_text().splitlines())
        return mode if runs == int(only_run) else ""
    return mode


def main() -> int:
    from ase import Atoms

    tags = read_incar(Path("INCAR"))
    if log := os.environ.get("FAKE_VASP_LOG"):
        with open(log, "a") as handle:
            handle.write(f"{Path.cwd()} NSW={tags.get('NSW', '0')}\n")
    failure = _fail_now()
    error = ERRORS.get(failure)
    if error is not None and error[2](tags):
        error = None  # custodian fixed it
    if failure == "no-output":
        print(" ERROR: fake VASP asked to stop before writing anything", flush=True)
        return 1
    species, counts, symbols, lattice, frac, velocities = read_poscar(Path("POSCAR"))
    potcars = read_potcar_titles(Path("POTCAR"))
    if [element for element, _ in potcars] != species:
        print(
            f" ERROR: the POTCAR elements {[e for e, _ in potcars]} do not match "
            f"the POSCAR species {species}"
        )
        return 1
    kpoints = Path("KPOINTS").read_text()
    atoms = Atoms(symbols, scaled_positions=frac, cell=lattice, pbc=True)
    model = Model(symbols, float(tags.get("ENCUT", ENMAX_EV)))
    nsw = int(tags.get("NSW", 0))
    ibrion = int(tags.get("IBRION", -1 if nsw == 0 else 0))
    md = ibrion == 0 and nsw > 0
    kill_after = int(failure.split(":")[1]) if failure.startswith("killed:") else None
    print(
        " running on    1 total cores\n"
        f" POSCAR found :  {len(species)} types and {len(symbols)} ions",
        flush=True,
    )
    unconverged = failure == "unconverged" or (failure == "scf" and error is not None)
    shift = POSITIVE_SHIFT_EV if failure == "positive" and error is not None else 0.0
    outputs = Outputs(
        tags, species, counts, symbols, potcars, kpoints, atoms, md, unconverged, shift
    )
    step_seconds = float(os.environ.get("FAKE_VASP_STEP_SECONDS", 0))

    def after_step(step: int) -> bool:
        """Kill or abort as asked; whether a STOPCAR ends the run now."""
        if step == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        if error is not None and error[0] and step == ERROR_STEP:
            stream = sys.stderr if failure == "grad_not_orth" else sys.stdout
            print(error[0], file=stream, flush=True)
            if error[1]:
                sys.exit(1)
        time.sleep(step_seconds)
        return Path("STOPCAR").exists() and "LSTOP" in Path("STOPCAR").read_text().upper()

    if md:
        velocities = molecular_dynamics(atoms, model, tags, outputs, velocities, after_step)
    elif ibrion in (1, 2, 3) and nsw > 0:
        relax(atoms, model, tags, outputs, after_step)
        velocities = None
    else:
        outputs.ionic_step(1, atoms, *model.evaluate(atoms))
        velocities = None
    outputs.finish(atoms, velocities)
    return 0


def molecular_dynamics(atoms, model, tags, outputs, velocities, after_step):
    dt = float(tags.get("POTIM", 0.5))
    target = float(tags.get("TEBEG", 300))
    masses = atoms.get_masses()[:, None]
    if velocities is None:
        velocities = np.random.default_rng(0).normal(size=(len(atoms), 3)) * np.sqrt(
            BOLTZMANN_EV * target / masses / EV_PER_AMU_A2_FS2
        )
    energy, forces, stress = model.evaluate(atoms)
    for step in range(1, int(tags["NSW"]) + 1):
        outputs.ionic_step(step, atoms, energy, forces, stress, velocities)
        if after_step(step):
            break
        velocities = velocities + 0.5 * dt * forces / masses / EV_PER_AMU_A2_FS2
        atoms.positions += dt * velocities
        energy, forces, stress = model.evaluate(atoms)
        velocities = velocities + 0.5 * dt * forces / masses / EV_PER_AMU_A2_FS2
        kinetic = 0.5 * float((masses * velocities**2).sum()) * EV_PER_AMU_A2_FS2
        temperature = 2 * kinetic / ((3 * len(atoms) - 3) * BOLTZMANN_EV)
        velocities = velocities * np.sqrt(1 + (target / temperature - 1) / THERMOSTAT_STEPS)
    return velocities


def relax(atoms, model, tags, outputs, after_step) -> None:
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE

    ediffg = float(tags.get("EDIFFG", -0.05))
    fmax = -ediffg if ediffg < 0 else 0.05
    atoms.calc = model.calculator
    target = FrechetCellFilter(atoms) if int(tags.get("ISIF", 2)) >= 3 else atoms
    optimizer = FIRE(target, logfile=None)
    nsw = int(tags["NSW"])
    for step in range(1, nsw + 1):
        outputs.ionic_step(step, atoms, *model.evaluate(atoms))
        if after_step(step):
            return
        if (target.get_forces() ** 2).sum(axis=1).max() < fmax**2 or step == nsw:
            return
        optimizer.step()


if __name__ == "__main__":
    sys.exit(main())
