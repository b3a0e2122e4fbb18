"""The GPAW engine for real (PAW-PBE on tiny cells at low cutoffs): its rules, bad input, MD
through the shared lifecycle (resume after SIGKILL), MPI, the basis-set stress, an AIMD
melt-quench into the store, and DFT audits of surrogate stages."""

import json
import shutil
import signal
import time

import numpy as np
import pytest
from builders import antifluorite
from pymatgen.core import Lattice, Structure

from amorph.errors import EngineError, InputError
from amorph.md.engine import EngineSpec, MDSettings, MDState, MDTask
from amorph.md.gpaw.settings import GpawSettings
from amorph.trajectory import Trajectory

pytest.importorskip("gpaw", reason="GPAW (amorph[dft]) is not installed")

# Tiny and cheap: Li2S (soft datasets: GPAW's own Li and S), 300 eV, Γ, a looser SCF. Numbers from
# these runs test the machinery, not the physics.
TINY = {
    "cutoff_eV": 300,
    "converged_cutoff_eV": 450,
    "kpoints": [1, 1, 1],
    "setups": {"Li": "paw"},
    "scf_energy_eV": 1e-4,
    "scf_density": 1e-4,
}
CLI_TINY = [f"--engine-option={k}={json.dumps(v)}" for k, v in TINY.items()]


def li2x(anion: str = "S", a: float = 5.69, rattle: float = 0.1) -> Structure:
    """Antifluorite Li2X (12 atoms: Li2S at 5.69 Å, Li2O at 4.62 Å), rattled with a fixed seed."""
    structure = antifluorite(a, anion)
    shift = np.random.default_rng(7).normal(scale=rattle, size=(len(structure), 3))
    return Structure(structure.lattice, structure.species, structure.cart_coords + shift,
                     coords_are_cartesian=True)  # fmt: skip


def test_rules_choose_the_settings_of_a_composition():
    settings = GpawSettings()
    assert settings.dataset_names(["Li", "O", "Cr"]) == {"Li": "sv", "O": "paw", "Cr": "14"}
    assert settings.kpoint_grid(li2x()) == [2, 2, 2]  # 5.7 Å: a 7 Å grid length needs 2
    ionic = Structure(Lattice.cubic(9.0), ["Li", "Li", "O"], [[0, 0, 0], [0.5, 0, 0], [0, 0.5, 0]])
    metallic = Structure(Lattice.cubic(9.0), ["Li", "Zn"], [[0, 0, 0], [0.5, 0, 0]])
    assert settings.kpoint_grid(ionic) == [1, 1, 1] and settings.kpoint_grid(metallic) == [2, 2, 2]
    assert not settings.spin(["Li", "O"]) and settings.spin(["Li", "Fe", "O"])
    fe = Structure(Lattice.cubic(4), ["Fe", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    parameters = settings.parameters(fe)
    assert parameters["magmoms"] == [5.0, 0.0] and parameters["symmetry"] == {"point_group": False}
    assert settings.cutoff(["Li", "O"]) == 900 and settings.cutoff(["Li", "N"]) == 1000
    assert settings.cutoff(["Li", "Zn"]) == 600 and settings.cutoff(["Li", "Ta"]) == 800
    description = GpawSettings(**TINY).describe(li2x())
    assert description["datasets"] == {"Li": "paw (1 e)", "S": "paw (6 e)"}
    assert description["cutoff_eV"] == 300 and description["kpoints"] == [1, 1, 1]
    assert GpawSettings().describe(li2x())["datasets"]["Li"] == "sv (3 e)"  # generated, 1s in


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cutoff": 400}, "unknown GPAW option.s. cutoff"),
        ({"cutoff_eV": 100}, "cutoff must lie between"),
        ({"mpi_command": "mpirun"}, "must hold .ranks."),
        ({"kpoints": [1, 1]}, "three positive integers"),
    ],
)
def test_bad_settings_are_refused_before_any_scf(options, message):
    with pytest.raises(InputError, match=message):
        EngineSpec("gpaw", options=options).load()


