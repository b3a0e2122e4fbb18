"""Descriptors on hand-built lattices whose values follow from geometry, and the feature table."""

from __future__ import annotations

import csv
import json
import math
import time

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from amorph.cli import main
from amorph.constants import K_B_EV as K_B
from amorph.descriptors import FEATURE_NAMES, compute_features, frame_indices, trajectory_features
from amorph.descriptors.compositional import composition_features
from amorph.descriptors.elements import cohesive_energies, element_property, ionic_model
from amorph.errors import InputError
from amorph.trajectory import Trajectory

CHI_LI, CHI_CL = 0.98, 3.16  # Pauling electronegativities
R_LI, R_CL = 0.90, 1.67  # Shannon crystal radii (CN 6) of Li+ and Cl-


FCC_SITES = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])


def rock_salt(a: float, cation: str = "Li", anion: str = "Cl") -> Structure:
    """Conventional 8-atom rock-salt cell: cations on fcc sites, anions shifted by a/2."""
    coords = np.vstack([FCC_SITES, (FCC_SITES + [0.5, 0, 0]) % 1])
    return Structure(Lattice.cubic(a), [cation] * 4 + [anion] * 4, coords)


def test_ionic_model_of_rock_salt_licl():
    assert ionic_model("LiCl") == {"Li": (False, R_LI), "Cl": (True, R_CL)}


def test_rock_salt_licl_matches_hand_counts():
    # a = 5.4 Å: around a Li, 6 Cl at a/2 = 2.70 Å and 12 Li at a/√2 = 3.82 Å lie within 4 Å, the
    # next shell (8 Cl at 4.68 Å) does not; each Cl sees 12 Cl at 3.82 Å and the next Cl at 5.4 Å.
    a = 5.4
    f = compute_features(rock_salt(a))
    assert f["AAV"] == pytest.approx(a**3 / 8)
    assert f["VPA"] == pytest.approx(a**3 / 4)
    assert (f["LNC"], f["SDLC"], f["LLB"], f["SNC"], f["AFC"]) == (18, 0, 12, 12, 12)
    assert f["RNC"] == pytest.approx(18 / 12)
    gap = CHI_CL - CHI_LI
    assert f["LBI"] == pytest.approx(6 * gap / 18)
    assert f["SDLI"] == pytest.approx(gap * math.sqrt(1 / 3 * 2 / 3))
    assert f["SBI"] == 0 and math.isnan(f["RBI"])  # Cl-Cl bonds only: ionicity 0
    assert f["ENS"] == pytest.approx(CHI_CL)
    assert f["AASD"] == pytest.approx(a / math.sqrt(2))
    assert f["LLSD"] == pytest.approx(a / math.sqrt(2))
    assert f["LASD"] == pytest.approx(a / 2)
    assert f["density"] == pytest.approx(4 * (6.941 + 35.453) * 1.66054 / a**3, rel=1e-4)
    assert f["Li_fraction"] == 0.5
    # spheres do not touch at this a, so the union volume is the plain sum
    sphere = 4 / 3 * math.pi
    assert f["PF"] == pytest.approx(4 * sphere * (R_LI**3 + R_CL**3) / a**3, rel=0.02)
    assert f["SPF"] == pytest.approx(4 * sphere * R_CL**3 / a**3, rel=0.02)
    # the Li-Li hop along a face diagonal passes two Cl at a/(2√2) from its axis; a straight line
    # along a cube edge through the centre of a square of Cl rows is just as wide
    width = a / (2 * math.sqrt(2)) - R_CL
    assert f["SLPW"] == pytest.approx(width)
    assert f["SLPE"] == pytest.approx(CHI_CL)
    assert f["SLPW_pp"] == pytest.approx(width, abs=0.01)


def test_neighbour_cutoff_is_four_angstrom():
    # a = 6 Å puts the Li-Li shell at 4.24 Å, outside the cutoff: each Li keeps its 6 Cl only
    f = compute_features(rock_salt(6.0))
    assert (f["LNC"], f["LLB"], f["SNC"]) == (6, 0, 0)
    assert f["LBI"] == pytest.approx(CHI_CL - CHI_LI)
    assert f["SDLI"] == pytest.approx(0)
    assert math.isnan(f["SBI"])  # no sublattice bonds at all


def test_overlapping_spheres_are_counted_once():
    # a = 4 Å: Li and Cl spheres (0.90 + 1.67 Å) overlap across the 2 Å bond
    a = 4.0
    f = compute_features(rock_salt(a))
    plain_sum = 4 * 4 / 3 * math.pi * (R_LI**3 + R_CL**3) / a**3
    assert f["PF"] < plain_sum - 0.05
    assert 0 < f["SPF"] < f["PF"] <= 1
    assert f["SLPW"] == 0  # clipped: Cl spheres block the hop
    assert f["SLPW_pp"] < 0  # not clipped: how far the best straight line cuts into a sphere


