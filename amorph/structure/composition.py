"""Stage 1 of the journey: a user's formula, validated, and the number of formula units to
simulate; ionic charges guessed from oxidation states."""

from __future__ import annotations

import math

from pymatgen.core import Composition, Element

from amorph.errors import InputError


def parse_composition(formula: str | Composition, whole: bool = False) -> Composition:
    """Return the integer-amount ``Composition`` of ``formula``; reject anything that is not real
    chemistry. Fractional amounts are scaled to whole numbers, or refused when ``whole`` (what a
    simulation cell is built from must say how many atoms)."""
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
    if whole:
        raise InputError(
            f"formula {formula!r} has fractional amounts: give whole numbers of atoms, e.g. "
            f"{integer_formula}"
        )
    return Composition(integer_formula)


def formula_units_for(composition: Composition, atoms: int) -> int:
    """Whole formula units giving the atom count closest to ``atoms`` (at least one)."""
    per_unit = round(float(composition.num_atoms))
    if atoms < per_unit:
        raise InputError(
            f"{atoms} atoms is fewer than one formula unit of {composition.reduced_formula} "
            f"({per_unit} atoms)"
        )
    return max(1, round(atoms / per_unit))


def guess_charges(formula: str | Composition) -> dict[str, float] | None:
    """Ionic charges from pymatgen's most probable charge-balanced oxidation states, or None.

    ``Composition.oxi_state_guesses`` (first guess) of the reduced formula; None when no guess
    balances the charges, as for intermetallics (LiCuSi2, LiZn, Li3Ge), or when it has no ions
    (an element: all zero).

    Parameters
    ----------
    formula
        Chemical formula or composition, e.g. ``"Li3PS4"`` (gives Li +1, P +5, S -2).
    """
    guesses = parse_composition(formula).reduced_composition.oxi_state_guesses()
    if not guesses or not any(guesses[0].values()):
        return None
    return {element: float(z) for element, z in guesses[0].items()}
