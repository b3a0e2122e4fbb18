"""The VASP settings in one place, and the pymatgen input sets built from them.

MD follows Zheng et al. (npj Comput. Mater. 2024), i.e. MPMorph and the amorphous-limit work of
Aykol et al. (Sci. Adv. 2018), through pymatgen's ``MPMDSet``: PAW-PBE with the Materials Project
POTCAR choices (``Li_sv``, ``O``, ...), Γ point only, ``ISYM = 0``, ``PREC = Normal``,
``IBRION = 0``, no spin polarisation; ``TEBEG = TEEND`` = the stage temperature, ``NSW`` = the
steps of the run (of the chunk), ``POTIM`` = ``MDSettings.time_step_for`` (2 fs, 0.5 fs with H),
``NBLOCK`` = the sample interval. (atomate2's ``MDSetGenerator`` is not used: it takes atomate2's
PBE_54 POTCAR choices.)

Two choices of MD inputs, the engine option ``inputs`` (:data:`MD_INPUTS`):

* ``"paper"``: ``MPMDSet`` unchanged, the input set of the MPMorph and amorphous-limit work behind
  the published database, for users who need comparability with it;
* ``"amorph"`` (default): ``MPMDSet`` with :data:`MD_INCAR` on top. The differences, and why:

  - ``ISIF`` 2, not 0: with ``ISIF = 0`` VASP computes no stress, but MPMorph's volume search
    needs the pressure at every step. With ``paper`` the pressures are NaN: use it at a volume
    found otherwise.
  - ``ENCUT`` 520 eV (MP's cutoff), not the largest POTCAR ENMAX: at ENMAX the Pulay stress is
    several kbar, which biases the zero-pressure volume.
  - ``LREAL`` Auto, not True: VASP's optimised real-space projectors.
  - ``PREC`` Normal in both.
  - ``EDIFF`` 1e-5 eV × atoms (``ediff_per_atom``), the tolerance ``MPMDSet`` means: it writes
    ``EDIFF_PER_ATOM = 1e-5`` as a tag that VASP ignores and keeps ``MPRelaxSet``'s 5e-5 eV × atoms.
  - ``MDALGO`` 2: Nosé–Hoover, VASP's thermostat for ``SMASS = 0`` in both, named explicitly.
  - ``LWAVE`` False: chunks continue from positions and velocities, not from wavefunctions.

Relaxations and statics (the amorphous limit) use ``MPRelaxSet`` and ``MPStaticSet`` with
:data:`LIMIT_INCAR`, the same for compounds and elemental references. Single points on MD frames
(audits, the basis-set stress) use the MD's own INCAR with ``NSW = 0`` and the stress computed.

**Basis-set stress**: with the ``amorph`` inputs, the volume search measures the pressure of one
frame at the MD's ``ENCUT`` and at ``converged_encut`` (default :data:`CONVERGED_ENCUT_FACTOR` × it)
and aims at zero pressure at the converged basis (``basis_correction``; off with ``paper``, which
stays as published).

Every dict here is a default: ``EngineSpec("vasp", options={"md_incar": {"ENCUT": 600}})`` updates
it. How VASP is run (custodian, walltime) is in :mod:`amorph.md.vasp.recovery`.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Any

from monty.json import MSONable
from pymatgen.core import SETTINGS, Structure
from pymatgen.io.vasp.inputs import PotcarSingle
from pymatgen.io.vasp.sets import MPMDSet, MPRelaxSet, MPStaticSet

from amorph.errors import EngineError
from amorph.md.engine import check_options

DEFAULT_COMMAND = "vasp_std"
COMMAND_VARIABLE = "AMORPH_VASP_CMD"

MD_INCAR: dict[str, Any] = {
    "MDALGO": 2,  # Nosé–Hoover NVT
    # Nosé mass: a period of about 40 steps (80 fs at 2 fs); MDSettings.thermostat_time_fs is unused
    "SMASS": 0,
    "ISIF": 2,  # the stress is computed at every step (MPMDSet's ISIF = 0 skips it); fixed cell
    "ENCUT": 520,  # MP's cutoff; MPMDSet's default (the POTCARs' ENMAX) leaves a large Pulay stress
    "LREAL": "Auto",
    "LWAVE": False,  # chunks continue from positions and velocities, not from wavefunctions
    "EDIFF_PER_ATOM": None,  # MPMDSet writes this as a literal tag; EDIFF comes from ediff_per_atom
}

# The engine option ``inputs``: (updates of MPMDSet's INCAR, EDIFF per atom or None for MPMDSet's)
MD_INPUTS: dict[str, tuple[dict[str, Any], float | None]] = {
    "amorph": (MD_INCAR, 1e-5),
    "paper": ({}, None),
}
CONVERGED_ENCUT_FACTOR = 1.5
CUSTODIAN_KWARGS: dict[str, Any] = {  # custodian.Custodian's own defaults, but for max_errors
    "max_errors": 5,
    "polling_time_step": 10,
    "monitor_freq": 30,
}

# One Hamiltonian for compounds and elements: MP's +U applies to oxides and fluorides only, which
# would make formation energies against elemental references inconsistent without MP's fitted
# corrections.
LIMIT_INCAR: dict[str, Any] = {"LDAU": False}


@dataclass
class VaspSettings(MSONable):
    """Everything the VASP engine writes or runs; :meth:`from_options` builds it from
    ``EngineSpec.options``."""

    command: str = DEFAULT_COMMAND
    inputs: str = "amorph"  # a key of MD_INPUTS; sets the defaults of md_incar and ediff_per_atom
    md_incar: dict[str, Any] = field(default_factory=lambda: dict(MD_INCAR))
    relax_incar: dict[str, Any] = field(default_factory=lambda: dict(LIMIT_INCAR))
    static_incar: dict[str, Any] = field(default_factory=lambda: dict(LIMIT_INCAR))
    ediff_per_atom: float | None = 1e-5  # eV; MPMDSet's intent; None: MPMDSet's EDIFF
    spin_polarized: bool = False
    potcar_functional: str = "PBE"
    potcar_settings: dict[str, str] = field(
        default_factory=dict
    )  # element -> POTCAR symbol overrides
    custodian_kwargs: dict[str, Any] = field(default_factory=lambda: dict(CUSTODIAN_KWARGS))
    # the job's walltime; None: custodian reads $PBS_WALLTIME or $SBATCH_TIMELIMIT, else none.
    # It counts from $CUSTODIAN_WALLTIME_START (custodian's convention; set it in the batch
    # script), else from the first VASP MD run of the process.
    wall_time_s: float | None = None
    wall_time_buffer_s: float = 300.0  # no chunk starts, and a running one stops, this close to it
    basis_correction: bool | None = None  # None: with the "amorph" inputs, not with "paper"
    converged_encut: float | None = None  # eV; None: CONVERGED_ENCUT_FACTOR × the MD's ENCUT

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> VaspSettings:
        """Defaults updated by ``options``: INCAR dicts are merged key by key; the command falls
        back to ``$AMORPH_VASP_CMD``, then ``vasp_std``."""
        check_options(cls, options, "VASP")
        inputs = options.get("inputs", "amorph")
        if inputs not in MD_INPUTS:
            raise EngineError(
                f"unknown VASP MD inputs {inputs!r}; known: {', '.join(sorted(MD_INPUTS))}"
            )
        md_incar, ediff_per_atom = MD_INPUTS[inputs]
        settings = cls(
            command=os.environ.get(COMMAND_VARIABLE, DEFAULT_COMMAND),
            inputs=inputs,
            md_incar=dict(md_incar),
            ediff_per_atom=ediff_per_atom,
        )
        for key, value in options.items():
            current = getattr(settings, key)
            setattr(settings, key, {**current, **value} if isinstance(current, dict) else value)
        return settings

    def potcar_symbol(self, element: str) -> str:
        """The POTCAR of ``element``: ``potcar_settings``', else MPRelaxSet's, else its symbol."""
        return self.potcar_settings.get(element) or MPRelaxSet.CONFIG["POTCAR"].get(
            element, element
        )

    def check_potcar_directory(self) -> None:
        """Raise ``EngineError`` unless pymatgen's POTCAR folder for the functional exists."""
        functional_dir = PotcarSingle.functional_dir.get(self.potcar_functional)
        if functional_dir is None:
            raise EngineError(f"unknown POTCAR functional {self.potcar_functional!r}")
        root = SETTINGS.get("PMG_VASP_PSP_DIR")
        if not root:
            raise EngineError(
                "VASP POTCARs are not configured: set PMG_VASP_PSP_DIR (environment or "
                f"~/.config/.pmgrc.yaml) to the folder that holds {functional_dir}/"
            )
        if not os.path.isdir(os.path.join(os.path.expanduser(root), functional_dir)):
            raise EngineError(f"no {functional_dir}/ folder in PMG_VASP_PSP_DIR={root}")

    def check_potcars(self, elements: list[str]) -> None:
        """Raise ``EngineError`` naming the first element whose POTCAR cannot be read."""
        self.check_potcar_directory()
        for element in elements:
            symbol = self.potcar_symbol(element)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    PotcarSingle.from_symbol_and_functional(symbol, self.potcar_functional)
            except (OSError, ValueError) as exc:
                first_line = str(exc).splitlines()[0]
                raise EngineError(
                    f"no usable POTCAR {symbol} for {element}: {first_line}"
                ) from None

    def describe(self) -> dict[str, Any]:
        """What decides VASP's numbers, for fingerprints and stage documents."""
        return {
            "code": "vasp",
            "inputs": self.inputs,
            "incar": self.md_incar,
            "ediff_per_atom": self.ediff_per_atom,
            "potcars": [self.potcar_functional, self.potcar_settings, self.spin_polarized],
        }

    @property
    def corrects_basis(self) -> bool:
        """Whether pressures get the basis-set correction: ``basis_correction``, else not with
        ``paper`` inputs."""
        return self.inputs != "paper" if self.basis_correction is None else self.basis_correction

    def md_encut(self, structure: Structure) -> float:
        """The MD's ENCUT: the INCAR's, else (``paper``) the largest POTCAR ENMAX, as VASP's."""
        encut = self.md_incar.get("ENCUT")
        if encut:
            return float(encut)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return max(
                PotcarSingle.from_symbol_and_functional(
                    self.potcar_symbol(el.symbol), self.potcar_functional
                ).enmax
                for el in structure.composition
            )

    def point_set(self, structure: Structure, encut: float | None = None) -> MPMDSet:
        """A single point of ``structure``: the MD's INCAR (``encut`` if given), stress on."""
        incar = {**self.md_incar, "NSW": 0, "IBRION": -1, "ISIF": 2, "LWAVE": False}
        if encut is not None:
            incar["ENCUT"] = encut
        if self.ediff_per_atom is not None:
            incar["EDIFF"] = float(f"{self.ediff_per_atom * len(structure):.3g}")
        return MPMDSet(
            structure,
            nsteps=0,
            spin_polarized=self.spin_polarized,
            user_incar_settings=incar,
            **self._common(),
        )

    def _common(self) -> dict[str, Any]:
        return {
            "user_potcar_functional": self.potcar_functional,
            "user_potcar_settings": self.potcar_settings,
        }

    def md_set(
        self,
        structure: Structure,
        temperature: float,
        steps: int,
        time_step_fs: float,
        sample_interval: int,
    ) -> MPMDSet:
        """NVT MD of ``structure``; its site property ``velocities`` (Å/fs) goes into the POSCAR."""
        incar = {**self.md_incar, "NBLOCK": sample_interval}
        if self.ediff_per_atom is not None:
            incar["EDIFF"] = float(f"{self.ediff_per_atom * len(structure):.3g}")
        return MPMDSet(
            structure,
            start_temp=temperature,
            end_temp=temperature,
            nsteps=steps,
            time_step=time_step_fs,
            spin_polarized=self.spin_polarized,
            user_incar_settings=incar,
            **self._common(),
        )

    def relax_set(
        self, structure: Structure, relax_cell: bool, fmax: float, max_steps: int
    ) -> MPRelaxSet:
        """MP relaxation: forces below ``fmax`` (EDIFFG < 0) within ``max_steps`` ionic steps."""
        incar = {
            **self.relax_incar,
            "ISIF": 3 if relax_cell else 2,
            "EDIFFG": -fmax,
            "NSW": max_steps,
        }
        return MPRelaxSet(structure, user_incar_settings=incar, **self._common())

    def static_set(self, structure: Structure) -> MPStaticSet:
        """MP static single point of ``structure`` with ``static_incar``."""
        return MPStaticSet(structure, user_incar_settings=self.static_incar, **self._common())
