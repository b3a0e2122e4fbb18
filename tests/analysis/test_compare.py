"""Comparison with AIMD references: reading tables, errors, D ratios and the pooled RDF R²."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from builders import AIMD_REFERENCE

from amorph.analysis import compare, read_reference
from amorph.analysis.plots import plot_comparison
from amorph.analysis.rdf import resample
from amorph.constants import AMU_A3_TO_G_CM3
from amorph.errors import InputError

MULTI_T = AIMD_REFERENCE / "multi_temperature.csv"
RDF_DIR = AIMD_REFERENCE / "rdf_5000K"
# pooled R² (all pairs concatenated on the 0-10 Å grid) of the paper's M3GNet tables against DFT
PAPER_R2 = {"LiCuSi2": 0.9944, "Li2SiS": 0.9778, "LiSiO": 0.9802, "Li3Ge": 0.9331}
LI2O_MASS_PER_ATOM = (2 * 6.94 + 15.999) / 3  # amu

needs_reference = pytest.mark.skipif(
    not MULTI_T.is_file(), reason=f"shared AIMD reference data not found at {AIMD_REFERENCE}"
)


def stage_from_table(path: Path, reverse_pairs: bool = False) -> dict:
    """A stage dict whose partial RDFs are an RDF table's (pair names reversed if asked)."""
    (table,) = read_reference(path).rdfs
    g = {
        ("-".join(pair.split("-")[::-1]) if reverse_pairs else pair): values.tolist()
        for pair, values in table.g.items()
    }
    return {
        "formula": table.formula,
        "temperature_K": 5000.0,
        "partial_rdf": {"r_A": table.r_A.tolist(), "g": g},
    }


@needs_reference
def test_reads_the_shared_reference_files():
    ref = read_reference([MULTI_T, *sorted(RDF_DIR.glob("*.csv"))])
    assert set(ref.formulas) == {"Li2O", "Li3N", "LiAlO2", "LiZn", *PAPER_R2}
    assert len(ref.points) == 15 and len(ref.rdfs) == 8
    li2o = next(p for p in ref.points if p.formula == "Li2O" and p.temperature_K == 1500)
    assert (li2o.volume_per_atom_A3, li2o.D_cm2_s, li2o.D_sigma_cm2_s) == (
        9.0536,
        {"Li": 2.4613e-4},
        {},
    )
    assert li2o.density_g_cm3 is None
    dft = next(r for r in ref.rdfs if r.label == "DFT" and r.formula == "LiCuSi2")
    assert dft.temperature_K == 5000.0 and list(dft.g) == [
        "Li-Li",
        "Li-Cu",
        "Li-Si",
        "Cu-Cu",
        "Cu-Si",
        "Si-Si",
    ]
    assert dft.r_A[0] == 0.0 and dft.r_A[-1] == pytest.approx(10.0) and len(dft.r_A) == 101
    assert all(g[0] == 0.0 for g in dft.g.values())  # the first bins are empty


@needs_reference
@pytest.mark.parametrize("formula", list(PAPER_R2))
def test_paper_m3gnet_tables_against_dft_give_the_pooled_r2(formula):
    """The paper reports R² = 0.99 for LiCuSi2 (Fig. 6); pooling all pairs gives 0.994."""
    ours = stage_from_table(RDF_DIR / f"M3GNet_RDF_{formula}.csv")
    reference = read_reference(RDF_DIR / f"DFT_RDF_{formula}.csv")
    (t,) = compare([ours], reference, formula).temperatures
    (rdf,) = t.rdf
    assert rdf.label == "DFT" and rdf.missing_pairs == []
    assert rdf.pooled_r2 == pytest.approx(PAPER_R2[formula], abs=1e-4)
    assert rdf.r_range_A == (0.0, pytest.approx(10.0))
    assert min(rdf.r2.values()) <= rdf.pooled_r2 <= max(rdf.r2.values()) + 1e-3
    if formula == "LiCuSi2":
        assert round(rdf.pooled_r2, 2) == 0.99 and all(v > 0.99 for v in rdf.r2.values())
    same = compare([stage_from_table(RDF_DIR / f"DFT_RDF_{formula}.csv")], reference, formula)
    assert same.temperatures[0].rdf[0].pooled_r2 == pytest.approx(1.0)


@needs_reference
def test_pair_order_does_not_matter():
    reference = read_reference(RDF_DIR / "DFT_RDF_LiCuSi2.csv")
    path = RDF_DIR / "M3GNet_RDF_LiCuSi2.csv"
    forward = compare([stage_from_table(path)], reference, "LiCuSi2").temperatures[0].rdf[0]
    stage = stage_from_table(path, reverse_pairs=True)
    assert "Cu-Li" in stage["partial_rdf"]["g"] and "Li-Cu" not in stage["partial_rdf"]["g"]
    backward = compare([stage], reference, "Li2Cu2Si4").temperatures[0].rdf[0]
    assert backward.r2 == forward.r2 and backward.pooled_r2 == forward.pooled_r2
    # the store's RDF document (bin edges, pair list) works as well
    (table,) = read_reference(path).rdfs
    edges = np.append(table.r_A - 0.05, table.r_A[-1] + 0.05)
    doc = {"edges_A": edges.tolist(), "pairs": list(table.g), "g": list(table.g.values())}
    stage = {"formula": "LiCuSi2", "temperature_K": 5000, "rdf": doc}
    from_doc = compare([stage], reference, "LiCuSi2").temperatures[0].rdf[0]
    assert from_doc.pooled_r2 == pytest.approx(forward.pooled_r2, abs=1e-12)


