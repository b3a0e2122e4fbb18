"""The amorphous limit (Aykol et al., Sci. Adv. 2018), as in Zheng et al. (2024), with any engine.

Snapshots are taken from a production run, one every ``interval_ps`` back from its last frame (the
paper: 10 snapshots, one every 2 ps of a 20 ps run); each is relaxed (cell too) and computed
statically, and so is each element's reference state, with the same engine and settings (VASP:
``MPRelaxSet`` then ``MPStaticSet``; ML potentials: FIRE then a single point). Reported per
snapshot: the energy per atom and the formation energy per atom against the elemental references;
the amorphous limit is the lowest formation energy. Energies are raw (no MP anion or +U
corrections), so they compare with crystal energies computed by the same engine and settings.

Elemental references are built offline, as no database is reached (see :func:`reference_structure`):
ASE's reference crystal (``ase.data.reference_states``) where ``ase.build.bulk`` can build it; black
P, α-Ga, trigonal Se and Te from their space groups; the molecules H2, N2, O2, F2, Cl2, Br2, I2 and
the S8 ring in a box (fixed cell; for S, Cl, Br and I this leaves out the weak cohesion of the
molecular crystal). ``references`` overrides any of them with a given crystal structure (e.g. MP's
ground state).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from jobflow import Flow, Maker, Response, job
from monty.json import MSONable
from pymatgen.core import Composition, Lattice, Structure

from amorph.errors import InputError
from amorph.md.engine import EngineSpec, MDResult
from amorph.trajectory import Trajectory

MOLECULE_BOX_A = 10.0
DIATOMIC_BONDS_A = {"H": 0.74, "N": 1.10, "O": 1.21, "F": 1.42, "Cl": 1.99, "Br": 2.28, "I": 2.67}
# (name, space group, cell parameters, Wyckoff position) of references ase.build.bulk cannot build
CRYSTALS = {
    "P": ("black phosphorus", 64, (3.3136, 10.478, 4.3763, 90, 90, 90), (0, 0.10168, 0.08056)),
    "Ga": ("alpha-Ga", 64, (4.5197, 7.6633, 4.5260, 90, 90, 90), (0, 0.1549, 0.0810)),
    "Se": ("trigonal Se", 152, (4.366, 4.366, 4.954, 90, 90, 120), (0.2254, 0, 1 / 3)),
    "Te": ("trigonal Te", 152, (4.457, 4.457, 5.929, 90, 90, 120), (0.2636, 0, 1 / 3)),
}


@dataclass
class Reference:
    """An element's reference structure, how it was made, and whether its cell is relaxed."""

    structure: Structure
    description: str
    relax_cell: bool = True


def reference_structure(element: str) -> Reference:
    """The offline reference state of ``element``; ``InputError`` for elements without one."""
    from ase.build import bulk
    from ase.data import atomic_numbers, reference_states
    from ase.spacegroup import crystal
    from pymatgen.io.ase import AseAtomsAdaptor

    if element in DIATOMIC_BONDS_A:
        coords = [[0, 0, 0], [0, 0, DIATOMIC_BONDS_A[element]]]
        return Reference(
            _in_box([element] * 2, coords),
            f"{element}2 molecule in a {MOLECULE_BOX_A:g} Å box",
            False,
        )
    if element == "S":
        return Reference(
            _in_box(["S"] * 8, _s8_ring()), f"S8 ring in a {MOLECULE_BOX_A:g} Å box", False
        )
    if element in CRYSTALS:
        name, spacegroup, cellpar, site = CRYSTALS[element]
        atoms = crystal(element, [site], spacegroup=spacegroup, cellpar=cellpar)
        return Reference(AseAtomsAdaptor.get_structure(atoms), f"{name} (space group {spacegroup})")
    try:
        atoms = bulk(element)
    except (ValueError, KeyError, RuntimeError):
        raise InputError(
            f"no offline reference structure for {element}: give one in "
            f"AmorphousLimitMaker(references={{'{element}': structure}})"
        ) from None
    symmetry = reference_states[atomic_numbers[element]]["symmetry"]
    return Reference(
        AseAtomsAdaptor.get_structure(atoms), f"{symmetry} {element} (ASE reference state)"
    )


def _in_box(species: list[str], coords) -> Structure:
    coords = np.asarray(coords, dtype=float)
    centred = coords - coords.mean(axis=0) + MOLECULE_BOX_A / 2
    return Structure(Lattice.cubic(MOLECULE_BOX_A), species, centred, coords_are_cartesian=True)


