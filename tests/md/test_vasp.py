"""The VASP engine, run against the fake VASP of ``fake_vasp.py`` (no VASP binary here): inputs,
output parsing, pressure conventions, chunk restarts, failure modes, and the volume-search flows end
to end."""

import json
import re
from datetime import datetime, timedelta

import numpy as np
import pytest
from ase.units import kB
from builders import antifluorite, memory_store, run_jobs
from fake_vasp import COMMAND, FAST_CUSTODIAN, write_potcar_library
from jobflow import Flow, run_locally
from pymatgen.core import SETTINGS, Lattice, Structure
from pymatgen.io.vasp import Incar, Kpoints, Poscar, Potcar
from pymatgen.io.vasp.sets import MPMDSet

from amorph.constants import EV_A3_TO_GPA as GPA
from amorph.errors import EngineError, InputError, WalltimeReached
from amorph.flows import CheckRunMaker, ProductionMaker, Target, VolumeSearchMaker
from amorph.md.engine import EngineSpec, MDSettings, MDState, MDTask
from amorph.md.vasp import VaspSettings, vasp_engine
from amorph.trajectory import Trajectory

pytestmark = pytest.mark.filterwarnings(
    "ignore::UserWarning"
)  # pymatgen does not know the fake POTCARs
SPEC = EngineSpec("vasp", options={"command": COMMAND, "custodian_kwargs": FAST_CUSTODIAN})


@pytest.fixture(autouse=True)
def potcar_library(tmp_path_factory, monkeypatch):
    """Fake POTCARs for Li, O and H in pymatgen's layout, as PMG_VASP_PSP_DIR."""
    root = potcars(tmp_path_factory)
    monkeypatch.setitem(SETTINGS, "PMG_VASP_PSP_DIR", str(root))
    return root


def potcars(tmp_path_factory):
    root = tmp_path_factory.getbasetemp() / "potcars"
    if not root.exists():
        write_potcar_library(root, ["Li_sv", "O", "H"])
    return root


def walltime_start(seconds_ago: float = 0.0) -> str:
    """A job start for custodian's $CUSTODIAN_WALLTIME_START."""
    return (datetime.now() - timedelta(seconds=seconds_ago)).strftime("%a %b %d %H:%M:%S UTC %Y")


@pytest.fixture(autouse=True)
def no_walltime(monkeypatch):
    """No scheduler walltime; the job's start, which custodian sets once, undone after a test."""
    monkeypatch.delenv("PBS_WALLTIME", raising=False)
    monkeypatch.delenv("SBATCH_TIMELIMIT", raising=False)
    monkeypatch.setenv("CUSTODIAN_WALLTIME_START", walltime_start())


@pytest.fixture
def vasp_log(tmp_path, monkeypatch):
    """A file listing every fake VASP run (folder and NSW)."""
    log = tmp_path / "vasp-runs.log"
    log.touch()
    monkeypatch.setenv("FAKE_VASP_LOG", str(log))
    return log


def li2o(a=4.9):
    """Antifluorite Li2O with its O first: amorph orders the POTCARs itself."""
    sites = antifluorite(a).sites
    return Structure.from_sites(sites[8:] + sites[:8])


def lih(a=4.1):
    return Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(a), ["Li", "H"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )


def md(work_dir, structure=None, steps=10, chunk=None, temperature=1000.0, settings=None):
    return MDTask(
        MDState(structure or li2o()),
        temperature,
        steps,
        settings or MDSettings(),
        work_dir,
        seed=2,
        chunk_steps=chunk,
    )