def test_missing_li_or_anion_gives_nan_not_an_error():
    no_li = compute_features(rock_salt(5.64, "Na", "Cl"))
    for name in ("LNC", "SDLC", "LLB", "LBI", "SDLI", "LASD", "LLSD", "SLPW", "SLPE", "RNC", "RBI"):
        assert math.isnan(no_li[name]), name
    assert no_li["AFC"] == 12 and no_li["Li_fraction"] == 0
    lithium = compute_features(
        Structure(Lattice.cubic(3.51), ["Li", "Li"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    )
    for name in (
        "AFC",
        "AASD",
        "LASD",
        "VPA",
        "SNC",
        "SBI",
        "ENS",
        "SLPW_pp",
        "electronegativity_avg_noLi",
    ):
        assert math.isnan(lithium[name]), name
    assert lithium["SPF"] == 0
    assert lithium["LLSD"] == pytest.approx(3.51 * math.sqrt(3) / 2)
    assert set(lithium) == set(FEATURE_NAMES)


def test_disordered_structure_is_rejected():
    structure = Structure(Lattice.cubic(4), [{"Li": 0.5, "Na": 0.5}], [[0, 0, 0]])
    with pytest.raises(InputError, match="disordered"):
        compute_features(structure)


def test_anion_rule_follows_oxidation_states():
    def anions(formula: str) -> set[str]:
        return {symbol for symbol, (is_anion, _) in ionic_model(formula).items() if is_anion}

    assert anions("Li2SO4") == {"O"}  # S(+6) is a cation
    assert anions("Li6PS5Cl") == {"S", "Cl"}
    assert anions("LiBH4") == {"H"}  # B(-3) guessed, but H is the more electronegative
    assert anions("Li") == set()
    assert (
        ionic_model("Li2SO4")["S"][1] < ionic_model("Li2S")["S"][1]
    )  # S6+ is far smaller than S2-


def test_composition_averages_with_and_without_li():
    f = composition_features("Li3PO4")
    fractions = {"Li": 3 / 8, "P": 1 / 8, "O": 4 / 8}
    for name in ("electronegativity", "mass", "atomic_radius", "cohesive_energy"):
        values = {s: element_property(name, s) for s in fractions}
        expected = sum(fractions[s] * values[s] for s in fractions)
        expected_no_li = (fractions["P"] * values["P"] + fractions["O"] * values["O"]) / (5 / 8)
        assert f[f"{name}_avg"] == pytest.approx(expected), name
        assert f[f"{name}_avg_noLi"] == pytest.approx(expected_no_li), name
    assert f["electronegativity_diff_Li_avg_noLi"] == pytest.approx(
        (1 * (2.19 - 0.98) + 4 * (3.44 - 0.98)) / 5
    )
    assert cohesive_energies()["Li"] == 1.63  # Kittel, Table 1 of ch. 3
    assert f["Li_fraction"] == pytest.approx(3 / 8)


def test_averages_skip_elements_without_data():
    f = composition_features("LiCl")
    assert element_property("shear_modulus", "Cl") is None  # the premise: pymatgen has no value
    assert f["shear_modulus_avg"] == pytest.approx(element_property("shear_modulus", "Li"))
    assert math.isnan(f["shear_modulus_avg_noLi"]) and math.isnan(f["pugh_ratio_avg_noLi"])


def _licl_trajectory(scales: list[float]) -> Trajectory:
    base = rock_salt(5.4)
    return Trajectory(
        numbers=np.array(base.atomic_numbers),
        positions=np.array([base.cart_coords * s for s in scales]),
        cells=np.array([base.lattice.matrix * s for s in scales]),
        time_fs=np.arange(len(scales), dtype=float),
    )


def test_trajectory_features_average_the_frames():
    scales = [1.0, 1.1, 1.2]
    averaged = trajectory_features(_licl_trajectory(scales), frames=2)  # first and last frame
    assert averaged["AAV"] == pytest.approx(np.mean([(5.4 * s) ** 3 / 8 for s in (1.0, 1.2)]))
    assert averaged["LNC"] == pytest.approx(
        (18 + 6) / 2
    )  # at 1.2 a the Li-Li shell leaves the cutoff
    assert frame_indices(10, 3).tolist() == [0, 4, 9]
    assert frame_indices(2, 5).tolist() == [0, 1]


def test_hundred_atom_cell_featurises_quickly():
    rng = np.random.default_rng(0)
    lattice = Lattice.cubic(10.0)
    species = ["Li"] * 36 + ["P"] * 12 + ["O"] * 48
    coords: list[np.ndarray] = []
    while len(coords) < len(species):
        trial = rng.random(3)
        if not coords or lattice.get_all_distances(np.array(coords), [trial]).min() > 1.3:
            coords.append(trial)
    structure = Structure(lattice, species, coords)
    compute_features(structure)  # warm the element and oxidation-state caches
    start = time.perf_counter()
    features = compute_features(structure)
    assert time.perf_counter() - start < 1.0
    assert all(np.isfinite(features[name]) for name in ("LNC", "AFC", "PF", "SLPW", "SLPW_pp"))


def _store_results(outputs, stages) -> None:
    """``stages`` as one composition's results in the embedded store under ``outputs``."""
    from results_factory import add_composition

    from amorph.results.store import open_store

    add_composition(open_store(None, outputs), stages, outputs / "jobs")


def _read_csv(path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_features_command_reads_the_store_and_structure_files(tmp_path):
    from results_factory import stage_doc

    outputs = tmp_path / "outputs"
    licl = rock_salt(5.4)
    trajectory = tmp_path / "licl.npz"
    _licl_trajectory([1.0, 1.2]).save(trajectory)
    _store_results(outputs, [
        stage_doc(licl, 2000.0, converged=False),
        stage_doc(licl, 1500.0, trajectory=trajectory),
        stage_doc(licl, 1000.0, diffusivity={"Li": (2.5e-5, 1e-6)}),
    ])  # fmt: skip
    cif = tmp_path / "licl.cif"
    licl.to(filename=str(cif))
    out = tmp_path / "features.csv"

    argv = ["--outputs", str(outputs), "--temperature", "800", "--frames", "2", "-o", str(out)]
    assert main(["features", "--all", str(cif), str(trajectory), *argv]) == 0

    rows = _read_csv(out)
    assert list(rows[0])[:4] == ["formula", "temperature", "D_cm2_s", "AAV"]
    assert set(rows[0]) == {"formula", "temperature", "D_cm2_s", *FEATURE_NAMES}
    assert [(r["formula"], r["temperature"], r["D_cm2_s"]) for r in rows] == [
        ("LiCl", "1500", ""),  # no diffusivity: D left empty; the unconverged 2000 K is skipped
        ("LiCl", "1000", "2.5e-05"),
        ("LiCl", "800", ""),
        ("LiCl", "800", ""),  # the bare trajectory
    ]
    assert float(rows[0]["LNC"]) == pytest.approx(12)  # mean of 18 and 6 over the two frames
    assert float(rows[1]["LNC"]) == 18  # no trajectory: the stored structure
    assert rows[2]["RBI"] == ""  # NaN is an empty cell
    assert float(rows[3]["LNC"]) == pytest.approx(12)


def test_features_command_reports_bad_input_in_one_line(tmp_path, capsys):
    assert main(["features", str(tmp_path / "missing.cif")]) == 1
    (tmp_path / "garbage.cif").write_text("not\na cif\n")
    assert main(["features", str(tmp_path / "garbage.cif")]) == 1
    assert main(["features", "--outputs", str(tmp_path / "nothing")]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3
    assert all(line.startswith("amorph: error: ") for line in lines)
    assert "missing.cif: no such file" in lines[0]
    assert "garbage.cif: not a readable structure file" in lines[1]
    assert "no results in" in lines[2]
    assert not (tmp_path / "nothing").exists()


def test_features_then_train_chain(tmp_path, capsys):
    from results_factory import stage_doc

    stages = []
    for i, a in enumerate(np.linspace(5.2, 6.2, 12)):
        temperature = 1000.0 + 250 * (i % 4)
        d = math.exp(-0.3 / (K_B * temperature) + 0.5 * a - 8)
        stages.append(stage_doc(rock_salt(a), temperature, diffusivity={"Li": (d, d / 20)}))
    outputs = tmp_path / "outputs"
    _store_results(outputs, stages)
    table = tmp_path / "features.csv"
    assert main(["features", "--outputs", str(outputs), "-o", str(table)]) == 0
    capsys.readouterr()
    assert main(["train", str(table), "--models", "rf,sisso", "--max-terms", "2", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert "xgb" not in metrics and math.isfinite(metrics["rf"]["test_rmse"])
    assert (
        metrics["sisso"]["2"]["rmse_train"] < 0.05
    )  # ln D is linear in 1/kT and in a = (8 AAV)^(1/3)
