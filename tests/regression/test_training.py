"""SISSO recovers planted laws; RF/XGBoost train on synthetic tables; bad tables are rejected."""

from __future__ import annotations

import csv
import itertools
import json
import math
import subprocess
import sys

import numpy as np
import pytest
from builders import synthetic_table

from amorph.cli import main
from amorph.regression import read_table, train_models
from amorph.regression.sisso import fit_sisso

K_B = 8.617333262e-5


def test_sisso_recovers_planted_law():
    rng = np.random.default_rng(1)
    n = 150
    columns = {"1/kT": 1 / (K_B * rng.uniform(1000, 2500, n))}
    columns |= {name: rng.uniform(0.5, 3.0, n) for name in "ABCDEFG"}
    law = (
        -0.4 * columns["1/kT"]
        + 0.8 * columns["A"] * columns["B"]
        - 1.2 * np.log(columns["C"])
        + 2.0
    )
    noise = 0.05
    models = fit_sisso(columns, law + rng.normal(0, noise, n), max_terms=4)

    assert [len(m.descriptors) for m in models] == [1, 2, 3, 4]
    three = models[2]
    coefficients = {d.name: c for d, c in zip(three.descriptors, three.coefficients, strict=True)}
    assert coefficients.keys() == {"1/kT", "A*B", "log(C)"}
    assert coefficients["1/kT"] == pytest.approx(-0.4, rel=0.03)
    assert coefficients["A*B"] == pytest.approx(0.8, rel=0.03)
    assert coefficients["log(C)"] == pytest.approx(-1.2, rel=0.03)
    assert three.intercept == pytest.approx(2.0, abs=0.1)
    assert three.rmse_train == pytest.approx(noise, rel=0.25)
    assert models[1].rmse_train > 3 * three.rmse_train  # two terms cannot express the law
    assert all(a.rmse_train >= b.rmse_train for a, b in itertools.pairwise(models))
    assert three.equation.startswith("ln D = ")
    for term in ("*(1/kT)", "*(A*B)", "*log(C)"):
        assert term in three.equation
    assert np.sqrt(np.mean((three.predict(columns) - law) ** 2)) < noise


def test_sisso_finds_a_law_of_primary_features_among_distractors():
    # the shape of the paper's 4-term model: ln D = a/kT + b*LNC + c*LLB + d*PF + e
    rng = np.random.default_rng(7)
    n = 200
    columns = {"1/kT": 1 / (K_B * rng.choice([1000.0, 1500.0, 2000.0, 2500.0], n))}
    columns |= {
        "LNC": rng.uniform(10, 24, n),
        "LLB": rng.uniform(0, 8, n),
        "PF": rng.uniform(0.3, 0.7, n),
    }
    columns |= {f"X{i}": rng.normal(size=n) for i in range(6)}
    law = (
        -0.33 * columns["1/kT"]
        - 0.11 * columns["LNC"]
        + 0.25 * columns["LLB"]
        - 1.95 * columns["PF"]
        - 3.55
    )
    models = fit_sisso(columns, law, complexity=0, max_terms=4)
    four = models[3]
    assert {d.name for d in four.descriptors} == {"1/kT", "LNC", "LLB", "PF"}
    assert four.rmse_train < 1e-8


def test_train_models_on_a_synthetic_table(tmp_path):
    synthetic_table(tmp_path / "table.csv")
    table = read_table(tmp_path / "table.csv")
    result = train_models(table, max_terms=3)
    metrics = result.metrics()

    assert (metrics["table"]["train_rows"], metrics["table"]["test_rows"]) == (68, 12)
    test_spread = np.std(table.target[result.test])
    for kind in ("rf", "xgb"):
        fit = result.ensembles[kind]
        assert metrics[kind]["cv_rmse"] > 0 and 0 < metrics[kind]["test_rmse"] < test_spread
        assert sum(metrics[kind]["importances"].values()) == pytest.approx(1, abs=1e-5)
        assert set(list(metrics[kind]["importances"])[:2]) <= {"temperature", "LNC", "PF"}
        assert (
            fit.uncertainties.shape == (80,)
            and (fit.uncertainties >= 0).all()
            and fit.uncertainties.max() > 0
        )
    sisso = metrics["sisso"]
    assert list(sisso) == ["1", "2", "3"]
    assert (
        sisso["3"]["rmse_train"] < 0.1 and sisso["3"]["rmse_test"] < 0.15
    )  # noise is 0.05 in ln D
    assert json.loads(json.dumps(metrics, allow_nan=False)) == metrics


