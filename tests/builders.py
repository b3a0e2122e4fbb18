"""What several test modules build: paths to the repository and the shared data, the options of the
cheapest ``amorph`` runs (Lennard-Jones argon), a synthetic regression table, small crystals and
random cells, an untrained M3GNet, comparisons with stock ASE calculators, and flows run here by
jobflow."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pymatgen.core import Lattice, Structure

from amorph.cli import main
from amorph.constants import EV_A3_TO_GPA, K_B_EV

REPOSITORY = Path(__file__).resolve().parents[1]
TESTS = REPOSITORY / "tests"
SHARED = REPOSITORY / ".." / "shared"
AIMD_REFERENCE = SHARED / "data" / "aimd_reference"
NA_XDATCAR = SHARED / "data" / "liquid_Na" / "XDATCAR_671K.gz"


def lj_options(
    engine: str = "lj_calculators:argon",
    model: str | None = None,
    temperatures: Sequence[str] = ("100", "80"),
) -> list[str]:
    """Options of the cheapest ``amorph run`` or ``campaign``: the demo preset on Lennard-Jones
    argon (``lj_calculators``), atoms at least 3 Å apart, at ``temperatures`` (K)."""
    engine_options = ["--engine", engine, *(["--model", model] if model else [])]
    return [
        *engine_options,
        "--preset",
        "demo",
        "--min-distance",
        "3.0",
        "--temperatures",
        *temperatures,
    ]


def campaign(folder: Path, formulas: str, *options: str) -> tuple[int, Path]:
    """``amorph campaign`` in this process over the lines ``formulas`` (a file in ``folder``) into
    ``folder/outputs``: its exit status and the outputs folder."""
    compositions = folder / "compositions.txt"
    compositions.write_text(formulas)
    outputs = folder / "outputs"
    return main(["campaign", str(compositions), *options, "--outputs", str(outputs)]), outputs


def exported_rows(outputs: Path, capsys) -> list[dict]:
    """The rows of ``amorph db export --format json`` of the store under ``outputs``."""
    capsys.readouterr()
    assert main(["db", "export", "--format", "json", "--outputs", str(outputs)]) == 0
    return json.loads(capsys.readouterr().out)


def synthetic_table(path, n_rows: int = 80, seed: int = 3) -> np.ndarray:
    """CSV with an Arrhenius-like D(T, LNC, PF) plus noise columns; returns D."""
    rng = np.random.default_rng(seed)
    temperature = rng.choice([1000.0, 1500.0, 2000.0, 2500.0], n_rows)
    lnc, pf = rng.uniform(10, 24, n_rows), rng.uniform(0.3, 0.7, n_rows)
    noise = rng.normal(size=(n_rows, 3))
    d = np.exp(
        -0.3 / (K_B_EV * temperature) - 0.15 * lnc - 2.0 * pf - 3.0 + rng.normal(0, 0.05, n_rows)
    )
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["formula", "temperature", "D_cm2_s", "LNC", "PF", "N0", "N1", "N2"])
        for i in range(n_rows):
            writer.writerow([f"Li{i}X", temperature[i], d[i], lnc[i], pf[i], *noise[i]])
    return d


def antifluorite(a: float = 4.61, anion: str = "O", shear: float = 0.0) -> Structure:
    """Conventional 12-atom antifluorite Li2X (Li2O: a = 4.61 Å), 8 Li in the tetrahedral holes of
    4 fcc anions; ``shear`` tilts b by ``shear``·a along x and c by half that along y."""
    frac = [[x, y, z] for x in (0.25, 0.75) for y in (0.25, 0.75) for z in (0.25, 0.75)]
    frac += [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    lattice = Lattice(np.array([[a, 0, 0], [shear * a, a, 0], [0, 0.5 * shear * a, a]]))
    return Structure(lattice, ["Li"] * 8 + [anion] * 4, frac)


def random_cell(lattice: Lattice, species: list[str], min_distance: float, seed: int) -> Structure:
    """``species`` at random positions in ``lattice``, none closer than ``min_distance`` (Å)."""
    rng = np.random.default_rng(seed)
    coords: list[np.ndarray] = []
    while len(coords) < len(species):
        trial = rng.random(3)
        if not coords or lattice.get_all_distances(np.array(coords), [trial]).min() > min_distance:
            coords.append(trial)
    return Structure(lattice, species, coords)


def untrained_m3gnet(blocks: int = 2, width: int = 32, cutoff: float = 5.0):
    """An untrained Li–O M3GNet, seeded (no hub, no network)."""
    import torch
    from matgl.models import M3GNet

    torch.manual_seed(0)
    return M3GNet(
        element_types=("Li", "O"),
        nblocks=blocks,
        units=width,
        dim_node_embedding=width,
        dim_edge_embedding=width,
        cutoff=cutoff,
        threebody_cutoff=3.0,
        is_intensive=False,
    )


def stock(calculator, atoms) -> tuple[float, np.ndarray, np.ndarray]:
    """Energy, forces and 3×3 stress of the ASE ``calculator`` on a copy of ``atoms``."""
    atoms = atoms.copy()
    atoms.calc = calculator
    return atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress(voigt=False)


def assert_matches_stock(evaluation, calculator, atoms_list) -> None:
    """A batched potential's ``evaluation`` of ``atoms_list`` equals the stock ``calculator``'s:
    energies to 1e-5 eV/atom, forces to 1e-4 eV/Å, stresses to 1 MPa."""
    import torch

    forces = torch.split(evaluation.forces, [len(atoms) for atoms in atoms_list])
    for b, atoms in enumerate(atoms_list):
        energy, stock_forces, stress = stock(calculator, atoms)
        assert abs(evaluation.energies[b].item() - energy) / len(atoms) < 1e-5
        assert np.abs(forces[b].numpy() - stock_forces).max() < 1e-4
        assert np.abs(evaluation.stresses[b].numpy() - stress).max() * EV_A3_TO_GPA < 1e-3


def memory_store():
    """A jobflow store in memory, with the ``data`` store that trajectories go to."""
    from jobflow import JobStore
    from maggma.stores import MemoryStore

    return JobStore(MemoryStore(), additional_stores={"data": MemoryStore()})


def run_jobs(flow, store, root: Path):
    """``flow`` run here by jobflow into ``store``, each job in a folder below ``root``, stopping
    at the first error."""
    from jobflow import run_locally

    return run_locally(
        flow, store=store, root_dir=root, create_folders=True, raise_immediately=True, log=False
    )
