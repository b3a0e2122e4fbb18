import pytest
from pymatgen.core import Composition

from amorph.errors import InputError
from amorph.structure.composition import formula_units_for, parse_composition


def test_parse_keeps_formula_units():
    assert parse_composition("Li2SiO3") == Composition("Li2SiO3")
    assert parse_composition("Li2O2").num_atoms == 4


def test_fractional_formula_becomes_integer_or_is_refused_for_a_cell():
    assert parse_composition("Li0.5O") == Composition("LiO2")
    with pytest.raises(InputError, match=r"'Li0.5O0.25' has fractional amounts: .* e.g. Li2O$"):
        parse_composition("Li0.5O0.25", whole=True)


@pytest.mark.parametrize(
    ("formula", "message"),
    [
        ("Xx2O", "unknown element 'Xx'"),
        ("li2o", "cannot parse formula"),
        ("", "cannot parse formula"),
        ("Li-2O", "cannot parse formula"),
        ("Li2O)", "cannot parse formula"),
    ],
)
def test_bad_formulas(formula, message):
    with pytest.raises(InputError, match=message):
        parse_composition(formula)


def test_formula_units_round_to_whole_units():
    li2sio3 = Composition("Li2SiO3")
    assert formula_units_for(li2sio3, 100) == 17  # 102 atoms, the paper's cell
    assert formula_units_for(li2sio3, 6) == 1


def test_fewer_atoms_than_one_formula_unit():
    with pytest.raises(InputError, match="fewer than one formula unit"):
        formula_units_for(Composition("Li2SiO3"), 5)