def test_an_unconverged_scf_stops_the_run_naming_the_step(tmp_path):
    engine = EngineSpec("gpaw", options={**TINY, "max_scf_iterations": 2}).load()
    task = MDTask(MDState(li2x()), 2000.0, 4, MDSettings(), tmp_path, seed=1)
    with pytest.raises(EngineError, match=r"step 1: GPAW's SCF did not converge in 2 iterations"):
        engine.run_one(task)
    assert not (tmp_path / "md.npz").exists()


def test_the_basis_set_stress_is_what_a_low_cutoff_lacks(tmp_path):
    """O at 700 eV, its lowest allowed cutoff, reads Li2O's pressure about 0.6 GPa too low."""
    options = {**TINY, "cutoff_eV": 700, "converged_cutoff_eV": 1050}
    engine = EngineSpec("gpaw", options=options).load()
    oxide = li2x("O", 4.62)
    basis = engine.basis_stress(oxide, tmp_path)
    (point,) = engine.evaluate([oxide])
    assert basis.pressure_GPa == pytest.approx(point.virial_pressure_GPa, abs=1e-3)
    assert 0.3 < basis.correction_GPa < 1.5
    assert (tmp_path / "basis-1050eV.log").exists()


def test_a_cutoff_too_low_for_oxygen_is_one_line_before_anything_runs(tmp_path, amorph):
    result = amorph(
        tmp_path, "run", "Li2O", "--engine", "gpaw", "--engine-option", "cutoff_eV=500", check=False
    )
    assert result.returncode == 1
    assert result.stderr == (
        "amorph: error: a 500 eV cutoff is below 700 eV, GPAW's minimum for O: its pressures "
        "would be off by more than 1 GPa\n"
    )
    assert not (tmp_path / "outputs" / "store").exists()


@pytest.mark.skipif(shutil.which("mpiexec") is None, reason="no MPI here")
def test_two_mpi_ranks_give_the_one_rank_numbers(tmp_path):
    from gpaw.utilities import compiled_with_sl

    if not compiled_with_sl():
        pytest.skip("GPAW built without ScaLAPACK")
    structure = li2x()
    points = [
        EngineSpec("gpaw", options={**TINY, "ranks": ranks, "mpi_command": command}).load()
        .evaluate([structure], tmp_path / str(ranks))[0]
        for ranks, command in [(1, "mpiexec -n {ranks}"), (2, "mpiexec --oversubscribe -n {ranks}")]
    ]  # fmt: skip
    serial, parallel = points
    assert parallel.virial_pressure_GPa == pytest.approx(serial.virial_pressure_GPa, abs=5e-3)
    assert parallel.energy_eV == pytest.approx(serial.energy_eV, abs=1e-3)
    assert np.abs(parallel.forces - serial.forces).max() < 5e-3
    assert (tmp_path / "2" / "evaluate.mpi.log").exists()


def test_without_the_dft_extra_the_engine_names_it(tmp_path, amorph):
    shadow = tmp_path / "shadow" / "gpaw"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named gpaw')\n")
    user = type(amorph)()
    user.environment["PYTHONPATH"] = f"{shadow.parent}:{user.environment['PYTHONPATH']}"
    result = user(tmp_path, "run", "Li2O", "--engine", "gpaw", check=False)
    assert result.returncode == 1
    assert result.stderr == (
        "amorph: error: the GPAW engine needs GPAW, the dft extra: pip install 'amorph[dft]' "
        '(README, "DFT with GPAW")\n'
    )
    assert not (tmp_path / "outputs").exists()


def test_an_element_without_a_dataset_is_one_line_and_writes_nothing(tmp_path, amorph):
    for engine in (["--engine", "gpaw"], ["--engine", "lj_calculators:argon", "--audit", "gpaw"]):
        result = amorph(tmp_path, "run", "TcO2", *engine, check=False)
        assert result.returncode == 1
        assert len(result.stderr.splitlines()) == 1 and "no PAW-PBE dataset for Tc" in result.stderr
        assert not (tmp_path / "outputs" / "store").exists()