def _s8_ring(bond: float = 2.05, angle_deg: float = 108.0) -> np.ndarray:
    """The S8 crown: atoms alternately above and below a plane, 45° apart around its axis."""
    radius = 2 * bond * np.sin(np.radians(angle_deg / 2)) / np.sqrt(2)  # second neighbours span 90°
    height = np.sqrt(bond**2 - (2 * radius * np.sin(np.pi / 8)) ** 2) / 2
    phi = np.arange(8) * np.pi / 4
    return np.column_stack(
        [radius * np.cos(phi), radius * np.sin(phi), height * (-1) ** np.arange(8)]
    )


def sample_snapshots(trajectory: Trajectory, count: int, interval_ps: float) -> list[int]:
    """Frame indices, one every ``interval_ps`` back from the last frame, at most ``count``, oldest
    first."""
    times = trajectory.time_fs
    wanted = times[-1] - 1000 * interval_ps * np.arange(count)
    wanted = wanted[wanted >= times[0] - 1e-6]
    return sorted({int(np.argmin(np.abs(times - t))) for t in wanted})


@dataclass
class RelaxedEnergy(MSONable):
    """A structure relaxed, then computed statically, by one engine."""

    structure: Structure
    energy_eV_per_atom: float
    relax_converged: bool
    relax_steps: int


@dataclass
class SnapshotEnergy(MSONable):
    """One relaxed snapshot: its energy and formation energy per atom (eV)."""

    time_ps: float
    energy_eV_per_atom: float
    formation_energy_eV_per_atom: float
    relax_converged: bool
    structure: Structure


@dataclass
class ElementReference(MSONable):
    """An element's relaxed reference state and its energy per atom (eV): the chemical potential."""

    element: str
    description: str
    energy_eV_per_atom: float
    relax_converged: bool
    structure: Structure


@dataclass
class AmorphousLimitResult(MSONable):
    """Per snapshot energies and formation energies; the amorphous limit is the lowest of those."""

    formula: str
    engine: str
    snapshots: list[SnapshotEnergy]
    references: list[ElementReference]
    amorphous_limit_eV_per_atom: float
    lowest_energy_eV_per_atom: float

    def summary(self) -> dict:
        """The numbers as JSON-ready data (no structures)."""
        data = self.as_dict()
        for entry in (*data["snapshots"], *data["references"]):
            for key in ("structure", "@module", "@class", "@version"):
                entry.pop(key, None)
        return {k: v for k, v in data.items() if not k.startswith("@")}


@dataclass
class AmorphousLimitMaker(Maker):
    """Relax and compute snapshots of a production run and the elemental references.

    Parameters
    ----------
    name
        Flow name.
    engine
        The engine of every relaxation and static computation (loaded only when they run).
    snapshots
        Number of snapshots, taken back from the last frame.
    interval_ps
        Time between snapshots.
    fmax
        Force tolerance (eV/Å) that ends a relaxation.
    max_steps
        Most ionic steps of a relaxation.
    references
        Reference structures by element, replacing the offline ones of
        :func:`reference_structure`.
    """

    name: str = "amorphous limit"
    engine: EngineSpec = field(default_factory=EngineSpec)
    snapshots: int = 10
    interval_ps: float = 2.0
    fmax: float = 0.05
    max_steps: int = 200
    references: dict[str, Structure] = field(default_factory=dict)

    def validate(self, elements: list[str]) -> None:
        """Raise before any job runs if a setting or an element's reference cannot work."""
        if self.snapshots < 1 or self.interval_ps <= 0:
            raise InputError(
                "the amorphous limit needs at least one snapshot and a positive interval"
            )
        if self.fmax <= 0 or self.max_steps < 1:
            raise InputError("relaxations need a positive force tolerance and at least one step")
        for element in elements:
            self.reference(element)

    def reference(self, element: str) -> Reference:
        """The reference of ``element``: from ``references``, else :func:`reference_structure`."""
        if element in self.references:
            return Reference(self.references[element], f"{element} structure given to the maker")
        return reference_structure(element)

    def make(self, production: MDResult | str) -> Flow:
        """The flow for the production run ``production`` (its result, or its trajectory's path,
        whose elements are checked here; an output reference is checked when the flow runs)."""
        if isinstance(production, MDResult | str):
            trajectory = Trajectory.load(_trajectory_path(production))
            self.validate(sorted(set(trajectory.symbols)))
        plan = plan_amorphous_limit(self, production)
        plan.name = "amorphous limit snapshots"
        return Flow([plan], output=plan.output, name=self.name)