def test_train_command_prints_json_and_writes_plots(tmp_path, capsys):
    synthetic_table(tmp_path / "table.csv", n_rows=40)
    plots, predictions = tmp_path / "plots", tmp_path / "predictions.csv"
    argv = ["train", str(tmp_path / "table.csv"), "--json", "--max-terms", "2",
            "--plots", str(plots), "--predictions", str(predictions)]  # fmt: skip
    assert main(argv) == 0
    metrics = json.loads(capsys.readouterr().out)
    for kind in ("rf", "xgb"):
        assert math.isfinite(metrics[kind]["cv_rmse"]) and math.isfinite(metrics[kind]["test_rmse"])
    assert metrics["sisso"]["2"]["rmse_train"] <= metrics["sisso"]["1"]["rmse_train"]
    assert metrics["sisso"]["1"]["equation"].startswith("ln D = ")
    expected = [
        "importance_rf.png",
        "importance_xgb.png",
        "parity_rf.png",
        "parity_sisso.png",
        "parity_xgb.png",
    ]
    assert sorted(p.name for p in plots.iterdir()) == expected
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in plots.iterdir())
    with open(predictions, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 40 and sum(r["split"] == "test" for r in rows) == 6
    assert all(float(r["rf_uncertainty"]) >= 0 for r in rows)


def _table(path, header: list[str], rows: list[list]) -> str:
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    return str(path)


GOOD_ROW = ["Li2O", 1000, 1e-5, 12.0]


@pytest.mark.parametrize(
    ("header", "rows", "message"),
    [
        (["temperature", "D_cm2_s", "LNC"], [GOOD_ROW[1:]] * 12, "missing column 'formula'"),
        (
            ["formula", "D_cm2_s", "LNC"],
            [[*GOOD_ROW[:1], *GOOD_ROW[2:]]] * 12,
            "missing column 'temperature'",
        ),
        (
            ["formula", "temperature", "LNC"],
            [[*GOOD_ROW[:2], 12.0]] * 12,
            "missing column 'D_cm2_s'",
        ),
        (
            ["formula", "temperature", "D_cm2_s", "LNC", "phase"],
            [[*GOOD_ROW, "glass"]] * 12,
            "column 'phase' is not numeric",
        ),
        (["formula", "temperature", "D_cm2_s", "LNC"], [GOOD_ROW] * 4, "too few rows"),
        (
            ["formula", "temperature", "D_cm2_s", "LNC"],
            [["Li2O", "", 1e-5, 12.0]] * 12,
            "column 'temperature' needs",
        ),
        (["formula", "temperature", "D_cm2_s"], [GOOD_ROW[:3]] * 12, "no feature columns"),
    ],
)
def test_train_rejects_bad_tables_in_one_line(tmp_path, capsys, header, rows, message):
    path = _table(tmp_path / "bad.csv", header, rows)
    assert main(["train", path, "--models", "rf"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("amorph: error: ") and message in err


def test_rows_without_target_are_left_out(tmp_path):
    rows = [["Li2O", 1000 + 10 * i, 1e-5 * (i + 1), float(i)] for i in range(12)] + [
        ["Li2O", 1000, "", 3.0]
    ]
    table = read_table(
        _table(tmp_path / "t.csv", ["formula", "temperature", "D_cm2_s", "LNC"], rows)
    )
    assert len(table) == 12 and table.feature_names == ("LNC",)


def test_features_and_models_import_without_torch_or_jobflow():
    modules = (
        "amorph.descriptors.table, amorph.regression.parity, amorph.regression.predict, "
        "amorph.commands.features, amorph.commands.train, amorph.commands.predict"
    )
    check = f"import sys, {modules}; print(sorted({{'torch', 'jobflow'}} & set(sys.modules)))"
    assert (
        subprocess.run(
            [sys.executable, "-c", check], capture_output=True, text=True, check=True
        ).stdout.strip()
        == "[]"
    )
