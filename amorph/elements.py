"""Elemental data behind the descriptors, and the ionic model (anions, radii) of a composition.

Sources
-------
* Bulk modulus, shear modulus (GPa) and cohesive energy (eV/atom): the per-element values behind the
  published feature table of Zheng et al., npj Comput. Mater. (2024), for 60 elements, stored in
  ``amorph/data/paper_elements.json`` (recovered from that table: they reproduce its averages).
  Other elements fall back to pymatgen's moduli (WebElements/CRC room-temperature values, missing
  for many non-metals) and to Kittel's cohesive energies (*Introduction to Solid State Physics*, 8th
  ed., ch. 3 Table 1, ``amorph/data/cohesive_energies.json``); :func:`fallback_elements` names them.
* Pauling electronegativity, atomic radius (pymatgen's ``Element.atomic_radius``, Slater's values),
  atomic mass, Shannon radii: pymatgen's periodic table (``pymatgen.core.Element``).
* Covalent radii: Cordero et al., Dalton Trans. 2832 (2008), as tabulated in ``ase.data``.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable
from functools import cache
from importlib.resources import files

from pymatgen.core import Composition, Element

LITHIUM = "Li"


def _quiet(getter, symbol: str) -> float | None:
    """``getter(Element(symbol))`` without pymatgen's "no data" warnings; None where it has none."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = getter(Element(symbol))
    return None if value is None else float(value)


def _data(name: str) -> dict:
    return json.loads((files("amorph") / "data" / name).read_text())


@cache
def electronegativity(symbol: str) -> float:
    """Pauling electronegativity (NaN for the light noble gases, which have none)."""
    return _quiet(lambda e: e.X, symbol)


@cache
def covalent_radius(symbol: str) -> float:
    """Cordero covalent radius, Å."""
    from ase.data import atomic_numbers, covalent_radii

    return float(covalent_radii[atomic_numbers[symbol]])


@cache
def paper_elements() -> dict[str, dict[str, float]]:
    """The published per-element B, G (GPa) and Ecoh (eV/atom), keyed by property then symbol."""
    table = _data("paper_elements.json")
    keys = {"B": "bulk_modulus_GPa", "G": "shear_modulus_GPa", "Ecoh": "cohesive_energy_eV"}
    return {name: {s: float(v) for s, v in table[key].items()} for name, key in keys.items()}


@cache
def cohesive_energies() -> dict[str, float]:
    """Kittel's experimental cohesive energies in eV/atom, keyed by element symbol."""
    return {s: float(v) for s, v in _data("cohesive_energies.json")["values"].items()}


_FALLBACK = {
    "B": lambda s: _quiet(lambda e: e.bulk_modulus, s),
    "G": lambda s: _quiet(lambda e: e.rigidity_modulus, s),
    "Ecoh": lambda s: cohesive_energies().get(s),
}
_PYMATGEN = {
    "R": lambda s: _quiet(lambda e: e.atomic_radius, s),
    "m": lambda s: _quiet(lambda e: e.atomic_mass, s),
    "X": electronegativity,
}
ELEMENT_UNITS = {"B": "GPa", "G": "GPa", "Ecoh": "eV/atom", "R": "Å", "m": "amu", "X": "Pauling"}
"""The per-element properties averaged over a composition, and their units."""


@cache
def element_property(name: str, symbol: str) -> float | None:
    """Property ``name`` (a key of :data:`ELEMENT_UNITS`) of ``symbol``; None where no source has
    a value."""
    if name in _FALLBACK:
        value = paper_elements()[name].get(symbol)
        if value is None:
            value = _FALLBACK[name](symbol)
    else:
        value = _PYMATGEN[name](symbol)
    return None if value is None or math.isnan(value) else value


def fallback_elements(symbols: Iterable[str]) -> list[str]:
    """The elements among ``symbols`` whose B, G and Ecoh are not the published ones (sorted)."""
    return sorted({s for s in symbols if s not in paper_elements()["B"]})


def lattice_anion(symbols: Iterable[str]) -> str | None:
    """The most electronegative element other than Li (Sendek's anion); None for Li alone."""
    others = [s for s in symbols if s != LITHIUM]
    return max(others, key=electronegativity) if others else None


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
    """``{symbol: (is_anion, sphere_radius_Å)}`` for the elements of a composition (extended set).

    Anions: the :func:`lattice_anion`, plus every element that pymatgen's most probable
    charge-balanced oxidation-state guess makes negative *and* that is more electronegative than
    every element it makes positive (so sulfates count O only, Li6PS5Cl counts S and Cl, and a
    doubtful guess such as B(-3) in LiBH4 is ignored). Li is never an anion.

    Sphere radius: the Shannon crystal radius for six-fold coordination of the guessed oxidation
    state (or of the most negative tabulated state for an anion, the highest positive one for a
    cation, when the guess is missing or not tabulated); the covalent radius where pymatgen
    tabulates no ionic radius of that sign.
    """
    symbols = [el.symbol for el in Composition(reduced_formula).elements]
    guess = _oxidation_guess(reduced_formula)
    anion = lattice_anion(symbols)
    anions = set() if anion is None else {anion}
    max_cation_chi = max(
        (electronegativity(s) for s in symbols if guess.get(s, 0) > 0), default=-1.0
    )
    anions |= {
        s
        for s in symbols
        if s != LITHIUM and guess.get(s, 0) < 0 and electronegativity(s) > max_cation_chi
    }
    model = {}
    for symbol in symbols:
        is_anion = symbol in anions
        radius = _shannon_radius(symbol, guess.get(symbol), anion=is_anion)
        model[symbol] = (is_anion, radius if radius is not None else covalent_radius(symbol))
    return model
