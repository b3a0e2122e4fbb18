"""Stage 2: the starting cell: an offline volume estimate and a random packing by packmol."""

from __future__ import annotations

import logging
import math
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from pymatgen.core import Composition, Lattice, Structure

from amorph.descriptors.compositional import composition_features
from amorph.eos import rescaled_volume, thermal_pressure
from amorph.errors import InputError, PackingError
from amorph.files import process_alive

logger = logging.getLogger(__name__)

# Fraction of the cell filled by spheres of Shannon crystal radii (pymatgen's
# ``Species.ionic_radius``). 0.58 reproduces crystal volumes per atom within ~10 % for Li2O, Li2S,
# LiCl, NaCl and MgO and within 20 % for quartz (an open network); see tests/test_cell.py.
IONIC_PACKING_FRACTION = 0.58
VOLUME_PER_ATOM_BOUNDS = (4.0, 80.0)  # Å³/atom: a guess outside means the estimate itself is wrong
AVOGADRO_A3_PER_CM3 = 0.602214076  # N_A × 1e-24: converts cm³/mol to Å³/atom


def estimate_volume_per_atom(composition: Composition, temperature: float = 0.0) -> float:
    """Offline estimate of the volume per atom (Å³) of ``composition`` at zero virial pressure.

    The cold (dense-phase) volume: compounds with a charge-balanced oxidation-state assignment
    (pymatgen's guess) take the volume of their ions' Shannon crystal-radius spheres divided by
    :data:`IONIC_PACKING_FRACTION`; others (intermetallics, elements) take the fraction-weighted
    volume per atom of the elemental solids. It is clipped to :data:`VOLUME_PER_ATOM_BOUNDS`.

    Above 0 K the cold volume expands by ΔV/V = P_th/B, at most doubling: P_th is the virial
    thermal pressure at ``temperature`` (:func:`amorph.eos.thermal_pressure`), B the
    atomic-fraction average of the published element bulk moduli (the ``avg_B_with_Li``
    descriptor); no expansion where an element has no modulus.
    """
    fractions = {el: composition.get_atomic_fraction(el) for el in composition.elements}
    guesses = composition.oxi_state_guesses(max_sites=-50) if len(fractions) > 1 else []
    volume = None
    if guesses:
        from pymatgen.core import Species

        radii = {}
        for el in fractions:
            radius = Species(el.symbol, guesses[0][el.symbol]).ionic_radius
            if radius is None:
                break
            radii[el] = float(radius)
        else:
            sphere = sum(f * 4 / 3 * math.pi * radii[el] ** 3 for el, f in fractions.items())
            volume = sphere / IONIC_PACKING_FRACTION
    if volume is None:
        volume = sum(f * _elemental_volume_per_atom(el) for el, f in fractions.items())
    low, high = VOLUME_PER_ATOM_BOUNDS
    if not low <= volume <= high:
        logger.warning("volume estimate %.1f Å³/atom clipped to [%g, %g]", volume, low, high)
    volume = float(np.clip(volume, low, high))
    if temperature <= 0:
        return volume
    bulk_modulus = composition_features(composition)["avg_B_with_Li"]
    if not bulk_modulus > 0:
        return volume
    return rescaled_volume(
        volume, thermal_pressure(temperature, volume), bulk_modulus, max_change=1.0
    )


def _elemental_volume_per_atom(element) -> float:
    """Volume per atom of the elemental solid (pymatgen molar volume), else of its atomic sphere."""
    molar_volume = element.molar_volume  # cm³/mol
    if molar_volume:
        return float(molar_volume) / AVOGADRO_A3_PER_CM3
    return 4 / 3 * math.pi * float(element.atomic_radius or 1.5) ** 3 / IONIC_PACKING_FRACTION


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
    counts = {el.symbol: int(round(amount * n_formula_units)) for el, amount in composition.items()}
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
