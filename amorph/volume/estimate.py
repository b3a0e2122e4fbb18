"""The offline volume estimate: where a composition's volume search starts, with no network.

Cold (dense-phase) volumes from ionic or elemental radii, expanded to the melt temperature by its
virial thermal pressure over the element-averaged bulk modulus.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from pymatgen.core import Composition

from amorph.elements import element_property
from amorph.volume.eos import rescaled_volume, thermal_pressure

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
    thermal pressure at ``temperature`` (:func:`amorph.volume.eos.thermal_pressure`), B the
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
    bulk_modulus = average_bulk_modulus(composition)
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


def average_bulk_modulus(composition: Composition) -> float:
    """The atomic-fraction average of the published element bulk moduli (GPa), the paper's
    ``avg_B_with_Li`` descriptor; NaN where an element has none."""
    moduli = [element_property("B", el.symbol) for el in composition.elements]
    known = [b for b in moduli if b is not None]
    if len(known) < len(moduli):
        return math.nan
    fractions = [composition.get_atomic_fraction(el) for el in composition.elements]
    return float(sum(x * b for x, b in zip(fractions, known, strict=True)))