def test_a_cell_too_large_for_memory_is_refused_before_packing(tmp_path, amorph):
    result = amorph(tmp_path, "run", "Li2O", "--engine", "gpaw", "--atoms", "6000", check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("amorph: error: GPAW needs about") and "GB" in result.stderr
    assert not (tmp_path / "outputs" / "runs").exists()


def test_an_aimd_melt_quench_lands_in_the_store_and_resumes_after_sigkill(tmp_path, amorph):
    """A real AIMD melt-quench: 9 atoms of Li2S (soft datasets: sane at 300 eV), 10-step runs;
    killed in its production, rerun, read back with db show."""
    options = [
        "run", "Li2S", "--engine", "gpaw", *CLI_TINY, "--preset", "demo", "--atoms", "9",
        "--temperatures", "3000", "1500", "--eos-ps", "0.02", "--check-ps", "0.02",
        "--production-ps", "0.02", "--chunk-ps", "0.01",
    ]  # fmt: skip
    melt = tmp_path / "outputs" / "runs" / "Li2S" / "3000K"
    process = amorph.start(tmp_path, *options)
    while not (melt / "production.checkpoint.npz").exists():
        assert process.poll() is None, process.communicate()
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    kept = Trajectory.load(melt / "production.chunk0000.npz")
    amorph(tmp_path, *options)
    shown = json.loads(amorph(tmp_path, "db", "show", "Li2S", "--json").stdout)
    assert [s["temperature_K"] for s in shown] == [3000, 1500]
    production = Trajectory.load(melt / "production.npz")
    assert production.n_frames == 10  # 0.02 ps of 2 fs steps
    assert np.allclose(production.time_fs, 2.0 * np.arange(1, 11))  # none lost or repeated
    assert np.array_equal(production.positions[:5], kept.positions)  # the killed run's chunk
    for stage in shown:
        assert stage["engine"] == "gpaw" and stage["engine_settings"]["cutoff_eV"] == 300
        basis = stage["basis"]
        assert basis["cutoff_eV"] == 300 and basis["converged_cutoff_eV"] == 450
        assert basis["correction_GPa"] == pytest.approx(
            basis["converged_pressure_GPa"] - basis["pressure_GPa"]
        )
        # the stage's pressures are at the converged basis: the production's run pressure + it
        trajectory = Trajectory.load(stage["trajectory"]["path"])
        raw = trajectory.virial_pressures[trajectory.n_frames // 2 :].mean()
        assert stage["pressure_GPa"] == pytest.approx(raw + basis["correction_GPa"])
    listed = amorph(tmp_path, "db", "list").stdout
    assert "Li2S" in listed and "gpaw" in listed


def test_a_surrogate_stage_is_audited_against_dft(tmp_path, amorph):
    """CHGNet stages audited by GPAW, as part of the run (--audit) and afterwards (amorph audit):
    the audits land beside the stages and db show reports them."""
    amorph(
        tmp_path, "run", "Li2S", "--preset", "demo", "--atoms", "9", "--temperatures", "3000",
        "1500", "--eos-ps", "0.1", "--check-ps", "0.1", "--production-ps", "0.2",
        "--second-opinion", "none", "--audit", "gpaw", "--audit-frames", "2",
        *[option.replace("--engine-option", "--audit-option") for option in CLI_TINY],
    )  # fmt: skip
    shown = json.loads(amorph(tmp_path, "db", "show", "Li2S", "--json").stdout)
    for stage in shown:
        audit = stage["audit"]
        assert audit["engine"] == "chgnet" and audit["dft_engine"] == "gpaw"
        assert len(audit["frame_indices"]) == 2 == len(audit["dft_pressures_GPa"])
        difference = np.subtract(audit["engine_pressures_GPa"], audit["dft_pressures_GPa"])
        assert audit["pressure_difference_GPa"] == pytest.approx(difference.mean())
        assert audit["volume_shift"] == pytest.approx(
            -difference.mean() / audit["bulk_modulus_GPa"]
        )
        assert audit["dft_settings"]["cutoff_eV"] == 300
        assert audit["force_rmse_eV_A"] > 0 and audit["n_atoms"] == 9
    first = {s["temperature_K"]: s["audit"]["frame_indices"] for s in shown}
    compared = amorph(tmp_path, "compare", "Li2S", "--dft").stdout
    assert "against DFT audits" in compared and "V/atom DFT" in compared
    printed = amorph(
        tmp_path, "audit", "Li2S", "--temperatures", "1500", "--frames", "3", *CLI_TINY
    ).stdout
    assert "Li2S" in printed and "gpaw" in printed
    again = json.loads(amorph(tmp_path, "db", "show", "Li2S", "--json").stdout)
    audits = {s["temperature_K"]: s["audit"] for s in again}
    assert len(audits[1500]["frame_indices"]) == 3  # the newer audit replaced the run's
    assert audits[3000]["frame_indices"] == first[3000]
    flagged = [s for s in again if s["audit"]["disagreement"]]
    listed = amorph(tmp_path, "db", "list").stdout
    assert ("dft_disagreement" in listed) == bool(flagged)
    # the audits' DFT frames tune CHGNet
    stresses = np.array(audits[1500]["dft_stresses_GPa"])
    assert stresses.shape == (3, 3, 3)
    assert -np.trace(stresses, axis1=1, axis2=2) / 3 == pytest.approx(
        audits[1500]["dft_pressures_GPa"]
    )
    tuned = json.loads(amorph(tmp_path, "tune", "Li2S", "--epochs", "2", "--json").stdout)
    assert len(tuned["frames"]) == 5 and tuned["dft_settings"][0].count('"cutoff_eV": 300')
    assert {f["stage_uuid"] for f in tuned["frames"]} == {s["audit"]["stage_uuid"] for s in again}


@pytest.mark.parametrize("command", ["run", "campaign"])
def test_the_tune_loop_runs_again_with_a_model_tuned_on_its_audits(tmp_path, amorph, command):
    """`run --tune-with` (and a campaign's): audit, tune on the audits' frames, run again with the
    tuned model, whose hash every stage records; no tuning when the first audit agrees with DFT.
    The loop is a jobflow flow (a tune job replaced by the next round), its record a TuningDoc in
    the store that `db show` prints."""
    (tmp_path / "formulas.txt").write_text("Li2S\n")
    run = amorph(
        tmp_path, command, "Li2S" if command == "run" else "formulas.txt", "--preset", "demo",
        "--atoms", "9", "--temperatures", "3000", "--eos-ps", "0.1", "--check-ps", "0.1",
        "--production-ps", "0.2", "--second-opinion", "none", "--tune-with", "gpaw",
        "--tune-rounds", "1", "--audit-frames", "4",
        *[option.replace("--engine-option", "--audit-option") for option in CLI_TINY],
    )  # fmt: skip
    (stage,) = json.loads(amorph(tmp_path, "db", "show", "Li2S", "--json").stdout)
    shown = amorph(tmp_path, "db", "show", "Li2S").stdout
    loop = shown[shown.index("audit/tune loop of Li2S against gpaw:") :]
    assert loop.splitlines()[1].startswith("round 0, stock: ")
    assert loop in run.stderr if command == "run" else "1 of 1 compositions done" in run.stdout
    models = sorted((tmp_path / "outputs" / "models").glob("chgnet-Li2S-round1-*"))
    if not models:  # the stock model agreed with DFT within the tolerance
        assert not stage["audit"]["disagreement"] and stage["engine_model"] is None
        assert loop.splitlines()[2] == "stopped: agreement"
        return
    (model,) = models
    provenance = json.loads((model / "tuned.json").read_text())
    assert len(provenance["frames"]) == 4
    assert stage["engine_model"] == str(model) and stage["audit"]["engine_model"] == str(model)
    assert stage["engine_settings"]["model_sha256"] == provenance["sha256"]
    first_run = provenance["frames"][0]["stage_uuid"]
    assert stage["audit"]["frame_indices"] and stage["audit"]["stage_uuid"] != first_run
    assert loop.splitlines()[2].startswith(f"round 1, {model} ({provenance['sha256'][:12]}): ")
    stopped = loop.splitlines()[3]
    assert stopped.endswith("tuned on 4 DFT frames)")
    assert stopped.startswith(
        "stopped: round limit" if stage["audit"]["disagreement"] else "stopped: agreement"
    )


def test_an_audit_without_results_is_one_line_and_creates_no_store(tmp_path, amorph):
    result = amorph(tmp_path, "audit", "Li2O", check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("amorph: error: no results in ")
    assert len(result.stderr.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
