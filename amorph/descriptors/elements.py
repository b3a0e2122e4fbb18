"""Elemental data behind the descriptors, and the ionic model (anions, radii) of a composition.

Sources
-------
* Pauling electronegativity, Shannon radii, Slater atomic radii, atomic masses, bulk and rigidity
  (shear) moduli: pymatgen's periodic table (``pymatgen.core.Element``; the moduli are its
  WebElements/CRC room-temperature values and are missing for many non-metals).
* Covalent radii: Cordero et al., Dalton Trans. 2832 (2008), as tabulated in ``ase.data``.
* Cohesive energies: Kittel, *Introduction to Solid State Physics*, 8th ed., ch. 3 Table 1, stored
  in ``amorph/data/cohesive_energies.json``.
"""

from __future__ import annotations

import json
import math
import warnings
from functools import cache
from importlib.resources import files

from pymatgen.core import Composition, Element

LITHIUM = "Li"


def _quiet(getter, symbol: str):
    """``getter(Element(symbol))`` without pymatgen's "no data" warnings; None where it has none."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = getter(Element(symbol))
    return None if value is None else float(value)


@cache
def electronegativity(symbol: str) -> float:
    """Pauling electronegativity (NaN for the light noble gases, which have none)."""
    return _quiet(lambda e: e.X, symbol)


@cache
def cohesive_energies() -> dict[str, float]:
    """Kittel's experimental cohesive energies in eV/atom, keyed by element symbol."""
    table = json.loads((files("amorph") / "data" / "cohesive_energies.json").read_text())
    return {symbol: float(value) for symbol, value in table["values"].items()}


ELEMENT_PROPERTIES = {
    "bulk_modulus": lambda s: _quiet(lambda e: e.bulk_modulus, s),
    "shear_modulus": lambda s: _quiet(lambda e: e.rigidity_modulus, s),
    "cohesive_energy": lambda s: cohesive_energies().get(s),
    "electronegativity": electronegativity,
    "atomic_radius": lambda s: _quiet(lambda e: e.atomic_radius, s),
    "mass": lambda s: _quiet(lambda e: e.atomic_mass, s),
    "electronegativity_diff_Li": lambda s: abs(electronegativity(s) - electronegativity(LITHIUM)),
}
"""Per-element properties averaged over a composition.

Units, in order: GPa, GPa, eV/atom, Pauling, Å, amu, Pauling.
"""


@cache
def element_property(name: str, symbol: str) -> float | None:
    """``ELEMENT_PROPERTIES[name]`` of ``symbol``; None (not NaN) where the source has no value."""
    value = ELEMENT_PROPERTIES[name](symbol)
    return None if value is None or math.isnan(value) else value


def _covalent_radius(symbol: str) -> float:
    from ase.data import atomic_numbers, covalent_radii

    return float(covalent_radii[atomic_numbers[symbol]])


def _shannon_radius(symbol: str, state: float | None, *, anion: bool) -> float | None:
    """Shannon crystal radius (six-fold) for ``state``, else for the usual state of that sign."""
    radii = Element(symbol).ionic_radii
    if state is not None and (state < 0) == anion and round(state) in radii:
        return float(radii[round(state)])
    signed = sorted(k for k in radii if (k < 0) == anion and k != 0)
    if not signed:
        return None
    return float(radii[signed[0] if anion else signed[-1]])


@cache
def _oxidation_guess(reduced_formula: str) -> dict[str, float]:
    guesses = Composition(reduced_formula).oxi_state_guesses(max_sites=-1)
    return dict(guesses[0]) if guesses else {}


@cache
def ionic_model(reduced_formula: str) -> dict[str, tuple[bool, float]]:
    """``{symbol: (is_anion, sphere_radius_Å)}`` for the elements of a composition.

    Anions: the most electronegative non-Li element, plus every element that pymatgen's most
    probable charge-balanced oxidation-state guess makes negative *and* that is more electronegative
    than every element it makes positive (so sulfates count O only, Li6PS5Cl counts S and Cl, and a
    doubtful guess such as B(-3) in LiBH4 is ignored). Li is never an anion. A composition with no
    element besides Li has no anion.

    Sphere radius (packing fractions, path widths): the Shannon crystal radius for six-fold
    coordination of the guessed oxidation state (or of the most negative tabulated state for an
    anion, the highest positive one for a cation, when the guess is missing or not tabulated);
    the Cordero covalent radius where pymatgen tabulates no ionic radius of that sign.
    """
    symbols = [el.symbol for el in Composition(reduced_formula).elements]
    guess = _oxidation_guess(reduced_formula)
    others = [s for s in symbols if s != LITHIUM]
    anions: set[str] = set()
    if others:
        anions.add(max(others, key=electronegativity))
        max_cation_chi = max(
            (electronegativity(s) for s in symbols if guess.get(s, 0) > 0), default=-1.0
        )
        anions |= {
            s for s in others if guess.get(s, 0) < 0 and electronegativity(s) > max_cation_chi
        }
    model = {}
    for symbol in symbols:
        is_anion = symbol in anions
        radius = _shannon_radius(symbol, guess.get(symbol), anion=is_anion)
        model[symbol] = (is_anion, radius if radius is not None else _covalent_radius(symbol))
    return model
