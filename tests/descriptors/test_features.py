"""Descriptors on hand-built lattices whose values follow from geometry, and the feature table."""

from __future__ import annotations

import csv
import json
import math
import time

import numpy as np
import pytest
from builders import random_cell
from pymatgen.core import Lattice, Structure

from amorph.cli import main
from amorph.constants import K_B_EV as K_B
from amorph.descriptors import (
    EXTENDED_FEATURE_NAMES,
    FEATURE_NAMES,
    compute_features,
    frame_indices,
    trajectory_features,
)
from amorph.elements import ionic_model, lattice_anion
from amorph.errors import InputError
from amorph.trajectory import Trajectory

CHI_LI, CHI_CL = 0.98, 3.16  # Pauling electronegativities
R_LI, R_CL = 0.90, 1.67  # Shannon crystal radii (CN 6) of Li+ and Cl-
COV_LI, COV_CL = 1.28, 1.02  # Cordero covalent radii


FCC_SITES = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])


def rock_salt(a: float, cation: str = "Li", anion: str = "Cl") -> Structure:
    """Conventional 8-atom rock-salt cell: cations on fcc sites, anions shifted by a/2."""
    coords = np.vstack([FCC_SITES, (FCC_SITES + np.array([0.5, 0, 0])) % 1])
    return Structure(Lattice.cubic(a), [cation] * 4 + [anion] * 4, coords)


def test_ionic_model_of_rock_salt_licl():
    assert ionic_model("LiCl") == {"Li": (False, R_LI), "Cl": (True, R_CL)}


def test_rock_salt_licl_matches_hand_counts():
    # a = 5.4 Å: around a Li, 6 Cl at a/2 = 2.70 Å and 12 Li at a/√2 = 3.82 Å lie within 4 Å, the
    # next shell (8 Cl at 4.68 Å) does not; each Cl sees 6 Li, 12 Cl at 3.82 Å and the next Cl at
    # 5.4 Å.
    a = 5.4
    f = compute_features(rock_salt(a))
    assert f["AAV"] == pytest.approx(a**3 / 8)
    assert f["VPA"] == pytest.approx(a**3 / 4)
    assert (f["LNC"], f["SDLC"], f["LLB"], f["SNC"], f["AFC"]) == (18, 0, 12, 18, 12)
    assert f["RNC"] == 1
    gap = CHI_CL - CHI_LI
    assert f["LBI"] == pytest.approx(6 * gap / 18)
    assert f["SDLI"] == pytest.approx(gap * math.sqrt(1 / 3 * 2 / 3))
    # a Cl's bonds: 6 to Li (ionicity gap), 12 to Cl (0); Li neighbours count, so SBI is not 0
    assert f["SBI"] == pytest.approx(6 * gap / 18) and f["RBI"] == pytest.approx(1)
    assert f["ENS"] == pytest.approx(CHI_CL)
    assert f["AASD"] == pytest.approx(a / math.sqrt(2))
    assert f["LLSD"] == pytest.approx(a / math.sqrt(2))
    assert f["LASD"] == pytest.approx(a / 2)
    assert f["Li_percentage"] == 0.5
    sphere = 4 / 3 * math.pi
    assert f["PF"] == pytest.approx(4 * sphere * (COV_LI**3 + COV_CL**3) / a**3)
    assert f["SPF"] == pytest.approx(4 * sphere * COV_CL**3 / a**3)
    # the Li-Li hop along a face diagonal passes two Cl at a/(2√2) from its axis (the Li beside
    # it are 3.31 Å away, their sphere 1.28 Å): narrowest gap a/(2√2) - r(Cl), to centres a/(2√2)
    assert f["SLPW"] == pytest.approx(a / (2 * math.sqrt(2)) - COV_CL)
    assert f["SLPW_pp"] == pytest.approx(a / (2 * math.sqrt(2)))
    assert f["SLPE"] == pytest.approx(CHI_CL)


def test_neighbour_cutoff_is_four_angstrom():
    # a = 6 Å puts the Li-Li and Cl-Cl shells at 4.24 Å, outside the cutoff: each atom keeps the 6
    # of the other kind at 3 Å
    f = compute_features(rock_salt(6.0))
    assert (f["LNC"], f["LLB"], f["SNC"]) == (6, 0, 6)
    assert f["LBI"] == pytest.approx(CHI_CL - CHI_LI)
    assert f["SBI"] == pytest.approx(CHI_CL - CHI_LI)
    assert f["SDLI"] == pytest.approx(0)


def test_slpw_is_not_clipped():
    # a = 2.8 Å: the Cl beside the hop are a/(2√2) = 0.99 Å from its axis, less than their
    # covalent radius (the Li beside it are 1.71 Å away, 0.43 Å beyond their sphere)
    f = compute_features(rock_salt(2.8))
    assert f["SLPW"] == pytest.approx(2.8 / (2 * math.sqrt(2)) - COV_CL) and f["SLPW"] < 0
    assert f["SLPW_pp"] - f["SLPW"] == pytest.approx(COV_CL)


