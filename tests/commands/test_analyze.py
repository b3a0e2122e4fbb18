"""``amorph analyze``: JSON summary, Arrhenius block, table, plots and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

import amorph.cli
from amorph.analysis.arrhenius import K_B_EV
from amorph.analysis.synthetic import random_walk
from amorph.trajectory.formats import write_xdatcar

EA, D0 = 0.4, 5e-2
TEMPERATURES = (1000.0, 1250.0, 1500.0)


@pytest.fixture(autouse=True)
def analyze_only(monkeypatch):
    """Run the CLI with only this sub-command, independent of the MD commands' dependencies."""
    assert "analyze" in amorph.cli.COMMANDS
    monkeypatch.setattr(amorph.cli, "COMMANDS", ("analyze",))


@pytest.fixture(scope="module")
def xdatcars(tmp_path_factory):
    """Li hopping over a slow O framework at three temperatures with D_Li = D0 exp(-Ea / kT)."""
    folder = tmp_path_factory.mktemp("runs")
    paths = []
    for k, T in enumerate(TEMPERATURES):
        d_li = D0 * np.exp(-EA / (K_B_EV * T))
        traj = random_walk(
            {"Li": 16, "O": 16}, {"Li": d_li, "O": 1e-6}, 1500, frame_interval_fs=2.0, seed=k
        )
        paths.append(str(write_xdatcar(traj, folder / f"XDATCAR_{T:.0f}K.gz")))
    return paths


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = amorph.cli.main(["analyze", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_summary_with_arrhenius(capsys, xdatcars):
    code, out, err = run_cli(
        capsys,
        *xdatcars,
        "--species",
        "Li",
        "--time-step",
        2,
        "--temperature",
        *TEMPERATURES,
        "--charge",
        "Li=1",
        "--json",
    )
    assert code == 0, err
    summary = json.loads(out)
    runs = summary["trajectories"]
    assert [r["temperature_K"] for r in runs] == list(TEMPERATURES)
    for run, T in zip(runs, TEMPERATURES, strict=True):
        (li,) = run["species"]
        assert li["species"] == "Li"
        assert 0 < li["fit_start_ps"] < li["fit_end_ps"] <= run["duration_ps"] / 2 + 1e-9
        truth = D0 * np.exp(-EA / (K_B_EV * T)) * (1 - 1 / 32)
        assert abs(li["D_cm2_s"] - truth) < 4 * li["D_sigma_cm2_s"]
        assert li["diffusive"] and li["msd_reached_A2"] > 4.0
        assert li["charge"] == 1.0 and li["conductivity_mS_cm"] > 0
        pairs = {shell["pair"]: shell for shell in run["rdf"]}
        assert set(pairs) == {"Li-Li", "Li-O", "O-O"}
        assert all("first_peak_A" in shell for shell in pairs.values())
    (fit,) = summary["arrhenius"]
    assert fit["species"] == "Li"
    assert abs(fit["Ea_eV"] - EA) < 4 * fit["Ea_sigma_eV"]
    assert fit["D300K_cm2_s"] > 0 and fit["D300K_sigma_cm2_s"] > 0


def test_table_and_plots(capsys, xdatcars, tmp_path):
    code, out, err = run_cli(
        capsys,
        *xdatcars[:2],
        "--time-step",
        2,
        "--temperature",
        *TEMPERATURES[:2],
        "--plots",
        tmp_path,
        "--no-rdf",
    )
    assert code == 0, err
    assert "Li" in out and "O" in out and "Arrhenius Li" in out
    # O (D = 1e-6 cm²/s) moves 0.1 Å² in the fit window: flagged, and not fitted
    o_rows = [row for row in map(str.split, out.splitlines()) if row[:2] == ["O", "16"]]
    assert [row[-3:] for row in o_rows] == [["NO", "-", "-"]] * 2  # no charge, no conductivity
    assert "O not diffusive: MSD reaches only" in out and "Arrhenius O" not in out
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert "arrhenius.png" in pngs and sum(name.startswith("msd_") for name in pngs) == 2
    assert all((tmp_path / name).read_bytes()[:4] == b"\x89PNG" for name in pngs)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--time-step", "2", "--species", "Na"], "species Na not in"),
        (["--time-step", "-2"], "time step must be positive"),
        (["--time-step", "2", "--temperature", "0"], "temperature must be positive"),
        (["--time-step", "2", "--temperature", "900", "1000"], "one --temperature for all"),
        (["--time-step", "2", "--charge", "Li"], "--charge expects EL=Z"),
        (["--time-step", "2", "--charge", "Lx=1"], "--charge expects EL=Z"),
        ([], "time between frames is unknown"),
    ],
)
def test_bad_input_gives_one_line_error(capsys, xdatcars, extra, message):
    code, out, err = run_cli(capsys, xdatcars[0], *extra)
    assert code == 1 and out == ""
    assert err.startswith("amorph: error: ") and message in err and err.count("\n") == 1


