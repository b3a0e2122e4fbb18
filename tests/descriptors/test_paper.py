"""The published feature table's definitions (Zheng et al. 2024): hand-computed values."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from builders import SHARED, antifluorite, random_cell
from pymatgen.core import Lattice, Structure

from amorph.descriptors import FEATURE_NAMES, compute_features
from amorph.descriptors.compositional import composition_features
from amorph.elements import element_property, fallback_elements, paper_elements

# B, G (GPa), Ecoh (eV/atom) as published (paper_elements.json); R (Å, Slater), m (amu) and
# Pauling X from pymatgen.
ELEMENTS = {
    "Li": (14, 4, 1.606591, 1.45, 6.941, 0.98),
    "O": (6, 2, 3.414516, 0.60, 15.9994, 3.44),
    "Cu": (145, 51, 3.498427, 1.35, 63.546, 1.90),
    "Si": (83, 61, 4.596841, 1.10, 28.0855, 1.90),
    "P": (21, 13, 3.487954, 1.00, 30.973762, 2.19),
    "S": (1, 1, 3.205182, 1.00, 32.065, 2.58),
}
COVALENT = {"Li": 1.28, "O": 0.66, "Cu": 1.32, "Si": 1.11, "P": 1.07, "S": 1.05}  # Cordero, Å
PUBLISHED_COLUMNS = [
    "AAV",
    "LBI",
    "SDLI",
    "SBI",
    "ENS",
    "RBI",
    "AFC",
    "AASD",
    "VPA",
    "LASD",
    "LLSD",
    "LNC",
    "SDLC",
    "LLB",
    "SNC",
    "RNC",
    "PF",
    "SPF",
    "SLPW",
    "SLPW_pp",
    "SLPE",
    "Li_percentage",
    "avg_B_with_Li",
    "avg_B_wiout_Li",
    "avg_G_with_Li",
    "avg_G_wiout_Li",
    "avg_Ecoh_with_Li",
    "avg_Echo_wiout_Li",
    "BR5_M_with_Li",
    "BR5_M_without_Li",
    "GR5_M_with_Li",
    "GR5_M_without_Li",
    "ER2_m_with_Li",
    "ER2_m_without_Li",
    "atomic_radius_avg",
    "atomic_radius_avg_exclude_Li",
    "ratio_r_without_Li_with",
    "avg_m_with_Li",
    "avg_m_wiout_Li",
    "avg_X_with_Li",
    "avg_X_wiout_Li",
    "avg_diff_of_X_Li_rest",
]


def test_columns_are_the_published_ones_in_order():
    assert tuple(PUBLISHED_COLUMNS) == FEATURE_NAMES


def test_li2o_by_hand():
    f = composition_features("Li2O")
    b, g, e = (2 * 14 + 6) / 3, (2 * 4 + 2) / 3, (2 * 1.606591 + 3.414516) / 3
    r, m, x = (2 * 1.45 + 0.60) / 3, (2 * 6.941 + 15.9994) / 3, (2 * 0.98 + 3.44) / 3
    expected = {
        "Li_percentage": 2 / 3,
        "avg_B_with_Li": b, "avg_B_wiout_Li": 6, "avg_G_with_Li": g, "avg_G_wiout_Li": 2,
        "avg_Ecoh_with_Li": e, "avg_Echo_wiout_Li": 3.414516,
        "BR5_M_with_Li": math.sqrt(b * r**5 / m),
        "BR5_M_without_Li": math.sqrt(6 * 0.6**5 / 15.9994),
        "GR5_M_with_Li": math.sqrt(g * r**5 / m),
        "GR5_M_without_Li": math.sqrt(2 * 0.6**5 / 15.9994),
        "ER2_m_with_Li": math.sqrt(e * r**2 / m),
        "ER2_m_without_Li": math.sqrt(3.414516 * 0.6**2 / 15.9994),
        "atomic_radius_avg": r, "atomic_radius_avg_exclude_Li": 0.60,
        "ratio_r_without_Li_with": 0.60 / r,
        "avg_m_with_Li": m, "avg_m_wiout_Li": 15.9994,
        "avg_X_with_Li": x, "avg_X_wiout_Li": 3.44, "avg_diff_of_X_Li_rest": 3.44 - x,
    }  # fmt: skip
    assert f == pytest.approx(expected, rel=1e-9)
    assert f["BR5_M_with_Li"] == pytest.approx(1.5682, abs=1e-4)  # sqrt(11.33·1.1667⁵/9.960)


def _by_hand(counts: dict[str, int]) -> dict[str, float]:
    """The compositional columns from :data:`ELEMENTS`, as the paper's Table 1 defines them."""

    def average(subset: dict[str, int]) -> list[float]:
        total = sum(subset.values())
        return [sum(n * ELEMENTS[s][k] for s, n in subset.items()) / total for k in range(6)]

    values = {"Li_percentage": counts.get("Li", 0) / sum(counts.values())}
    rest = {s: n for s, n in counts.items() if s != "Li"}
    for suffix, short, subset in (("with", "with", counts), ("without", "wiout", rest)):
        b, g, e, r, m, x = average(subset)
        values |= {
            f"avg_B_{short}_Li": b,
            f"avg_G_{short}_Li": g,
            f"avg_{'Ecoh' if suffix == 'with' else 'Echo'}_{short}_Li": e,
            f"BR5_M_{suffix}_Li": math.sqrt(b * r**5 / m),
            f"GR5_M_{suffix}_Li": math.sqrt(g * r**5 / m),
            f"ER2_m_{suffix}_Li": math.sqrt(e * r**2 / m),
            f"avg_m_{short}_Li": m,
            f"avg_X_{short}_Li": x,
            "atomic_radius_avg" + ("" if suffix == "with" else "_exclude_Li"): r,
        }
    values["ratio_r_without_Li_with"] = (
        values["atomic_radius_avg_exclude_Li"] / values["atomic_radius_avg"]
    )
    values["avg_diff_of_X_Li_rest"] = values["avg_X_wiout_Li"] - values["avg_X_with_Li"]
    return values