@pytest.mark.parametrize(
    ("structure", "time_step", "potcars"),
    [(li2o(), 2.0, ["Li_sv", "O"]), (lih(), 0.5, ["Li_sv", "H"])],
)
def test_md_inputs_are_the_papers(tmp_path, structure, time_step, potcars):
    result = SPEC.load().run_one(md(tmp_path, structure, steps=6, temperature=1500.0))
    folder = tmp_path / "md.vasp" / "chunk0000"
    incar = Incar.from_file(folder / "INCAR")
    expected = {
        "IBRION": 0,
        "MDALGO": 2,
        "SMASS": 0,
        "ISIF": 2,
        "ISYM": 0,
        "ISPIN": 1,
        "POTIM": time_step,
        "TEBEG": 1500,
        "TEEND": 1500,
        "NSW": 6,
        "PREC": "Normal",
        "ENCUT": 520,
        "NBLOCK": 1,
        "LWAVE": False,
    }
    assert {key: incar.get(key) for key in expected} == expected
    assert incar["EDIFF"] == pytest.approx(1e-5 * len(structure))
    kpoints = Kpoints.from_file(folder / "KPOINTS")
    assert kpoints.style == Kpoints.supported_modes.Gamma and tuple(kpoints.kpts[0]) == (1, 1, 1)
    assert Potcar.from_file(folder / "POTCAR").symbols == potcars
    poscar = Poscar.from_file(folder / "POSCAR", read_velocities=True)
    assert len(poscar.velocities) == len(structure)  # seeded Maxwell-Boltzmann velocities
    trajectory = Trajectory.load(result.trajectory_path)
    assert trajectory.n_frames == 6 and np.allclose(np.diff(trajectory.time_fs), time_step)
    assert result.time_step_fs == time_step and trajectory.metadata["engine"] == "vasp"


def test_options_update_the_default_incar(monkeypatch):
    monkeypatch.setenv("AMORPH_VASP_CMD", "srun vasp_gam")
    settings = VaspSettings.from_options({"md_incar": {"ENCUT": 600, "SMASS": 1.0}})
    incar = settings.md_set(li2o(), 2000.0, 50, 2.0, 5).incar
    assert (incar["ENCUT"], incar["SMASS"], incar["MDALGO"], incar["NBLOCK"]) == (600, 1.0, 2, 5)
    assert "EDIFF_PER_ATOM" not in incar and settings.command == "srun vasp_gam"
    with pytest.raises(InputError, match=r"unknown VASP option.s. incar_settings"):
        VaspSettings.from_options({"incar_settings": {}})


def test_only_nose_hoover_md_is_offered(tmp_path):
    with pytest.raises(
        InputError, match="runs Nosé–Hoover NVT \\(MDALGO = 2\\) only, not 'langevin'"
    ):
        SPEC.load().run_one(md(tmp_path, settings=MDSettings(thermostat="langevin")))


def test_pressures_follow_vasp_and_the_pipeline_conventions(tmp_path):
    engine = SPEC.load()
    result = engine.run_one(md(tmp_path / "virial", steps=12))
    outcar = (tmp_path / "virial" / "md.vasp" / "chunk0000" / "OUTCAR").read_text()
    external = [float(x) for x in re.findall(r"external pressure =\s*(\S+) kB", outcar)]
    with_kinetic = [
        np.mean([float(x) for x in line.split()[1:4]])
        for line in outcar.splitlines()
        if line.strip().startswith("Total+kin.")
    ]
    trajectory = Trajectory.load(result.trajectory_path)
    assert np.allclose(trajectory.virial_pressures, np.array(external) / 10, atol=1e-3)
    assert np.allclose(trajectory.total_pressures, np.array(with_kinetic) / 10, atol=1e-3)
    # VASP's kinetic term is 2 E_kin / 3V, i.e. (N - 1) k_B T / V with its 3N - 3 degrees of freedom
    n = trajectory.n_atoms
    ideal = (n - 1) * kB * trajectory.temperatures / trajectory.volumes * GPA
    assert np.allclose(trajectory.kinetic_pressures, ideal, rtol=1e-3, atol=2e-4)
    assert result.stats.pressure_GPa == pytest.approx(trajectory.virial_pressures[6:].mean())
    total = engine.run_one(
        md(tmp_path / "total", steps=12, settings=MDSettings(pressure_convention="total"))
    )
    assert total.stats.pressure_GPa == pytest.approx(trajectory.total_pressures[6:].mean())
    assert total.stats.pressure_GPa > result.stats.pressure_GPa + 0.5


