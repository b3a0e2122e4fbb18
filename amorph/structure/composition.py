"""Stage 1 of the journey: a user's formula, validated, and the number of formula units to simulate."""

from __future__ import annotations

import math

from pymatgen.core import Composition, Element

from amorph.errors import InputError


def parse_composition(formula: str | Composition) -> Composition:
    """Return the integer-amount ``Composition`` of ``formula``; reject anything that is not real chemistry."""
    if isinstance(formula, Composition):
        composition = formula
    else:
        text = str(formula).strip()
        try:
            composition = Composition(text)
        except (ValueError, KeyError) as exc:
            raise InputError(f"cannot parse formula {text!r}: {exc}") from None
    unknown = [getattr(sp, "symbol", str(sp)) for sp in composition if not isinstance(sp, Element)]
    if unknown:
        raise InputError(f"unknown element {unknown[0]!r} in formula {formula!r}")
    if composition.num_atoms <= 0:
        raise InputError(f"formula {formula!r} contains no atoms")
    if all(math.isclose(amount, round(amount)) for amount in composition.values()):
        return composition
    integer_formula, _ = composition.get_integer_formula_and_factor(max_denominator=20)
    return Composition(integer_formula)


def formula_units_for(composition: Composition, atoms: int) -> int:
    """Whole formula units giving the atom count closest to ``atoms`` (at least one)."""
    per_unit = int(round(composition.num_atoms))
    if atoms < per_unit:
        raise InputError(
            f"{atoms} atoms is fewer than one formula unit of {composition.reduced_formula} ({per_unit} atoms)"
        )
    return max(1, round(atoms / per_unit))