@pytest.mark.parametrize(
    ("formula", "counts"),
    [("LiCuSi2", {"Li": 1, "Cu": 1, "Si": 2}), ("Li3PS4", {"Li": 3, "P": 1, "S": 4})],
)
def test_every_compositional_feature_by_hand(formula, counts):
    f = composition_features(formula)
    expected = _by_hand(counts)
    assert set(f) == set(expected)
    assert f == pytest.approx(expected, rel=1e-9)


def test_li3ps4_spot_values():
    f = composition_features("Li3PS4")
    assert f["avg_B_wiout_Li"] == pytest.approx((21 + 4 * 1) / 5)
    assert f["avg_G_with_Li"] == pytest.approx((3 * 4 + 13 + 4) / 8)
    assert f["avg_diff_of_X_Li_rest"] == pytest.approx(
        (2.19 + 4 * 2.58) / 5 - (3 * 0.98 + 2.19 + 4 * 2.58) / 8
    )


def test_elements_outside_the_published_data_fall_back_and_are_named():
    assert len(paper_elements()["B"]) == 60
    assert fallback_elements(["Li", "O", "La", "H"]) == ["H", "La"]
    f = composition_features("LiLaO2")  # La: pymatgen 28/14 GPa, Kittel 4.47 eV/atom
    assert f["avg_B_with_Li"] == pytest.approx((14 + 28 + 2 * 6) / 4)
    assert f["avg_G_wiout_Li"] == pytest.approx((14 + 2 * 2) / 3)
    assert f["avg_Ecoh_with_Li"] == pytest.approx((1.606591 + 4.47 + 2 * 3.414516) / 4)
    # no source has H's moduli: the averages are NaN, not renormalised over Li alone
    lih = composition_features("LiH")
    assert element_property("B", "H") is None
    assert math.isnan(lih["avg_B_with_Li"]) and math.isnan(lih["BR5_M_with_Li"])
    assert lih["avg_m_with_Li"] == pytest.approx((6.941 + 1.00794) / 2)


def test_packaged_elemental_data_are_the_shared_ones():
    shared = SHARED / "data" / "paper_elements" / "elemental_properties.json"
    if not shared.is_file():
        pytest.skip(f"{shared} is absent")
    from importlib.resources import files

    packaged = json.loads((files("amorph") / "data" / "paper_elements.json").read_text())
    assert packaged == json.loads(shared.read_text())


def test_snc_and_sbi_count_li_neighbours_of_the_sublattice():
    # a = 4.62 Å: around an O, 8 Li at a√3/4 = 2.00 Å, 12 O at a/√2 = 3.27 Å and 24 Li at
    # a√11/4 = 3.83 Å lie within 4 Å (the next O at 4.62 Å does not); around a Li, 4 O at 2.00 Å,
    # 6 Li at 2.31 Å, 12 Li at 3.27 Å and 12 O at 3.83 Å (the next 8 Li at 4.001 Å do not)
    f = compute_features(antifluorite(4.62))
    assert (f["SNC"], f["LNC"], f["LLB"]) == (44, 34, 18)
    assert f["SBI"] == pytest.approx(32 * (3.44 - 0.98) / 44)
    assert f["LBI"] == pytest.approx(16 * (3.44 - 0.98) / 34)
    assert f["RNC"] == pytest.approx(34 / 44)
    assert f["RBI"] == pytest.approx(f["LBI"] / f["SBI"])


def random_cube(counts: dict[str, int], volume: float, seed: int) -> Structure:
    """``counts`` atoms at random positions in a cube of ``volume`` (Å³), none closer than 1.2 Å."""
    species = [s for s, n in counts.items() for _ in range(n)]
    return random_cell(Lattice.cubic(volume ** (1 / 3)), species, 1.2, seed)


def test_packing_fraction_is_the_covalent_sphere_sum_over_the_volume():
    counts = {"Li": 18, "P": 6, "S": 24}
    volume = 48 * 20.0
    sphere = 4 / 3 * math.pi
    every = sphere * sum(n * COVALENT[s] ** 3 for s, n in counts.items()) / volume
    sublattice = sphere * (6 * COVALENT["P"] ** 3 + 24 * COVALENT["S"] ** 3) / volume
    for seed in (1, 2):  # positions do not matter, overlaps count twice
        f = compute_features(random_cube(counts, volume, seed))
        assert f["PF"] == pytest.approx(every, rel=1e-12)
        assert f["SPF"] == pytest.approx(sublattice, rel=1e-12)


@pytest.mark.parametrize(
    ("counts", "volume_per_atom"),
    [({"Li": 18, "P": 6, "S": 24}, 20.0), ({"Li": 16, "Cu": 16, "Si": 32}, 14.0),
     ({"Li": 40, "O": 20}, 9.5)],
)  # fmt: skip
def test_point_to_point_width_exceeds_slpw_by_a_covalent_radius(counts, volume_per_atom):
    structure = random_cube(counts, volume_per_atom * sum(counts.values()), seed=3)
    f = compute_features(structure)
    radii = [COVALENT[s] for s in counts]
    assert min(radii) - 1e-9 <= f["SLPW_pp"] - f["SLPW"] <= max(radii) + 1e-9
    assert f["SLPE"] > 0 and np.isfinite(f["SLPW"])
