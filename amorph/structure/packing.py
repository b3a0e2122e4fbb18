"""Stage 2: the starting cell: a random packing by packmol at a given volume."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from pymatgen.core import Composition, Lattice, Structure

from amorph.errors import InputError, PackingError
from amorph.files import dies_with_this_process, process_alive

logger = logging.getLogger(__name__)


def packmol_binary() -> str:
    """Path of the packmol executable shipped by the PyPI package ``packmol`` (or found on PATH)."""
    try:
        from packmol.cli import get_binary_path

        return str(get_binary_path())
    except (ImportError, FileNotFoundError):
        found = shutil.which("packmol")
        if found is None:
            raise PackingError("packmol not found: install it with 'pip install packmol'") from None
        return found


def _remove_packmol_leftovers() -> None:
    """Remove the packmol folders of killed processes from the system temp folder."""
    for folder in Path(tempfile.gettempdir()).glob("amorph-packmol-*-*"):
        pid = folder.name.split("-")[2]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def random_packed_structure(
    composition: Composition,
    n_formula_units: int,
    volume_per_atom: float,
    min_distance: float = 1.6,
    seed: int = 1,
    timeout: float = 120.0,
) -> Structure:
    """Pack ``n_formula_units`` of ``composition`` at random into a cubic periodic cell (packmol).

    ``min_distance`` (Å) is packmol's tolerance, respected across periodic images.
    """
    if volume_per_atom <= 0:
        raise InputError(f"volume per atom must be positive, got {volume_per_atom}")
    counts = {
        el.symbol: round(float(amount * n_formula_units)) for el, amount in composition.items()
    }
    n_atoms = sum(counts.values())
    length = (volume_per_atom * n_atoms) ** (1 / 3)
    _remove_packmol_leftovers()
    with tempfile.TemporaryDirectory(prefix=f"amorph-packmol-{os.getpid()}-") as tmp:
        work = Path(tmp)
        blocks = []
        for symbol, count in counts.items():
            (work / f"{symbol}.xyz").write_text(f"1\n{symbol}\n{symbol} 0.0 0.0 0.0\n")
            blocks.append(f"structure {symbol}.xyz\n  number {count}\nend structure\n")
        (work / "pack.inp").write_text(
            f"tolerance {min_distance}\nfiletype xyz\noutput packed.xyz\nseed {seed}\n"
            f"pbc 0.0 0.0 0.0 {length:.6f} {length:.6f} {length:.6f}\n" + "".join(blocks)
        )
        try:
            with open(work / "pack.inp") as stdin:
                proc = subprocess.run(
                    [packmol_binary()],
                    stdin=stdin,
                    cwd=work,
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                    preexec_fn=dies_with_this_process(),
                )
        except subprocess.TimeoutExpired:
            raise PackingError(
                f"packmol did not finish within {timeout:g} s for {n_atoms} atoms in "
                f"{length:.2f} Å cell"
            ) from None
        output = work / "packed.xyz"
        if proc.returncode != 0 or not output.exists():
            reason = (
                "could not place atoms without overlap"
                if "PERFECT PACKING" in proc.stdout
                else (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode:d}"])[-1]
            )
            raise PackingError(
                f"packmol failed for {composition.reduced_formula} ({n_atoms} atoms, "
                f"{length:.2f} Å cell, "
                f"min distance {min_distance} Å): {reason}"
            )
        lines = output.read_text().splitlines()[2 : 2 + n_atoms]
    species = [line.split()[0] for line in lines]
    coords = np.array([[float(x) for x in line.split()[1:4]] for line in lines])
    return Structure(
        Lattice.cubic(length), species, coords, coords_are_cartesian=True, to_unit_cell=True
    )