def test_killed_chunk_is_rerun_from_the_last_complete_one(tmp_path, vasp_log, monkeypatch):
    engine = SPEC.load()
    reference = engine.run_one(md(tmp_path / "reference", steps=30, chunk=10))
    monkeypatch.setenv("FAKE_VASP_FAIL", "killed:4")
    monkeypatch.setenv("FAKE_VASP_FAIL_ON_RUN", "6")  # the third chunk of the second run
    with pytest.raises(
        EngineError,
        match=r"^VASP MD of Li2O at 1000 K, chunk 3 of 3: VASP ran 4 of 10 ionic steps "
        r"in .*chunk0002; custodian: Job return code is -9; vasp.out: +4 F= [^\n]*$",
    ):
        engine.run_one(md(tmp_path / "run", steps=30, chunk=10))
    assert sorted(p.name for p in (tmp_path / "run").glob("*.npz")) == [
        "md.checkpoint.npz",
        "md.chunk0000.npz",
        "md.chunk0001.npz",
    ]
    monkeypatch.delenv("FAKE_VASP_FAIL")
    resumed = engine.run_one(md(tmp_path / "run", steps=30, chunk=10))
    runs = vasp_log.read_text().splitlines()
    assert len(runs) == 7 and runs[-1].endswith("chunk0002 NSW=10")  # only the killed chunk again
    assert resumed.n_force_calls == 10
    a, b = Trajectory.load(reference.trajectory_path), Trajectory.load(resumed.trajectory_path)
    assert np.array_equal(a.time_fs, b.time_fs) and np.allclose(np.diff(b.time_fs), 2.0)
    assert np.allclose(a.positions, b.positions, atol=1e-6) and np.allclose(a.energies, b.energies)
    assert np.abs(np.diff(b.positions, axis=0)).max() < 0.5  # unwrapped across chunk boundaries too
    contcar = Poscar.from_file(
        tmp_path / "run" / "md.vasp" / "chunk0001" / "CONTCAR", read_velocities=True
    )
    poscar = Poscar.from_file(
        tmp_path / "run" / "md.vasp" / "chunk0002" / "POSCAR", read_velocities=True
    )
    assert np.allclose(contcar.velocities, poscar.velocities)
    assert np.allclose(contcar.structure.frac_coords, poscar.structure.frac_coords)
    assert sorted(p.name for p in (tmp_path / "run").glob("*.npz")) == ["md.npz"]
    assert np.allclose(resumed.final_state.velocities, reference.final_state.velocities)


def test_completed_run_is_not_repeated(tmp_path, vasp_log):
    engine = SPEC.load()
    first = engine.run_one(md(tmp_path, steps=4))
    again = engine.run_one(md(tmp_path, steps=4))
    assert len(vasp_log.read_text().splitlines()) == 1
    assert again.trajectory_path == first.trajectory_path and again.n_force_calls == 0


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        (
            "no-output",
            (
                r"VASP wrote no output in .*chunk0000; custodian: Job return code is 1; "
                r"vasp.out: ERROR: fake VASP asked"
            ),
        ),
        (
            "killed:2",
            r"VASP ran 2 of 3 ionic steps in .*chunk0000; custodian: Job return code is -9",
        ),
        (  # custodian's ALGO ladder cycles to no avail
            "unconverged",
            (
                r"VASP ran [0-3] of 3 ionic steps in .*chunk0000; "
                r"custodian: Max errors per job reached: 5 \(errors met: SCF unconverged at NELM\)"
            ),
        ),
    ],
)
def test_failed_vasp_runs_stop_with_the_reason(tmp_path, monkeypatch, failure, message):
    monkeypatch.setenv("FAKE_VASP_FAIL", failure)
    with pytest.raises(EngineError, match=rf"^VASP MD of Li2O at 1000 K, chunk 1 of 1: {message}"):
        SPEC.load().run_one(md(tmp_path, steps=3))
    assert not (tmp_path / "md.npz").exists()


