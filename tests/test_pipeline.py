"""The melt-quench pipeline end to end with CHGNet on a small cell, through the command line."""

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from amorph.cli import main
from amorph.trajectory import Trajectory


@pytest.fixture(scope="module")
def li2o_run(tmp_path_factory):
    """``amorph run Li2O --preset demo`` with 30 atoms, melted at 3000 K and quenched to 1500 K."""
    outputs = tmp_path_factory.mktemp("e2e") / "outputs"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(
            [
                "run",
                "Li2O",
                "--preset",
                "demo",
                "--atoms",
                "30",
                "--temperatures",
                "3000",
                "1500",
                "--outputs",
                str(outputs),
                "--json",
            ]
        )
    assert code == 0
    return outputs, json.loads(stdout.getvalue())


def test_summary_has_one_entry_per_temperature(li2o_run):
    _, summaries = li2o_run
    assert [s["temperature_K"] for s in summaries] == [3000.0, 1500.0]
    for s in summaries:
        assert s["n_atoms"] == 30 and isinstance(s["converged"], bool)
        assert s["pressure_convention"] == "virial"
        assert Trajectory.load(s["trajectory"]).n_frames == 300
        folder = Path(s["results_dir"])
        assert {
            "structure.cif",
            "POSCAR",
            "structure.json",
            "eos.json",
            "eos.png",
            "summary.json",
            "trajectory.npz",
            "msd.png",
            "rdf.png",
        } <= {p.name for p in folder.iterdir()}
        assert s["arrhenius"] == {}  # one temperature below the melt: no Arrhenius fit


def test_liquid_li2o_has_li_o_bonds_and_diffusing_li(li2o_run):
    _, summaries = li2o_run
    for s in summaries:
        li_o = next(row for row in s["rdf"] if row["pair"] in ("Li-O", "O-Li"))
        assert 1.6 < li_o["first_peak_A"] < 2.3  # Li-O bond length in Li2O crystal: 2.0 A
        li = s["diffusivity"]["Li"]
        assert 0 < li["D_sigma_cm2_s"] < li["D_cm2_s"] < 1e-2
    melt, quench = summaries
    assert melt["diffusivity"]["Li"]["D_cm2_s"] > quench["diffusivity"]["Li"]["D_cm2_s"]


def test_fitted_volume_is_closer_to_zero_pressure_than_the_start(li2o_run):
    _, (melt, quench) = li2o_run
    start_pressure = melt["eos"]["pressures_GPa"][1]  # the random cell at its estimated volume
    assert abs(melt["pressure_GPa"]) < abs(start_pressure) / 3
    for s in (melt, quench):  # the quench starts near zero pressure already: it must stay there
        assert abs(s["pressure_GPa"]) < 2.0


def test_density_is_plausible_for_liquid_li2o(li2o_run):
    _, summaries = li2o_run
    for s in summaries:  # crystal Li2O: 2.01 g/cm3; the hot liquid is less dense
        assert 0.7 < s["density_g_cm3"] < 2.3
    melt, quench = summaries
    assert quench["density_g_cm3"] > 0.9 * melt["density_g_cm3"]


def test_every_run_holds_its_temperature(li2o_run):
    outputs, _ = li2o_run
    paths = [p for p in (outputs / "runs" / "Li2O").glob("*K/*.npz") if "." not in p.stem]
    assert len(paths) >= 10  # >= 3 EOS runs, a check and a production run at each temperature
    for path in paths:
        traj = Trajectory.load(path)
        target = traj.metadata["temperature_K"]
        mean = traj.temperatures[traj.n_frames // 2 :].mean()
        assert mean == pytest.approx(target, rel=0.1), path.name


def test_quench_starts_from_the_last_melt_frame(li2o_run):
    _, (melt, quench) = li2o_run
    assert quench["eos"]["volumes_A3"][1] == pytest.approx(melt["volume_A3"], rel=1e-6)
    assert np.allclose(
        np.array(quench["eos"]["volumes_A3"][:3]) / melt["volume_A3"], [0.8, 1.0, 1.2]
    )


def test_store_holds_every_job(li2o_run):
    outputs, summaries = li2o_run
    docs = json.loads((outputs / "store" / "jobs.json").read_text())
    names = {d["name"] for d in docs}
    assert {"random cell", "production Li2O 3000 K", "production Li2O 1500 K", "collect"} <= names
    collect = next(d for d in docs if d["name"] == "collect")
    assert [s["temperature_K"] for s in collect["output"]] == [3000.0, 1500.0]


def run_cli(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.err.strip().splitlines()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Xx2O"], "unknown element 'Xx'"),
        (["Li2O)"], "cannot parse formula"),
        (["Li2O", "--temperatures", "-5"], "temperature must be positive"),
        (["Li2O", "--temperatures", "3000", "0"], "temperature must be positive"),
        (["Li2SiO3", "--atoms", "4"], "fewer than one formula unit"),
        (["Li2O", "--engine", "gptff"], "unknown engine 'gptff'"),
        (["Li2O", "--volume-per-atom", "-3"], "volume per atom must be positive"),
        (["Li2O", "--production-ps", "0"], "production duration and chunk length must be positive"),
        (["Li2O", "--eos-ps", "-1"], "MD duration must be positive"),
    ],
)
def test_bad_input_gives_one_error_line_and_writes_nothing(args, message, tmp_path, capsys):
    outputs = tmp_path / "outputs"
    code, err = run_cli(["run", *args, "--outputs", str(outputs)], capsys)
    assert code == 1
    assert len(err) == 1 and err[0].startswith("amorph: error:") and message in err[0]
    assert not outputs.exists()


def test_failing_md_stops_the_run_with_its_reason(tmp_path, capsys):
    outputs = tmp_path / "outputs"
    code, err = run_cli(
        [
            "run",
            "Ar",
            "--preset",
            "demo",
            "--engine",
            "lj_calculators:exploding_argon",
            "--outputs",
            str(outputs),
        ],
        capsys,
    )
    assert code == 1 and len(err) == 1
    assert "became unstable" in err[0]
    assert not (outputs / "results").exists()
