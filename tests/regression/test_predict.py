"""``amorph predict``: the published SISSO equation, saved models, refusals in one line."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from builders import antifluorite, synthetic_table

from amorph.cli import main
from amorph.constants import K_B_EV
from amorph.descriptors import compute_features
from amorph.errors import InputError
from amorph.regression import read_table, train_models
from amorph.regression.predict import load_model, predict_rows, published_sisso, save_model


def sisso_by_hand(temperature: float, lnc: float, llb: float, pf: float) -> float:
    """D (cm²/s) from the published equation."""
    return math.exp(
        -0.3339406718 / (K_B_EV * temperature)
        - 0.1064562223 * lnc
        + 0.1124328014 * llb
        - 1.946232403 * pf
        - 3.550389618
    )


def test_published_sisso_on_given_descriptors():
    rows = [
        {"source": "a", "formula": "Li2O", "temperature": 1500.0, "LNC": 34.0, "LLB": 18.0,
         "PF": 0.66, "D_cm2_s": 2e-4},
        {"source": "b", "formula": "Li3PS4", "temperature": 1000.0, "LNC": 20.0, "LLB": 6.5,
         "PF": 0.48, "D_cm2_s": None},
    ]  # fmt: skip
    predictions = predict_rows(published_sisso(), rows)
    assert [p["D_cm2_s"] for p in predictions] == pytest.approx(
        [sisso_by_hand(1500, 34, 18, 0.66), sisso_by_hand(1000, 20, 6.5, 0.48)], rel=1e-12
    )
    assert [p["D_simulated_cm2_s"] for p in predictions] == [2e-4, None]
    assert predictions[0]["D_sigma_cm2_s"] is None
    at = predict_rows(published_sisso(), rows[:1], temperatures=[1000.0, 2000.0])
    assert [p["temperature"] for p in at] == [1000.0, 2000.0]
    assert at[1]["D_cm2_s"] > at[0]["D_cm2_s"]  # Arrhenius: hotter is faster
    assert at[0]["D_simulated_cm2_s"] is None  # the row's D is at another temperature


def _write_table(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    return path


def test_predict_command_on_a_feature_table(tmp_path, capsys):
    table = _write_table(
        tmp_path / "features.csv",
        ["formula", "temperature", "D_cm2_s", "LNC", "LLB", "PF", "AAV"],
        [["Li2O", 1500, 1e-4, 34, 18, 0.66, 9.5], ["LiCl", 1200, "", 18, 12, 0.5, 20]],
    )
    assert main(["predict", str(table), "--json"]) == 0
    predictions = json.loads(capsys.readouterr().out)
    assert [p["D_cm2_s"] for p in predictions] == pytest.approx(
        [sisso_by_hand(1500, 34, 18, 0.66), sisso_by_hand(1200, 18, 12, 0.5)], rel=1e-12
    )
    assert main(["predict", str(table)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "published 4-term SISSO" in lines[0]
    assert lines[1].split("  ")[0] == "source" and "simulated D (cm²/s)" in lines[1]
    ratio = sisso_by_hand(1500, 34, 18, 0.66) / 1e-4
    assert lines[2].split()[-1] == f"{ratio:.3g}"


def test_predict_refuses_in_one_line(tmp_path, capsys):
    no_pf = _write_table(
        tmp_path / "no_pf.csv", ["formula", "temperature", "LNC", "LLB"], [["Li2O", 1500, 34, 18]]
    )
    nacl = tmp_path / "NaCl.cif"
    antifluorite(4.62).replace_species({"Li": "Na"}).to(filename=str(nacl))
    li2o = tmp_path / "Li2O.cif"
    antifluorite(4.62).to(filename=str(li2o))
    (tmp_path / "model.pkl").write_bytes(b"not a pickle")
    cases = [
        (["predict", str(no_pf)], "needs the column(s) PF"),
        (["predict", str(nacl), "--temperature", "1000"], "Na2O has no Li"),
        (["predict", str(li2o)], "no temperature; give --temperature"),
        (["predict", str(li2o), "--temperature", "-5"], "--temperature must be positive"),
        (["predict", str(li2o), "--temperature", "900", "--model", str(tmp_path / "model.pkl")],
         "not a model saved by amorph train"),
        (["predict"], "give structure files"),
    ]  # fmt: skip
    for argv, message in cases:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("amorph: error: ") and message in err[0], err


def test_model_with_other_units_is_refused():
    model = dataclasses.replace(published_sisso(), units={**published_sisso().units, "PF": "Å"})
    row = {"source": "x", "formula": "Li2O", "temperature": 1000.0, "LNC": 1, "LLB": 1, "PF": 1}
    with pytest.raises(InputError, match="reads PF in Å, but amorph computes it in no unit"):
        predict_rows(model, [row])


def test_saved_models_predict_what_training_predicted(tmp_path):
    synthetic_table(tmp_path / "table.csv", n_rows=40)
    table = read_table(tmp_path / "table.csv")
    result = train_models(table, max_terms=2)
    saved = result.saved_models("table.csv")
    assert sorted(saved) == ["rf", "sisso1", "sisso2", "xgb"]
    rows = [
        {"source": f"row {i}", "formula": "Li2O", "temperature": float(table.temperature[i]),
         **dict(zip(table.feature_names, map(float, table.features[i]), strict=True))}
        for i in range(len(table))
    ]  # fmt: skip
    for stem, model in saved.items():
        loaded = load_model(save_model(model, tmp_path / "models" / f"{stem}.pkl"))
        assert loaded.inputs == model.inputs and loaded.units == model.units
        predicted = predict_rows(loaded, rows)
        values = np.array([p["D_cm2_s"] for p in predicted])
        if stem in result.ensembles:
            fit = result.ensembles[stem]
            assert loaded.units["temperature"] == "K" and loaded.units["N0"] == "?"
            assert values == pytest.approx(fit.predictions, rel=1e-6)
            sigma = [p["D_sigma_cm2_s"] for p in predicted]
            assert sigma == pytest.approx(fit.uncertainties, rel=1e-6)
        else:
            terms = int(stem.removeprefix("sisso"))
            assert values == pytest.approx(np.exp(result.sisso_predictions[terms - 1]), rel=1e-9)
    assert len(result.ensembles["xgb"].members) == 100  # the paper's bootstrap ensemble
    # a model trained on a column amorph does not compute cannot predict from a structure
    li2o = tmp_path / "Li2O.cif"
    antifluorite(4.62).to(filename=str(li2o))
    with pytest.raises(InputError, match=r"needs the column\(s\) N0, N1, N2"):
        predict_rows(saved["rf"], [{"source": "Li2O.cif", "formula": "Li2O", "temperature": 1e3,
                                    **compute_features(antifluorite(4.62))}])  # fmt: skip


def test_train_saves_models_that_predict_reads(tmp_path, capsys):
    synthetic_table(tmp_path / "table.csv", n_rows=30)
    text = (tmp_path / "table.csv").read_text()
    (tmp_path / "table.csv").write_text(text.replace("Li0X", "Li2O"))  # a formula with Li
    models = tmp_path / "models"
    argv = ["train", str(tmp_path / "table.csv"), "--models", "sisso", "--max-terms", "2"]
    assert main([*argv, "--save", str(models), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert sorted(p.name for p in models.iterdir()) == ["sisso1.pkl", "sisso2.pkl"]
    assert main(["predict", str(tmp_path / "table.csv"), "--model", str(models / "sisso2.pkl"),
                 "--json"]) == 0  # fmt: skip
    predictions = json.loads(capsys.readouterr().out)
    truth = np.log([p["D_simulated_cm2_s"] for p in predictions])
    error = np.log([p["D_cm2_s"] for p in predictions]) - truth
    assert np.sqrt(np.mean(error**2)) < 3 * metrics["sisso"]["2"]["rmse_train"] + 0.05


def test_predict_reads_the_store_and_shows_simulated_d(tmp_path, capsys):
    from results_factory import add_composition, stage_doc

    from amorph.results.store import open_store

    outputs = tmp_path / "outputs"
    stages = [
        stage_doc(antifluorite(4.62 * s), t, diffusivity={"Li": (d, d / 10)})
        for s, t, d in ((1.05, 2000.0, 3e-4), (1.0, 1000.0, 2e-5))
    ]
    add_composition(open_store(None, outputs), stages, outputs / "jobs")
    assert main(["predict", "--formula", "Li2O", "--outputs", str(outputs), "--json"]) == 0
    predictions = json.loads(capsys.readouterr().out)
    assert [(p["temperature"], p["D_simulated_cm2_s"]) for p in predictions] == [
        (2000.0, 3e-4),
        (1000.0, 2e-5),
    ]
    f = compute_features(antifluorite(4.62))
    expected = sisso_by_hand(1000, f["LNC"], f["LLB"], f["PF"])
    assert predictions[1]["D_cm2_s"] == pytest.approx(expected, rel=1e-9)


def test_predict_as_a_user_runs_it(amorph, tmp_path):
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    structure = antifluorite(4.9)
    structure.to(filename=str(fresh / "POSCAR"), fmt="poscar")
    command = ["predict", "POSCAR", "--temperature", "1200"]
    (prediction,) = json.loads(amorph(fresh, *command, "--json").stdout)
    f = compute_features(structure)
    assert prediction["D_cm2_s"] == pytest.approx(
        sisso_by_hand(1200, f["LNC"], f["LLB"], f["PF"]), rel=1e-9
    )
    assert sorted(p.name for p in fresh.iterdir()) == ["POSCAR"]  # nothing written beside it
    structure.replace_species({"Li": "Na"}).to(filename=str(fresh / "POSCAR"), fmt="poscar")
    refused = amorph(fresh, *command, check=False)
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.strip() == (
        "amorph: error: POSCAR: Na2O has no Li, so no Li diffusivity to predict"
    )