@pytest.fixture(scope="module")
def error_free(tmp_path_factory):
    """A 2-chunk run without errors, to compare recovered runs with."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(SETTINGS, "PMG_VASP_PSP_DIR", str(potcars(tmp_path_factory)))
        result = SPEC.load().run_one(md(tmp_path_factory.mktemp("error_free"), steps=12, chunk=6))
    return Trajectory.load(result.trajectory_path)


@pytest.mark.parametrize(
    ("error", "handler", "fix"),
    [
        ("edddav", "VaspErrorHandler", {"ALGO": "All"}),
        ("subspace", "VaspErrorHandler", {"LREAL": False}),
        ("zbrent", "VaspErrorHandler", {"NELMIN": 8}),  # and CONTCAR to POSCAR, undone
        ("grad_not_orth", "StdErrHandler", {"NBANDS": 26}),  # 10 % more than the OUTCAR's 24
        ("scf", "UnconvergedStepHandler", {"ALGO": "Normal"}),
        ("positive", "PositiveEnergyErrorHandler", {"ALGO": "Normal"}),
    ],
)
def test_custodian_fixes_errors_and_the_chunk_is_rerun_whole(
    tmp_path, monkeypatch, vasp_log, error_free, error, handler, fix
):
    monkeypatch.setenv("FAKE_VASP_FAIL", error)  # until the INCAR holds custodian's fix
    result = SPEC.load().run_one(md(tmp_path, steps=12, chunk=6))
    assert len(vasp_log.read_text().splitlines()) == 4  # each chunk: the error, then fixed
    for chunk in ("chunk0000", "chunk0001"):
        folder = tmp_path / "md.vasp" / chunk
        (run,) = json.loads((folder / "custodian.json").read_text())
        (correction,) = run["corrections"]
        assert correction["handler"]["@class"] == handler
        incar = Incar.from_file(folder / "INCAR")
        assert {key: incar[key] for key in fix} == fix
        assert (folder / "POSCAR").read_text() == (folder / "POSCAR.orig").read_text()
    trajectory = Trajectory.load(result.trajectory_path)
    assert sorted(trajectory.metadata["vasp_corrections"]) == ["0", "1"]
    assert np.array_equal(trajectory.time_fs, error_free.time_fs)
    assert np.array_equal(trajectory.positions, error_free.positions)
    assert np.array_equal(trajectory.energies, error_free.energies)


def test_a_correction_that_changes_the_md_stops_the_run(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_VASP_FAIL", "eddrmm")
    options = {**SPEC.options, "md_incar": {"ALGO": "Normal"}}
    with pytest.raises(
        EngineError,
        match=r"^VASP MD of Li2O at 1000 K, chunk 1 of 1: custodian's corrections changed the MD "
        r"itself \(POTIM 2.0 -> 1.0\) in .*chunk0000$",
    ):
        EngineSpec("vasp", options=options).load().run_one(md(tmp_path, steps=6))
    assert not list(tmp_path.glob("*.npz"))


def test_no_chunk_runs_into_the_walltime_and_a_rerun_resumes(
    tmp_path, monkeypatch, vasp_log, error_free
):
    tight = EngineSpec("vasp", options={**SPEC.options, "wall_time_s": 302})  # buffer: 300 s
    monkeypatch.setenv("FAKE_VASP_STEP_SECONDS", "0.5")  # 3 s a chunk: custodian stops it at 2 s
    with pytest.raises(
        WalltimeReached,
        match=r"^VASP MD of Li2O at 1000 K, chunk 1 of 2: VASP ran [1-5] of 6 ionic steps in "
        r".*chunk0000: stopped cleanly by custodian's WalltimeHandler \(STOPCAR\); run again",
    ):
        tight.load().run_one(md(tmp_path, steps=12, chunk=6))
    assert (tmp_path / "md.vasp" / "chunk0000" / "STOPCAR").exists()
    assert not list(tmp_path.glob("*.npz"))
    monkeypatch.setenv("CUSTODIAN_WALLTIME_START", walltime_start(seconds_ago=10))
    with pytest.raises(WalltimeReached, match=r"chunk 1 of 2: not started with 29\d s of the"):
        tight.load().run_one(md(tmp_path, steps=12, chunk=6))
    assert len(vasp_log.read_text().splitlines()) == 1
    monkeypatch.delenv("FAKE_VASP_STEP_SECONDS")
    resumed = SPEC.load().run_one(md(tmp_path, steps=12, chunk=6))
    trajectory = Trajectory.load(resumed.trajectory_path)
    assert np.array_equal(trajectory.positions, error_free.positions)
    assert trajectory.metadata["vasp_corrections"] == {}


def test_paper_inputs_are_mpmdsets(tmp_path):
    structure = li2o()
    settings = VaspSettings.from_options({"inputs": "paper"})
    ours = settings.md_set(structure, 3000.0, 50, 2.0, 1).incar
    published = MPMDSet(structure, start_temp=3000.0, end_temp=3000.0, nsteps=50, time_step=2.0)
    assert ours == published.incar and ours["ISIF"] == 0 and "ENCUT" not in ours
    amorph = VaspSettings.from_options({}).md_set(structure, 3000.0, 50, 2.0, 1).incar
    differences = {"ISIF": 2, "ENCUT": 520, "LREAL": "Auto"}
    assert {k: amorph[k] for k in differences} == differences
    paper = EngineSpec("vasp", options={**SPEC.options, "inputs": "paper"})
    trajectory = Trajectory.load(paper.load().run_one(md(tmp_path, steps=4)).trajectory_path)
    assert np.isnan(trajectory.virial_pressures).all()  # ISIF = 0: VASP computes no stress
    with pytest.raises(EngineError, match="unknown VASP MD inputs 'mpmorph'; known: amorph, paper"):
        VaspSettings.from_options({"inputs": "mpmorph"})


def test_relax_and_static_report_energy_and_convergence(tmp_path, monkeypatch):
    engine = SPEC.load()
    relaxed = engine.relax(li2o(5.2), tmp_path / "short", fmax=0.01, max_steps=3)
    assert (relaxed.converged, relaxed.steps) == (
        False,
        3,
    )  # NSW used up before forces fell below 0.01
    relaxed = engine.relax(li2o(5.2), tmp_path / "long", fmax=0.5, max_steps=100)
    assert relaxed.converged and relaxed.steps < 100 and relaxed.structure.volume < li2o(5.2).volume
    energy = engine.static(relaxed.structure, tmp_path / "long")
    outcar = (tmp_path / "long" / "static" / "OUTCAR").read_text()
    assert energy == pytest.approx(float(re.search(r"energy\(sigma->0\) =\s*(\S+)", outcar)[1]))
    monkeypatch.setenv("FAKE_VASP_FAIL", "unconverged")
    with pytest.raises(
        EngineError,
        match=r"^VASP ran 1 ionic steps in .*static; custodian: UnconvergedStepHandler has no "
        r"fix \(errors met: SCF unconverged at NELM\); vasp.out: +1 F= \S+$",
    ):
        engine.static(relaxed.structure, tmp_path / "unconverged")


def test_missing_vasp_configuration_is_reported_before_any_run(tmp_path, monkeypatch):
    with pytest.raises(EngineError, match="no usable POTCAR Si for Si"):
        SPEC.load().check_elements(["Li", "Si"])
    with pytest.raises(EngineError, match="cannot run the VASP command '/nowhere/vasp_std'"):
        vasp_engine(EngineSpec("vasp", options={"command": "/nowhere/vasp_std"})).run_one(
            md(tmp_path, steps=2)
        )
    monkeypatch.delitem(SETTINGS, "PMG_VASP_PSP_DIR")
    with pytest.raises(
        EngineError, match=r"^VASP POTCARs are not configured: set PMG_VASP_PSP_DIR [^\n]*$"
    ):
        vasp_engine(SPEC)


def test_volume_search_check_and_production_flows_run_with_vasp(tmp_path, vasp_log):
    settings = MDSettings(thermostat_time_fs=20.0)
    targets = [Target(li2o(), 1000.0, "Li2O")]
    stage = {"md": settings, "engine": SPEC, "seed": 3}
    search = VolumeSearchMaker(duration_ps=0.02, **stage).make(targets)
    check = CheckRunMaker(duration_ps=0.02, max_attempts=1, **stage).make(targets, search.output)
    production = ProductionMaker(duration_ps=0.04, chunk_ps=0.02, **stage).make(
        targets, [check.output[0].final_state]
    )
    flow = Flow([search, check, production])
    store = memory_store()
    run_jobs(flow, store, tmp_path / "jobs")
    (result,) = search.output.resolve(store)
    pressures = [p.pressure_GPa for p in result.points]
    assert min(pressures) < 0 < max(pressures)  # bracketed by the fake's P(V)
    assert (
        min(p.volume_A3 for p in result.points)
        < result.volume_A3
        < max(p.volume_A3 for p in result.points)
    )
    (checked,) = check.output.resolve(store)
    assert checked.volume_A3 == pytest.approx(result.volume_A3, rel=1e-6)
    (produced,) = production.output.resolve(store)
    trajectory = Trajectory.load(produced.trajectory_path)
    assert trajectory.n_frames == 20 and trajectory.metadata["chunk_steps"] == 10
    nsw = [int(line.rsplit("=", 1)[1]) for line in vasp_log.read_text().splitlines()]
    # EOS runs, the basis-set stress (two single points), one check run, two production chunks
    assert nsw == [10] * 3 + [0, 0] + [10] * (len(result.points) - 3 + 1 + 2)


def test_the_volume_search_aims_at_zero_pressure_at_the_converged_basis(tmp_path):
    """The fake VASP's stress lacks 2 GPa × exp(-(ENCUT - 400 eV) / 100 eV): the search measures
    what 520 eV lacks against 780 eV, and finds the volume where the corrected P(V) is zero."""
    stage = {"md": MDSettings(thermostat_time_fs=20.0), "seed": 3, "duration_ps": 0.02}
    searches = {}
    for correct in (True, False):
        spec = EngineSpec("vasp", options={**SPEC.options, "basis_correction": correct})
        targets = [Target(li2o(), 1000.0, "Li2O", str(tmp_path / str(correct)))]
        flow = VolumeSearchMaker(engine=spec, **stage).make(targets)
        store = memory_store()
        run_locally(flow, store=store, root_dir=tmp_path, raise_immediately=True, log=False)
        (searches[correct],) = flow.output.resolve(store)
    corrected, plain = searches[True], searches[False]
    expected = 2.0 * (np.exp(-1.2) - np.exp(-3.8))
    assert corrected.basis.cutoff_eV == 520 and corrected.basis.converged_cutoff_eV == 780
    assert corrected.basis.correction_GPa == pytest.approx(expected, abs=0.01)
    assert plain.basis is None
    shared = min(len(corrected.points), len(plain.points))
    for a, b in zip(corrected.points[:shared], plain.points[:shared], strict=True):
        assert a.pressure_GPa - b.pressure_GPa == pytest.approx(corrected.basis.correction_GPa)
    assert corrected.volume_A3 > plain.volume_A3  # higher pressures: zero at a larger volume
    # where the corrected search puts zero, the run's own (uncorrected) P(V) reads -correction
    volumes, pressures = np.array(sorted((p.volume_A3, p.pressure_GPa) for p in plain.points)).T
    assert np.interp(corrected.volume_A3, volumes, pressures) == pytest.approx(-expected, abs=0.1)


def test_single_points_come_back_in_the_structures_atom_order(tmp_path):
    """VASP sorts atoms by electronegativity; evaluate() hands forces back in the structure's own
    order, and the stress (kB, VASP's sign) as ASE's eV/Å³: equal to the fake's model."""
    from fake_vasp import Model

    structure = li2o(4.7)
    structure.perturb(0.05, 0.05)
    mixed = Structure.from_sites([structure[i] for i in (5, 0, 9, 1, 2, 3, 4, 6, 7, 8, 10, 11)])
    (point,) = SPEC.load().evaluate([mixed], tmp_path)
    from pymatgen.io.ase import AseAtomsAdaptor

    atoms = AseAtomsAdaptor.get_atoms(mixed)
    energy, forces, stress_kbar = Model(list(atoms.symbols), 520).evaluate(atoms)
    assert point.energy_eV == pytest.approx(energy, abs=1e-5)
    assert np.allclose(point.forces, forces, atol=1e-5)
    assert point.virial_pressure_GPa == pytest.approx(np.trace(stress_kbar) / 30, abs=1e-4)
    assert (tmp_path / "point0000" / "vasprun.xml").exists()