def test_missing_and_corrupt_files(capsys, tmp_path):
    code, _, err = run_cli(capsys, tmp_path / "XDATCAR")
    assert code == 1 and "no such trajectory file" in err
    broken = tmp_path / "XDATCAR"
    broken.write_text("Li\n1.0\n5 0 0\n0 5 0\n0 0 5\nLi\n2\nDirect configuration= 1\n0.1 0.2 0.3\n")
    code, _, err = run_cli(capsys, broken, "--time-step", 1)
    assert code == 1 and f"{broken}: frame 1 is truncated" in err


def test_conductivity_only_for_species_with_a_charge(capsys, tmp_path):
    """No charge, no conductivity; guessed charges of Li2O (+1, -2) give sigma ∝ n z² D."""
    traj = random_walk({"Li": 16, "O": 8}, {"Li": 1e-3, "O": 1e-4}, 400, seed=5)
    path = write_xdatcar(traj, tmp_path / "XDATCAR")
    base = [path, "--time-step", 2, "--temperature", 1500, "--no-rdf", "--json"]
    code, out, err = run_cli(capsys, *base)
    assert code == 0, err
    rows = json.loads(out)["trajectories"][0]["species"]
    assert all("conductivity_mS_cm" not in row and "charge" not in row for row in rows)
    code, out, err = run_cli(capsys, *base, "--guess-charges")
    assert code == 0, err
    li, o = json.loads(out)["trajectories"][0]["species"]
    assert (li["charge"], o["charge"]) == (1.0, -2.0)
    ratio = o["conductivity_mS_cm"] / li["conductivity_mS_cm"]
    assert ratio == pytest.approx(8 / 16 * 4 * o["D_cm2_s"] / li["D_cm2_s"], rel=1e-9)
    code, out, err = run_cli(capsys, *base, "--guess-charges", "--charge", "O=-1.5")
    assert json.loads(out)["trajectories"][0]["species"][1]["charge"] == -1.5


def test_intermetallic_gets_no_guessed_charges(capsys, tmp_path, caplog):
    """LiCuSi2: pymatgen finds no charge-balanced oxidation states, so no Cu or Si conductivity."""
    traj = random_walk(
        {"Li": 8, "Cu": 8, "Si": 16}, {"Li": 1e-3, "Cu": 1e-4, "Si": 1e-4}, 400, seed=4
    )
    path = write_xdatcar(traj, tmp_path / "XDATCAR")
    base = [path, "--time-step", 2, "--temperature", 1500, "--no-rdf", "--json"]
    code, out, err = run_cli(capsys, *base, "--guess-charges")
    assert code == 0, err
    rows = json.loads(out)["trajectories"][0]["species"]
    assert [row["species"] for row in rows] == ["Li", "Cu", "Si"]
    assert all("conductivity_mS_cm" not in row for row in rows)
    assert "no charge-balanced oxidation states for Li8Cu8Si16" in caplog.text
    code, out, err = run_cli(capsys, *base, "--guess-charges", "--charge", "Li=1")
    rows = json.loads(out)["trajectories"][0]["species"]
    assert [row["species"] for row in rows if "conductivity_mS_cm" in row] == ["Li"]


@pytest.mark.parametrize(
    ("formula", "charges"),
    [
        ("Li2O", {"Li": 1.0, "O": -2.0}),
        ("Li3PS4", {"Li": 1.0, "P": 5.0, "S": -2.0}),
        ("Li3N", {"Li": 1.0, "N": -3.0}),
        ("LiAlO2", {"Li": 1.0, "Al": 3.0, "O": -2.0}),
        ("Li32Cu32Si64", None),  # intermetallics: no charge-balanced guess
        ("LiZn", None),
        ("Na", None),  # an element: no ions
    ],
)
def test_guess_charges(formula, charges):
    from amorph.structure.composition import guess_charges

    assert guess_charges(formula) == charges


def test_non_finite_one_frame_and_folder_inputs_say_what_is_wrong(capsys, tmp_path):
    traj = random_walk({"Li": 4, "O": 4}, {"Li": 1e-5, "O": 1e-6}, 6, frame_interval_fs=2.0)
    traj.positions[3, 2, 1] = np.nan
    nan = write_xdatcar(traj, tmp_path / "XDATCAR_nan")
    code, out, err = run_cli(capsys, nan, "--time-step", 2, "--json")
    assert code == 1 and out == "" and err.count("\n") == 1
    assert f"{nan}: frame 4: positions are not finite numbers" in err
    single = write_xdatcar(traj.slice(0, 1), tmp_path / "XDATCAR_one")
    code, _, err = run_cli(capsys, single, "--time-step", 2)
    assert code == 1 and "one frame only; diffusion needs at least two frames" in err
    code, _, err = run_cli(capsys, tmp_path)
    assert code == 1 and f"{tmp_path} is a folder: give a trajectory file in it" in err