@needs_reference
def test_known_stage_gives_exact_errors_and_ratios(tmp_path):
    reference = read_reference(MULTI_T)
    stage = {
        "formula": "Li4O2",
        "temperature_K": 1500.0,
        "n_atoms": 96,
        "volume_per_atom_A3": 10.0,
        "density_g_cm3": None,  # then computed from the volume per atom
        "diffusivity": {
            "Li": {"D_cm2_s": 4.9226e-4, "D_sigma_cm2_s": 4.9226e-5, "diffusive": True}
        },
    }
    result = compare([stage], reference, "Li2O")
    one, two, three = result.temperatures
    assert [t.temperature_K for t in result.temperatures] == [1500.0, 2000.0, 2500.0]
    assert one.volume_error_pct == pytest.approx(100 * (10.0 - 9.0536) / 9.0536, rel=1e-12)
    assert one.density_error_pct == pytest.approx(100 * (9.0536 / 10.0 - 1), rel=1e-9)
    assert one.reference_density_g_cm3 == pytest.approx(
        LI2O_MASS_PER_ATOM * AMU_A3_TO_G_CM3 / 9.0536, rel=1e-4
    )
    (li,) = one.diffusivity
    assert (li.species, li.diffusive, li.reference_D_sigma_cm2_s) == ("Li", True, None)
    assert li.ratio == pytest.approx(2.0, rel=1e-12)
    assert li.ratio_sigma == pytest.approx(0.2, rel=1e-12)
    assert two.volume_per_atom_A3 is None and "no stage of ours" in two.absent[0]
    assert two.diffusivity[0].ratio is None and three.reference_volume_per_atom_A3 == 10.2091
    # a reference with density and sigma: both uncertainties enter the ratio
    table = tmp_path / "aimd.csv"
    table.write_text(
        "formula,temperature_K,volume_per_atom_A3,density_g_cm3,D_Li_cm2_s,D_Li_sigma_cm2_s\n"
        "Li2O,1500,9.0,1.9,2.5e-4,5e-5\n"
    )
    stage |= {"density_g_cm3": 1.8, "diffusivity": {"Li": {"D_cm2_s": 5e-4, "diffusive": False}}}
    (t,) = compare([stage], read_reference(table), "Li2O").temperatures
    assert t.density_error_pct == pytest.approx(100 * (1.8 - 1.9) / 1.9, rel=1e-12)
    assert t.diffusivity[0].ratio == pytest.approx(2.0)
    assert t.diffusivity[0].ratio_sigma == pytest.approx(2.0 * 0.2, rel=1e-12)  # 0 and 20 %
    assert t.diffusivity[0].diffusive is False
    assert t.absent == []
    text = result.table()
    assert "+10.5" in text and "2.00 ± 0.20" in text and "2000 K: no stage of ours" in text
    assert json.loads(json.dumps(result.as_dict()))["temperatures"][0]["diffusivity"][0][
        "ratio"
    ] == pytest.approx(2.0)


@needs_reference
def test_missing_pieces_are_absent_and_unknown_formula_is_an_error(tmp_path):
    reference = read_reference([MULTI_T, RDF_DIR / "DFT_RDF_LiCuSi2.csv"])
    stages = [
        {"formula": "LiCuSi2", "temperature_K": 1000, "volume_per_atom_A3": 15.0},
        {"formula": "LiCuSi2", "temperature_K": 5000, "volume_per_atom_A3": 17.0},
    ]
    cold, hot = compare(stages, reference, "LiCuSi2").temperatures
    assert cold.reference_volume_per_atom_A3 is None and cold.rdf == []
    assert hot.absent == ["no reference volume or diffusivity", "no partial RDF in our stage"]
    with pytest.raises(InputError, match=r"no reference data for LiF; the reference has Li2O, "):
        compare(stages, reference, "LiF")
    with pytest.raises(InputError, match="the stage at 1000 K is LiCuSi2, not Li2O"):
        compare(stages, reference, "Li2O")
    with pytest.raises(InputError, match="two stages of LiCuSi2 at 5000 K"):
        compare([*stages, stages[1]], reference, "LiCuSi2")


