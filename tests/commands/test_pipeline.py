"""A user's day, end to end with CHGNet on a small cell: ``amorph run`` as a subprocess from a fresh
folder with the default relative paths, then the commands that read its results back."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest
from builders import AIMD_REFERENCE, lj_options

from amorph.trajectory import Trajectory

AIMD = AIMD_REFERENCE / "multi_temperature.csv"


@pytest.fixture(scope="module")
def day(tmp_path_factory, amorph):
    """``amorph run Li2O --preset demo``: 30 atoms, melt 3000 K, quench 1500 K, in a new folder."""
    home = tmp_path_factory.mktemp("user")
    run = amorph(
        home,
        "run",
        "Li2O",
        "--preset",
        "demo",
        "--atoms",
        "30",
        "--temperatures",
        "3000",
        "1500",
        "--json",
    )
    return home, json.loads(run.stdout)


def test_the_store_holds_both_temperatures_and_db_reads_them_back(amorph, digest, day):
    home, summaries = day
    assert [s["temperature_K"] for s in summaries] == [3000.0, 1500.0]
    before = digest(home / "outputs" / "store")
    listing = amorph(home, "db", "list").stdout
    line = next(line for line in listing.splitlines() if line.startswith("Li2O"))
    assert "chgnet" in line and "3000 1500" in line
    shown = json.loads(amorph(home, "db", "show", "Li2O", "--json").stdout)
    assert shown == summaries
    assert digest(home / "outputs" / "store") == before  # read-only commands change no byte
    assert not list((home / "outputs" / "jobs").rglob("store"))  # no scattered job stores


def test_stage_documents_are_complete(day):
    _, summaries = day
    for s in summaries:
        assert s["n_atoms"] == 30 and isinstance(s["converged"], bool)
        assert s["pressure_convention"] == "virial" and s["engine"] == "chgnet"
        assert len(s["eos"]["points"]) >= 3 and s["check"]["attempts"] == len(s["check"]["runs"])
        decisions = [run["decision"] for run in s["check"]["runs"]]
        assert set(decisions[:-1]) <= {"extend", "rescale"}
        assert decisions[-1] == ("converged" if s["converged"] else "stop")
        assert s["volume_A3"] == pytest.approx(s["check"]["runs"][-1]["volume_A3"], rel=1e-9)
        assert Trajectory.load(s["trajectory"]["path"]).n_frames == 300
        assert {"Li-Li", "Li-O", "O-O"} <= set(s["rdf"]["pairs"])
        assert set(s["msd"]) == {"Li", "O"}
        li = s["diffusivity"]["Li"]
        assert li["charge"] == 1 and li["conductivity_mS_cm"] > 0  # Li2O: Li+ and O2-
        assert s["structure"]["@class"] == "Structure"


def test_liquid_li2o_has_li_o_bonds_and_diffusing_li(day):
    _, summaries = day
    for s in summaries:
        shell = next(row for row in s["rdf"]["shells"] if row["pair"] in ("Li-O", "O-Li"))
        assert 1.6 < shell["first_peak_A"] < 2.3  # Li-O bond length in Li2O crystal: 2.0 A
        li = s["diffusivity"]["Li"]
        assert 0 < li["D_sigma_cm2_s"] < li["D_cm2_s"] < 1e-2
    melt, quench = summaries
    assert melt["diffusivity"]["Li"]["D_cm2_s"] > quench["diffusivity"]["Li"]["D_cm2_s"]
    assert melt["diffusivity"]["Li"]["diffusive"] is True  # 3000 K liquid: MSD linear, > few Å²


def test_the_first_round_brackets_zero_pressure_and_the_stages_end_near_it(day):
    _, (melt, quench) = day
    for s in (melt, quench):  # the melt from the hot estimate, the quench from the melt's P(V)
        pressures = [p["pressure_GPa"] for p in s["eos"]["points"][:3]]
        assert pressures[0] > 0 > pressures[2], pressures
        assert abs(s["pressure_GPa"]) < 2.0


def test_density_is_plausible_for_liquid_li2o(day):
    _, summaries = day
    for s in summaries:  # crystal Li2O: 2.01 g/cm3; the hot liquid is less dense
        assert 0.7 < s["density_g_cm3"] < 2.3
    melt, quench = summaries
    assert quench["density_g_cm3"] > 0.9 * melt["density_g_cm3"]


def test_every_run_holds_its_temperature(day):
    home, _ = day
    paths = [p for p in (home / "outputs" / "runs" / "Li2O").glob("*K/*.npz") if "." not in p.stem]
    assert len(paths) >= 10  # >= 3 EOS runs, a check and a production run at each temperature
    for path in paths:
        traj = Trajectory.load(path)
        target = traj.metadata["temperature_K"]
        mean = traj.temperatures[traj.n_frames // 2 :].mean()
        assert mean == pytest.approx(target, rel=0.1), path.name


def test_melt_search_is_centred_on_the_hot_estimate(day):
    from pymatgen.core import Composition

    from amorph.volume.estimate import estimate_volume_per_atom

    _, (melt, _) = day
    centre = estimate_volume_per_atom(Composition("Li2O"), 3000) * melt["n_atoms"]
    volumes = [p["volume_A3"] for p in melt["eos"]["points"]]
    assert np.allclose(np.array(volumes[:3]) / centre, [0.8, 1.0, 1.2])


def test_quench_search_is_centred_where_the_melt_predicts(day):
    from amorph.volume.eos import EOSFit, quenched_volume

    _, (melt, quench) = day
    centre = quenched_volume(
        EOSFit(**melt["eos"]["fit"]),
        melt["eos"]["zero_pressure_volume_A3"],
        melt["temperature_K"],
        quench["temperature_K"],
        melt["n_atoms"],
    )
    volumes = [p["volume_A3"] for p in quench["eos"]["points"]]
    assert np.allclose(np.array(volumes[:3]) / centre, [0.8, 1.0, 1.2])


def test_result_folders_are_an_export_of_the_store(amorph, day, tmp_path):
    home, summaries = day
    folder = home / "outputs" / "results" / "Li2O" / "1500K"  # written by run, from the store
    expected = {
        "structure.cif",
        "POSCAR",
        "structure.json",
        "summary.json",
        "eos.json",
        "eos.png",
        "trajectory.npz",
        "msd.png",
        "rdf.png",
    }
    assert expected <= {p.name for p in folder.iterdir()}
    amorph(home, "db", "export", "--folders", str(tmp_path / "again"))
    again = tmp_path / "again" / "Li2O" / "1500K"
    assert json.loads((again / "summary.json").read_text()) == summaries[1]
    assert (again / "POSCAR").read_text() == (folder / "POSCAR").read_text()


def test_features_and_publish_dry_run_read_the_store(amorph, day):
    home, summaries = day
    features = amorph(home, "features", "--include-unconverged").stdout
    table = list(csv.DictReader(io.StringIO(features)))
    assert [(r["formula"], float(r["temperature"])) for r in table] == [
        ("Li2O", 3000.0),
        ("Li2O", 1500.0),
    ]
    assert float(table[0]["D_cm2_s"]) == pytest.approx(summaries[0]["diffusivity"]["Li"]["D_cm2_s"])
    args = ["--formula", "Li2O", "--frames", "0", "--include-unconverged", "--json"]
    predicted = json.loads(amorph(home, "predict", *args).stdout)
    for row, prediction in zip(table, predicted, strict=True):  # the published SISSO equation
        inverse_kt = 1 / (8.617333262e-5 * float(row["temperature"]))
        terms = (-0.3339406718, -0.1064562223, 0.1124328014, -1.946232403)
        values = (inverse_kt, *(float(row[name]) for name in ("LNC", "LLB", "PF")))
        ln_d = sum(c * v for c, v in zip(terms, values, strict=True)) - 3.550389618
        assert prediction["D_cm2_s"] == pytest.approx(math.exp(ln_d), rel=1e-6)
        simulated = float(row["D_cm2_s"]) if row["D_cm2_s"] else None
        assert prediction["D_simulated_cm2_s"] == pytest.approx(simulated)
    dry = amorph(home, "publish", "--project", "amorph_test", "--dry-run")
    assert "2 valid, 0 invalid; nothing uploaded" in dry.stdout


def test_store_commands_accept_outputs_after_the_action(amorph, day, tmp_path):
    home, _ = day
    elsewhere = amorph(tmp_path, "db", "list", "--outputs", str(home / "outputs")).stdout
    assert "Li2O" in elsewhere
    empty = amorph(tmp_path, "db", "list")
    assert "no results in" in empty.stdout and "amorph run" in empty.stdout
    assert not (tmp_path / "outputs").exists()  # reading an absent store creates nothing


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Xx2O"], "unknown element 'Xx'"),
        (["Li2O)"], "cannot parse formula"),
        (["Li2O", "--temperatures", "-5"], "temperature must lie between 1 and 20000 K, got -5 K"),
        (["Li2O", "--temperatures", "3000", "0"], "temperature must lie between 1 and 20000 K"),
        (["Li2O", "--temperatures", "inf", "2000"], "temperature must lie between 1 and 20000 K"),
        (["Li2O", "--temperatures", "1e7", "2000"], "got 1e+07 K"),
        (["Li2SiO3", "--atoms", "4"], "fewer than one formula unit"),
        (["Li2O", "--atoms", "2000000"], "atom count must lie between 1 and 1e+06"),
        (["Li2O", "--atoms", "100000"], "need about 2000 GB of memory"),
        (["Li2O", "--production-ps", "1e5"], "atom-steps of MD"),
        (["Li2O", "--engine", "gptff"], "unknown engine 'gptff'"),
        (["Li2O", "--engine", "m3gnet", "--compile"], "--compile works with the chgnet engine"),
        (["Li2O", "--volume-per-atom", "-3"], "volume per atom must lie between 1 and 1000 Å³"),
        (["Li2O", "--volume-per-atom", "nan"], "volume per atom must lie between 1 and 1000 Å³"),
        (["Li2O", "--min-distance", "0"], "minimum distance must lie between 0.3 and 5 Å"),
        (["Li2O", "--production-ps", "0"], "production duration must lie between 0.01 and"),
        (["Li2O", "--production-ps", "nan"], "production duration must lie between 0.01 and"),
        (["Li2O", "--chunk-ps=-inf"], "production chunk length must lie between 0.01 and"),
        (["Li2O", "--eos-ps", "-1"], "volume search duration must lie between 0.01 and 100000 ps"),
        (["Li2O", "--eos-ps", "1e-6"], "volume search duration must lie between 0.01 and"),
        (["Li2O", "--check-ps", "1e6"], "check run duration must lie between 0.01 and"),
        (["Li2O", "--seed", "-1"], "seed must lie between 0 and 4294967295, got -1"),
        (["Li2O", "--seed", "4294967296"], "seed must lie between 0 and 4294967295"),
        (["Li0.5O0.25"], "fractional amounts: give whole numbers of atoms, e.g. Li2O"),
        (["Li2O", "--engine", "m3gnet-ase", "--model", "/nonexistent"], "no matgl model"),
    ],
)
def test_bad_input_gives_one_error_line_and_writes_nothing(amorph, args, message, tmp_path):
    result = amorph(tmp_path, "run", *args, check=False)
    err = result.stderr.strip().splitlines()
    assert result.returncode == 1
    assert len(err) == 1 and err[0].startswith("amorph: error:") and message in err[0], err
    assert not (tmp_path / "outputs").exists()


def test_failing_md_stops_the_run_and_leaves_no_result(amorph, tmp_path):
    result = amorph(
        tmp_path,
        "run",
        "Ar",
        "--preset",
        "demo",
        "--engine",
        "lj_calculators:exploding_argon",
        check=False,
    )
    err = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(err) == 1 and "became unstable" in err[0]
    assert not (tmp_path / "outputs" / "results").exists()
    assert "no results in" in amorph(tmp_path, "db", "list").stdout


def test_runs_and_readers_at_the_same_time_lose_nothing(amorph, tmp_path):
    """Two runs of different compositions into one store, and a reader, started together."""
    runs = [amorph.start(tmp_path, "run", formula, *lj_options()) for formula in ("Ar", "Kr")]
    readers = 0
    while any(run.poll() is None for run in runs):
        listing = amorph(tmp_path, "db", "list", check=False)
        assert listing.returncode == 0, listing.stderr  # never a half-written store
        readers += 1
    for run in runs:
        assert run.wait() == 0, run.stderr.read()
    listing = amorph(tmp_path, "db", "list").stdout
    assert readers >= 1
    assert {line.split()[0] for line in listing.splitlines()[1:]} == {"Ar", "Kr"}


def test_analyze_and_compare_read_the_store(amorph, day, tmp_path):
    home, summaries = day
    analysis = json.loads(amorph(home, "analyze", "--formula", "Li2O", "--json").stdout)
    measured = analysis["trajectories"]
    assert len(measured) == 2
    li = next(s for s in measured[1]["species"] if s["species"] == "Li")
    assert li["D_cm2_s"] == pytest.approx(summaries[1]["diffusivity"]["Li"]["D_cm2_s"], rel=1e-9)

    if not AIMD.is_file():
        pytest.skip(f"shared AIMD reference data not found at {AIMD}")
    plot = tmp_path / "li2o.png"
    args = ["compare", "Li2O", "--reference", str(AIMD), "--plot", str(plot), "--json"]
    (comparison,) = json.loads(amorph(home, *args).stdout).values()
    at_1500 = next(t for t in comparison["temperatures"] if t["temperature_K"] == 1500.0)
    assert at_1500["reference_volume_per_atom_A3"] == pytest.approx(9.0536)
    ours = summaries[1]["volume_per_atom_A3"]
    assert at_1500["volume_error_pct"] == pytest.approx(100 * (ours / 9.0536 - 1))
    assert plot.stat().st_size > 10_000