def test_missing_li_or_anion_gives_nan_not_an_error():
    no_li = compute_features(rock_salt(5.64, "Na", "Cl"))
    for name in ("LNC", "SDLC", "LLB", "LBI", "SDLI", "LASD", "LLSD", "SLPW", "SLPE", "RNC", "RBI"):
        assert math.isnan(no_li[name]), name
    assert no_li["AFC"] == 12 and no_li["Li_percentage"] == 0
    lithium = compute_features(
        Structure(Lattice.cubic(3.51), ["Li", "Li"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    )
    for name in ("AFC", "AASD", "LASD", "VPA", "SNC", "SBI", "ENS", "avg_X_wiout_Li"):
        assert math.isnan(lithium[name]), name
    assert lithium["SPF"] == 0
    assert lithium["LLSD"] == pytest.approx(3.51 * math.sqrt(3) / 2)
    assert set(lithium) == set(FEATURE_NAMES)


def test_extended_set_keeps_amorphs_variants_under_other_names():
    # a = 4 Å: Li and Cl Shannon spheres (0.90 + 1.67 Å) overlap across the 2 Å bond; the union
    # counts the overlap once, the published PF (covalent radii) counts spheres whatever they touch
    a = 4.0
    f = compute_features(rock_salt(a), extended=True)
    assert tuple(f) == (*FEATURE_NAMES, *EXTENDED_FEATURE_NAMES)
    plain_sum = 4 * 4 / 3 * math.pi * (R_LI**3 + R_CL**3) / a**3
    assert f["PF_union"] < plain_sum - 0.05
    assert 0 < f["SPF_union"] < f["PF_union"] <= 1
    assert f["density"] == pytest.approx(4 * (6.941 + 35.453) * 1.66054 / a**3, rel=1e-4)
    assert f["AFC_ionic"] == f["AFC"] and f["VPA_ionic"] == f["VPA"]  # one anion either way
    assert not set(EXTENDED_FEATURE_NAMES) & set(compute_features(rock_salt(a)))


def test_anion_of_the_published_features_is_the_most_electronegative_element():
    # Li6PS5Cl: the published rule takes Cl only, the ionic model S and Cl
    rng = np.random.default_rng(2)
    species = ["Li"] * 6 + ["P"] + ["S"] * 5 + ["Cl"]
    structure = Structure(Lattice.cubic(7.0), species, rng.random((len(species), 3)))
    f = compute_features(structure, extended=True)
    assert lattice_anion(["Li", "P", "S", "Cl"]) == "Cl"
    assert f["VPA"] == pytest.approx(7.0**3)
    assert f["VPA_ionic"] == pytest.approx(7.0**3 / 6)


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


def test_frames_shared_by_processes_give_the_same_average():
    trajectory = _licl_trajectory(list(np.linspace(0.95, 1.25, 120)))
    serial = trajectory_features(trajectory, frames=120)
    parallel = trajectory_features(trajectory, frames=120, workers=2)
    assert parallel == pytest.approx(serial, nan_ok=True)
    assert 6 < serial["LNC"] < 18  # the frames differ, so the average mixes both shells


def test_hundred_atom_cell_featurises_quickly():
    species = ["Li"] * 36 + ["P"] * 12 + ["O"] * 48
    structure = random_cell(Lattice.cubic(10.0), species, 1.3, seed=0)
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
    cif, nacl = tmp_path / "licl.cif", tmp_path / "nacl.cif"
    licl.to(filename=str(cif))
    rock_salt(5.64, "Na", "Cl").to(filename=str(nacl))
    out = tmp_path / "features.csv"

    argv = ["--outputs", str(outputs), "--temperature", "800", "--frames", "2", "-o", str(out)]
    assert main(["features", "--all", str(cif), str(trajectory), str(nacl), *argv]) == 0

    rows = _read_csv(out)
    assert list(rows[0])[:4] == ["formula", "temperature", "D_cm2_s", "AAV"]
    assert set(rows[0]) == {"formula", "temperature", "D_cm2_s", *FEATURE_NAMES}
    assert [(r["formula"], r["temperature"], r["D_cm2_s"]) for r in rows] == [
        ("LiCl", "1500", ""),  # no diffusivity: D left empty; the unconverged 2000 K is skipped
        ("LiCl", "1000", "2.5e-05"),
        ("LiCl", "800", ""),
        ("LiCl", "800", ""),  # the bare trajectory
        ("NaCl", "800", ""),
    ]
    assert float(rows[0]["LNC"]) == pytest.approx(12)  # mean of 18 and 6 over the two frames
    assert float(rows[1]["LNC"]) == 18  # no trajectory: the stored structure
    assert float(rows[3]["LNC"]) == pytest.approx(12)
    assert rows[4]["LNC"] == ""  # NaN (no Li) is an empty cell


def test_features_command_names_elements_outside_the_published_data(tmp_path, caplog):
    cif = tmp_path / "lila.cif"
    rock_salt(5.4, "Li", "La").to(filename=str(cif))
    out = tmp_path / "features.csv"
    assert main(["features", str(cif), "--extended", "-o", str(out)]) == 0
    assert "elemental data for La are not in the published table" in caplog.text
    (row,) = _read_csv(out)
    assert list(row)[-len(EXTENDED_FEATURE_NAMES) :] == list(EXTENDED_FEATURE_NAMES)
    assert float(row["avg_B_with_Li"]) == pytest.approx((14 + 28) / 2)  # La: pymatgen's 28 GPa


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