def _trajectory_path(production: MDResult | str) -> str:
    return production.trajectory_path if isinstance(production, MDResult) else str(production)


@job
def plan_amorphous_limit(maker: AmorphousLimitMaker, production: MDResult | str) -> Response:
    """Sample snapshots; replace this job by their relaxations, the references' and the summary."""
    trajectory = Trajectory.load(_trajectory_path(production))
    elements = sorted(set(trajectory.symbols))
    maker.validate(elements)
    engine = maker.engine
    engine.load().check_elements(elements)
    indices = sample_snapshots(trajectory, maker.snapshots, maker.interval_ps)
    snapshot_jobs = []
    for index in indices:
        relaxation = relaxed_energy(
            trajectory.structure(index), engine, True, maker.fmax, maker.max_steps
        )
        relaxation.name = f"snapshot {trajectory.time_fs[index] / 1000:.2f} ps"
        snapshot_jobs.append(relaxation)
    references = {element: maker.reference(element) for element in elements}
    reference_jobs = {}
    for element, reference in references.items():
        relaxation = relaxed_energy(
            reference.structure, engine, reference.relax_cell, maker.fmax, maker.max_steps
        )
        relaxation.name = f"reference {element}"
        reference_jobs[element] = relaxation
    summary = summarize_amorphous_limit(
        trajectory.structure(0).composition.reduced_formula,
        engine.kind if engine.model is None else f"{engine.kind} {engine.model}",
        [float(trajectory.time_fs[i]) / 1000 for i in indices],
        [j.output for j in snapshot_jobs],
        {element: j.output for element, j in reference_jobs.items()},
        {element: reference.description for element, reference in references.items()},
    )
    summary.name = "amorphous limit"
    jobs = [*snapshot_jobs, *reference_jobs.values(), summary]
    return Response(replace=Flow(jobs, output=summary.output))


@job
def relaxed_energy(
    structure: Structure, engine: EngineSpec, relax_cell: bool, fmax: float, max_steps: int
) -> RelaxedEnergy:
    """Relax ``structure`` with the engine, then compute the relaxed structure statically."""
    live = engine.load()
    relaxed = live.relax(
        structure, Path.cwd(), relax_cell=relax_cell, fmax=fmax, max_steps=max_steps
    )
    energy = live.static(relaxed.structure, Path.cwd())
    return RelaxedEnergy(
        relaxed.structure, energy / len(relaxed.structure), relaxed.converged, relaxed.steps
    )


@job
def summarize_amorphous_limit(
    formula: str,
    engine: str,
    times_ps: list[float],
    snapshots: list[RelaxedEnergy],
    references: dict[str, RelaxedEnergy],
    descriptions: dict[str, str],
) -> AmorphousLimitResult:
    """Formation energies of the snapshots against the elemental references, and their minimum.

    Parameters
    ----------
    formula, engine
        The composition and the engine's label, for the result.
    times_ps
        Time of each snapshot in the production run, in the order of ``snapshots``.
    snapshots
        The relaxed snapshots.
    references, descriptions
        Relaxed reference state of each element, and how it was built.
    """
    potentials = {element: ref.energy_eV_per_atom for element, ref in references.items()}
    results = [
        SnapshotEnergy(
            time,
            s.energy_eV_per_atom,
            formation_energy_per_atom(s.structure.composition, s.energy_eV_per_atom, potentials),
            s.relax_converged,
            s.structure,
        )
        for time, s in zip(times_ps, snapshots, strict=True)
    ]
    elements = [
        ElementReference(
            element,
            descriptions[element],
            ref.energy_eV_per_atom,
            ref.relax_converged,
            ref.structure,
        )
        for element, ref in references.items()
    ]
    return AmorphousLimitResult(
        formula=formula,
        engine=engine,
        snapshots=results,
        references=elements,
        amorphous_limit_eV_per_atom=min(r.formation_energy_eV_per_atom for r in results),
        lowest_energy_eV_per_atom=min(r.energy_eV_per_atom for r in results),
    )


def formation_energy_per_atom(
    composition: Composition, energy_per_atom: float, potentials: dict[str, float]
) -> float:
    """Energy per atom minus the atom-fraction-weighted elemental energies per atom."""
    return energy_per_atom - sum(
        composition.get_atomic_fraction(el) * potentials[el.symbol] for el in composition.elements
    )
