"""Compositional descriptors: Li fraction and composition-weighted elemental averages.

For each property of :data:`amorph.descriptors.elements.ELEMENT_PROPERTIES` two columns are
produced, ``<property>_avg`` over all elements and ``<property>_avg_noLi`` over the non-Li elements,
both weighted by atomic (mole) fraction. Elements for which the data source has no value are left
out and the remaining weights renormalised (pymatgen has no bulk or shear modulus for O, N, F, ...);
the average is NaN when no element has a value.

Synthetic features (our stand-ins; the definitions of the synthetic features of Zheng et al.,
Table 1, were not available to us):

* ``pugh_ratio_avg`` / ``pugh_ratio_avg_noLi``: averaged bulk over averaged shear modulus (Pugh's
  B/G ratio, a ductility indicator).
* ``cohesive_energy_density`` (added by :func:`amorph.descriptors.compute_features`, as it needs the
  structure): averaged cohesive energy over the volume per atom, eV/Å³.
"""

from __future__ import annotations

from pymatgen.core import Composition

from amorph.descriptors.elements import ELEMENT_PROPERTIES, LITHIUM, element_property

COMPOSITION_FEATURES = (
    "Li_fraction",
    *(f"{name}_avg{suffix}" for name in ELEMENT_PROPERTIES for suffix in ("", "_noLi")),
    "pugh_ratio_avg",
    "pugh_ratio_avg_noLi",
)


def _weighted_average(name: str, fractions: dict[str, float]) -> float:
    known = {s: element_property(name, s) for s in fractions}
    weights = {s: fractions[s] for s, value in known.items() if value is not None}
    total = sum(weights.values())
    if not total:
        return float("nan")
    return sum(w * known[s] for s, w in weights.items()) / total


def composition_features(composition: Composition | str) -> dict[str, float]:
    """Li fraction, the elemental averages with and without Li, and the Pugh ratios."""
    composition = Composition(composition)
    fractions = {el.symbol: composition.get_atomic_fraction(el) for el in composition.elements}
    without_li = {s: x for s, x in fractions.items() if s != LITHIUM}
    features = {"Li_fraction": fractions.get(LITHIUM, 0.0)}
    for suffix, subset in (("", fractions), ("_noLi", without_li)):
        for name in ELEMENT_PROPERTIES:
            features[f"{name}_avg{suffix}"] = _weighted_average(name, subset)
        shear = features[f"shear_modulus_avg{suffix}"]
        features[f"pugh_ratio_avg{suffix}"] = (
            features[f"bulk_modulus_avg{suffix}"] / shear if shear else float("nan")
        )
    return {name: features[name] for name in COMPOSITION_FEATURES}
