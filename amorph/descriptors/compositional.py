"""Compositional descriptors of the published feature table (Zheng et al. 2024, Table 1).

Every average is a plain atomic-fraction average of an element property
(:func:`amorph.elements.element_property`): over all atoms ("with Li") or over the
non-Li atoms, weighted by their fractions among the non-Li atoms ("without Li"). An element without
a value makes the average NaN; nothing is renormalised away. Column names are the published ones,
spelling included (``wiout``, ``Echo``); ``Li_percentage`` is the Li atomic fraction (0 to 1), as
published.

Synthetic features (Table 1 of the paper), each with and without Li, from the averages of the same
atoms: ``BR5_M`` = sqrt(B·R⁵/m), ``GR5_M`` = sqrt(G·R⁵/m), ``ER2_m`` = sqrt(Ecoh·R²/m), with the
bulk and shear moduli B, G in GPa, the cohesive energy Ecoh in eV/atom, the atomic radius R in Å and
the mass m in amu. ``ratio_r_without_Li_with`` = R(without Li)/R(with Li) and
``avg_diff_of_X_Li_rest`` = X(without Li) - X(with Li) for the electronegativity X.
"""

from __future__ import annotations

import math

from pymatgen.core import Composition

from amorph.elements import ELEMENT_UNITS, LITHIUM, element_property

AVERAGES = {
    "B": ("avg_B_with_Li", "avg_B_wiout_Li"),
    "G": ("avg_G_with_Li", "avg_G_wiout_Li"),
    "Ecoh": ("avg_Ecoh_with_Li", "avg_Echo_wiout_Li"),
    "R": ("atomic_radius_avg", "atomic_radius_avg_exclude_Li"),
    "m": ("avg_m_with_Li", "avg_m_wiout_Li"),
    "X": ("avg_X_with_Li", "avg_X_wiout_Li"),
}
"""Element property → its (with Li, without Li) average columns."""
SYNTHETIC = {"BR5_M": ("B", 5), "GR5_M": ("G", 5), "ER2_m": ("Ecoh", 2)}
"""Synthetic feature → (property P, power k of R) in sqrt(P·R^k/m)."""
SUFFIXES = ("_with_Li", "_without_Li")

COMPOSITION_UNITS = {
    "Li_percentage": "",
    **{column: ELEMENT_UNITS[p] for p in ("B", "G", "Ecoh") for column in AVERAGES[p]},
    **{
        name + suffix: f"sqrt({ELEMENT_UNITS[p]}·Å^{k}/amu)"
        for name, (p, k) in SYNTHETIC.items()
        for suffix in SUFFIXES
    },
    **dict.fromkeys(AVERAGES["R"], "Å"),
    "ratio_r_without_Li_with": "",
    **dict.fromkeys(AVERAGES["m"], "amu"),
    **dict.fromkeys(AVERAGES["X"], "Pauling"),
    "avg_diff_of_X_Li_rest": "Pauling",
}
"""Column → unit, in the published column order."""
COMPOSITION_FEATURES = tuple(COMPOSITION_UNITS)


def _average(name: str, fractions: dict[str, float]) -> float:
    """``Σ x·value / Σ x`` over ``fractions``; NaN if empty or an element has no value."""
    values = [element_property(name, symbol) for symbol in fractions]
    if not fractions or None in values:
        return math.nan
    return sum(x * v for x, v in zip(fractions.values(), values, strict=True)) / sum(
        fractions.values()
    )


def composition_features(composition: Composition | str) -> dict[str, float]:
    """The compositional columns of the module docstring, keyed by :data:`COMPOSITION_FEATURES`."""
    composition = Composition(composition)
    fractions = {el.symbol: composition.get_atomic_fraction(el) for el in composition.elements}
    without_li = {s: x for s, x in fractions.items() if s != LITHIUM}
    features = {"Li_percentage": fractions.get(LITHIUM, 0.0)}
    for index, subset in enumerate((fractions, without_li)):
        mean = {name: _average(name, subset) for name in AVERAGES}
        for name, columns in AVERAGES.items():
            features[columns[index]] = mean[name]
        for name, (prop, power) in SYNTHETIC.items():
            features[name + SUFFIXES[index]] = math.sqrt(
                mean[prop] * mean["R"] ** power / mean["m"]
            )
    radius, chi = AVERAGES["R"], AVERAGES["X"]
    features["ratio_r_without_Li_with"] = features[radius[1]] / features[radius[0]]
    features["avg_diff_of_X_Li_rest"] = features[chi[1]] - features[chi[0]]
    return {name: features[name] for name in COMPOSITION_FEATURES}