@needs_reference
def test_comparison_plot(tmp_path):
    reference = read_reference([RDF_DIR / "DFT_RDF_LiSiO.csv", RDF_DIR / "M3GNet_RDF_LiSiO.csv"])
    stage = stage_from_table(RDF_DIR / "M3GNet_RDF_LiSiO.csv") | {"volume_per_atom_A3": 12.0}
    result = compare([stage], reference, "LiSiO")
    assert [c.label for c in result.temperatures[0].rdf] == ["DFT", "M3GNet"]
    path = plot_comparison(result, tmp_path / "compare.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_generic_rdf_table_with_temperature_and_formula_columns(tmp_path):
    """A user's table; ours on a 5x finer, noisy grid is rebinned onto the reference grid."""

    def g(r):  # a first peak at 2 Å; histogram values are bin averages (0.1 Å bins)
        sub = np.linspace(-0.05, 0.05, 101)
        return 1 + np.exp(-((np.add.outer(r, sub) - 2.0) ** 2) / 0.05).mean(axis=-1)

    r = np.arange(0, 60) * 0.1 + 0.05
    lines = ["formula,temperature_K,r,O-Li,Li-Li,O-O"]
    for temperature in (3000, 5000):
        lines += [
            f"Li2O,{temperature},{x:.2f},{y:.6f},{y:.6f},{y:.6f}"
            for x, y in zip(r, g(r), strict=True)
        ]
    path = tmp_path / "my_aimd.csv"
    path.write_text("\n".join(lines) + "\n")
    ref = read_reference(path, rdf_temperature_K=1234.0)
    assert [(t.label, t.formula, t.temperature_K) for t in ref.rdfs] == [
        ("my_aimd", "Li2O", 3000.0),
        ("my_aimd", "Li2O", 5000.0),
    ]
    fine = np.arange(0, 300) * 0.02 + 0.01
    clean = {"Li-O": 1 + np.exp(-((fine - 2.0) ** 2) / 0.05)}
    noisy = {"Li-O": clean["Li-O"] + 0.05 * np.random.default_rng(0).standard_normal(fine.size)}
    results = {}
    for name, curves in (("clean", clean), ("noisy", noisy)):
        stage = {
            "formula": "Li2O",
            "temperature_K": 3000,
            "partial_rdf": {"r_A": fine, "g": curves},
        }
        (t, _) = compare([stage], ref, "Li2O").temperatures
        (results[name],) = t.rdf
    rdf = results["noisy"]
    assert rdf.missing_pairs == ["Li-Li", "O-O"] and list(rdf.r2) == ["O-Li"]
    assert rdf.r_range_A == (pytest.approx(0.05), pytest.approx(5.95))
    assert results["clean"].pooled_r2 > 0.99999
    interpolated = np.interp(rdf.r_A, fine, noisy["Li-O"])
    ref_g = rdf.reference_g["O-Li"]
    naive = 1 - np.sum((ref_g - interpolated) ** 2) / np.sum((ref_g - ref_g.mean()) ** 2)
    assert 1 - rdf.pooled_r2 < 0.5 * (1 - naive)  # averaging 5 bins: a fifth of the noise
    assert np.isnan(resample(fine, noisy["Li-O"], np.array([0.0, 6.0]))).all()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file"),
        ("formula,temperature_K\nLi2O,1500\n", "no 'volume_per_atom_A3' column"),
        (
            "formula,temperature_K,volume_per_atom_A3\nLi2O,1500,9.1\nLi2O,2000\n",
            "line 3: 2 values for 3 columns",
        ),
        (
            "formula,temperature_K,volume_per_atom_A3\nLi2O,1500,abc\n",
            "line 2, column 'volume_per_atom_A3': expected a positive number, got 'abc'",
        ),
        (
            "formula,temperature_K,volume_per_atom_A3,D_Li_cm2_s\nLi2O,-5,9.1,1e-5\n",
            "line 2, column 'temperature_K'",
        ),
        (
            "formula,temperature_K,volume_per_atom_A3,pressure\nLi2O,1500,9.1,0\n",
            "unknown column 'pressure'",
        ),
        (
            "formula,temperature_K,volume_per_atom_A3,D_Li_sigma_cm2_s\nLi2O,1500,9.1,1e-6\n",
            "'D_Li_sigma_cm2_s' without D_Li_cm2_s",
        ),
        ("formula,temperature_K,volume_per_atom_A3\nLi2Qz,1500,9.1\n", "line 2: unknown element"),
        (
            "formula,temperature_K,volume_per_atom_A3\nLi2O,1500,9.1\nLi4O2,1500,9.2\n",
            "line 3: a second reference row for Li4O2 at 1500 K",
        ),
        ("temperature,volume\n1,2\n", "neither a reference table"),
        ("r,Li-O\n0.0,0.0\n", "cannot tell the formula"),
        ("formula,r,Li-O\nLi2O,0.0,0\nLi2O,0.0,0.1\n", "line 3: r must increase"),
        ("formula,r,Li-S\nLi2O,0.0,0.0\n", "pair column 'Li-S' has an element not in Li2O"),
        ("formula,r,Li-O\nLi2O,0.1,x\n", "line 2, column 'Li-O': expected a non-negative"),
    ],
)
def test_malformed_files_name_file_and_place(tmp_path, text, message):
    path = tmp_path / "ref.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=str(path)) as info:
        read_reference(path)
    assert message in str(info.value)


def test_missing_file_and_bad_temperature(tmp_path):
    with pytest.raises(InputError, match="no such reference file"):
        read_reference(tmp_path / "nothing.csv")
    with pytest.raises(InputError, match="RDF temperature must be positive"):
        read_reference([], rdf_temperature_K=0)
