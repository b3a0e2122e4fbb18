"""amorph's melt-quench flows for real on a single-node SLURM cluster and a MongoDB wire server.

- jobflow-remote: ``amorph submit`` puts CHGNet flows of two compositions into a project made from
  ``inputs/jobflow_remote_local_slurm.yaml``; its runner sbatches every job; ``amorph db``,
  ``publish --dry-run`` read the results back through the project file.
- The fault: the melt production of one composition is killed with ``scancel`` after it wrote a
  checkpointed chunk, jobflow-remote marks it failed, ``jf job rerun`` runs it again, and it goes on
  from its checkpoint: no frame lost or repeated, and fewer force calls than the whole run.
- FireWorks: the same flow of one composition via ``flow_to_workflow`` and ``qlaunch rapidfire``
  (SLURM CommonAdapter from ``inputs/fireworks_qadapter_slurm.yaml``), its JobStore from a jobflow
  settings file.
- Dask: ``amorph campaign --executor slurm`` with Lennard-Jones workers started as SLURM jobs.
- The audit/tune loop: ``amorph submit --tune-with gpaw`` of a 9-atom Li2S; its DFT frames, the
  tuning and the next round are SLURM jobs of one flow, its record read back with ``db show``.

The jobflow-remote flows start first and run in the background (a watcher thread does the kill and
the rerun) while the FireWorks and Dask tests run: the node advertises more CPUs than it has, so
their SLURM jobs need not wait for each other. Needs root; every daemon started here is stopped by
``.ci/services/stop.sh`` at the end of the module, whatever the outcome.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # also works under --import-mode=importlib
    sys.path.insert(0, str(HERE))

import services  # noqa: E402
from builders import lj_options  # noqa: E402

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(os.geteuid() != 0, reason="the SLURM cluster needs root"),
]

PROJECT = "amorph_ci"
FORMULAS = ("Li2O", "LiF")
FAULTY = "LiF"  # its melt production is killed and rerun
MELT, QUENCH = 2000, 1500
# 12 atoms, 0.1 ps volume-search and check runs from 15 Å³/atom (0.8/1.0/1.2 × that brackets zero
# pressure of both melts with CHGNet in so small a cell), 0.3 ps production in 6 checkpointed
# chunks of 0.05 ps.
PROTOCOL = ["--preset", "demo", "--atoms", "12", "--volume-per-atom", "15",
            "--temperatures", str(MELT), str(QUENCH), "--eos-ps", "0.1", "--check-ps", "0.1",
            "--production-ps", "0.3", "--chunk-ps", "0.05"]  # fmt: skip
TUNED = "Li2S"  # the audit/tune loop: tiny cell, short runs, GPAW at 300 eV, Γ, 2 frames a job
TUNE_PROTOCOL = ["--preset", "demo", "--atoms", "9", "--temperatures", "3000", "--eos-ps", "0.1",
                 "--check-ps", "0.1", "--production-ps", "0.2", "--second-opinion", "none",
                 "--tune-with", "gpaw", "--tune-rounds", "1", "--audit-frames", "4",
                 "--audit-frames-per-job", "2", "--audit-option=cutoff_eV=300",
                 "--audit-option=kpoints=[1, 1, 1]", '--audit-option=setups={"Li": "paw"}',
                 "--audit-option=scf_energy_eV=1e-4",
                 "--audit-option=scf_density=1e-4"]  # fmt: skip
# A melt near zero pressure is less dense than its crystal (Li2O 2.01, LiF 2.64 g/cm³) yet far
# denser than a gas; 12 atoms and 0.1 ps runs leave the volume uncertain by tens of percent.
DENSITY_G_CM3 = (0.6, 3.0)
SLURM_CPUS = 8  # 2 real cores; jobs of the four parts share them
FLOW_TIMEOUT = float(os.environ.get("AMORPH_CI_FLOW_TIMEOUT", 900))


def _timed(label: str, t0: float) -> None:
    print(f"[timing] {label}: {time.monotonic() - t0:.1f} s")


def amorph(*args: str, env: dict, cwd: Path, timeout: float = 300, check: bool = True):
    """Run the ``amorph`` command line; fail with its output when it fails."""
    cmd = [sys.executable, "-m", "amorph.cli", *args]
    cp = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if check and cp.returncode != 0:
        command = " ".join(args)
        raise AssertionError(f"amorph {command} exited {cp.returncode}:\n{cp.stdout}\n{cp.stderr}")
    return cp


def listed(stdout: str) -> dict[str, list[str]]:
    """``amorph db list`` rows by formula: engine, atoms, temperatures..., ρ at the lowest T, ..."""
    return {line.split()[0]: line.split()[1:] for line in stdout.splitlines()[1:] if line.strip()}


@pytest.fixture(scope="module")
def cluster():
    t0 = time.monotonic()
    with services.running(slurm_cpus=SLURM_CPUS) as running:
        _timed("cluster start", t0)
        yield running


@dataclass(eq=False)
class ProductionKill:
    """Kill a production job once it has written a chunk but not its trajectory, then rerun it.

    In a thread: waits until ``run_folder`` holds ``production.chunk*.npz`` but no
    ``production.npz`` while the job runs, cancels its SLURM job, waits until jobflow-remote marks
    the job failed, copies the chunks left on disk to ``copies`` and runs ``jf job rerun``
    (``retry`` after a remote error). ``error`` holds whatever went wrong.
    """

    jfr: dict = field(repr=False)
    job_uuid: str
    run_folder: Path
    copies: Path
    timeout: float
    slurm_id: str = ""
    squeue_at_kill: list[str] = field(default_factory=list)
    failed_state: str = ""
    command: str = ""
    chunks: list[str] = field(default_factory=list)
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="production-kill")
        self.thread.start()

    def _run(self) -> None:
        try:
            self._kill_and_rerun()
        except BaseException as exc:  # reported by the test that joins
            self.error = exc

    def join(self, timeout: float) -> None:
        """Wait for the rerun to be issued; raise what went wrong in the thread."""
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise TimeoutError(f"no kill and rerun within {timeout:.0f} s")
        if self.error is not None:
            raise self.error

    def _wait(self, predicate, timeout: float, what: str, poll: float = 0.5):
        end = time.monotonic() + timeout
        while not self.stopped.is_set():
            result = predicate()
            if result:
                return result
            if time.monotonic() > end:
                raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(poll)
        raise RuntimeError("stopped")

    def _kill_and_rerun(self) -> None:
        from jobflow_remote.jobs.state import JobState

        jc, final = self.jfr["jc"], self.run_folder / "production.npz"

        def running_with_a_chunk():
            if final.exists():
                raise AssertionError(f"{final} was written before the job could be killed")
            if not any(self.run_folder.glob("production.chunk*.npz")):
                return None
            info = jc.get_job_info(job_id=self.job_uuid)
            return info if info.state in (JobState.SUBMITTED, JobState.RUNNING) else None

        info = self._wait(running_with_a_chunk, self.timeout, "a production chunk", 0.25)
        t0 = time.monotonic()
        self.slurm_id = str(info.remote.process_id)
        self.squeue_at_kill = self.jfr["cluster"].squeue()
        subprocess.run(["scancel", self.slurm_id], env=self.jfr["env"], check=False)
        ended = (JobState.FAILED, JobState.REMOTE_ERROR, JobState.COMPLETED)
        info = self._wait(
            lambda: (i := jc.get_job_info(job_id=self.job_uuid)).state in ended and i,
            120,
            "the killed job to fail",
        )
        self.failed_state = info.state.name
        if info.state == JobState.COMPLETED:
            raise AssertionError("the production finished before scancel reached it")
        self.copies.mkdir(parents=True, exist_ok=True)
        for chunk in sorted(self.run_folder.glob("production.chunk*.npz")):
            shutil.copy2(chunk, self.copies / chunk.name)
            self.chunks.append(chunk.name)
        self.command = "rerun" if info.state == JobState.FAILED else "retry"
        services.jf(PROJECT, "job", self.command, self.job_uuid, env=self.jfr["env"])
        _timed(f"fault: scancel after {len(self.chunks)} chunk(s), {self.command} issued", t0)


@pytest.fixture(scope="module")
def jfr(cluster, tmp_path_factory):
    """Both compositions submitted with ``amorph submit``, the runner running, and the watcher
    that kills and reruns the faulty composition's melt production."""
    import jobflow_remote
    from jobflow_remote import ConfigManager

    tmp = tmp_path_factory.mktemp("jfr")
    folder, work = tmp / "projects", tmp / "work"
    project_file = services.write_jfr_project(
        folder, PROJECT, mongo_port=cluster.mongo_port, work_dir=work, database=PROJECT,
        pre_run="export OMP_NUM_THREADS=1", delay=1.0,
    )  # fmt: skip
    env = cluster.env(JFREMOTE_PROJECTS_FOLDER=str(folder), OMP_NUM_THREADS="1")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JFREMOTE_PROJECTS_FOLDER", str(folder))
        mp.setattr(jobflow_remote.SETTINGS, "projects_folder", str(folder))
        t0 = time.monotonic()
        project = ConfigManager().get_project(PROJECT)
        jc = project.get_job_controller()
        assert jc.reset(reset_output=True, max_limit=0)
        submit_dir = tmp / "submit"
        submit_dir.mkdir()
        out = amorph("submit", *FORMULAS, *PROTOCOL, "--project", PROJECT, env=env, cwd=submit_dir)
        flows = dict(re.findall(r"submitted (\S+): flow (\S+)", out.stdout))
        tune = amorph(
            "submit", TUNED, *TUNE_PROTOCOL, "--project", PROJECT, env=env, cwd=submit_dir
        )
        (tune_flow,) = re.findall(rf"submitted {TUNED}: flow (\S+)", tune.stdout)
        _timed("jobflow-remote: reset + amorph submit", t0)
        started = time.monotonic()
        services.jfr_runner_start(cluster, PROJECT, env, Path(project.base_dir))
        _timed("jobflow-remote: runner start", started)
        jobs = jc.get_jobs_info(flow_ids=[flows[FAULTY]], name=f"production {FAULTY} {MELT} K")
        state = {"cluster": cluster, "env": env, "jc": jc, "project": project,
                 "project_file": project_file, "flows": flows, "stdout": out.stdout,
                 "t0": t0, "tune_flow": tune_flow}  # fmt: skip
        state["kill"] = kill = ProductionKill(
            state, jobs[0].uuid, work / "amorph-runs" / FAULTY / f"{MELT}K", tmp / "chunks",
            FLOW_TIMEOUT,
        )  # fmt: skip
        try:
            yield state
        finally:
            kill.stopped.set()
            kill.thread.join(30)
            services.jfr_runner_stop(cluster, PROJECT, env)


@pytest.fixture(scope="module")
def completed(jfr):
    """The jobflow-remote flows, completed (after the kill and the rerun, whose errors
    ``test_killed_production_resumes...`` reports)."""
    jfr["kill"].thread.join(FLOW_TIMEOUT)
    infos = services.wait_flows(jfr["jc"], list(jfr["flows"].values()), timeout=FLOW_TIMEOUT)
    jobs = len(jfr["jc"].get_jobs_info(flow_ids=list(jfr["flows"].values())))
    _timed(f"jobflow-remote: submit to both flows completed ({jobs} SLURM jobs)", jfr["t0"])
    return infos


@pytest.mark.timeout(300)
def test_amorph_submit_queues_both_flows_for_the_slurm_worker(jfr):
    assert sorted(jfr["flows"]) == sorted(FORMULAS)
    assert f"jobs in project {PROJECT} for worker slurm_local" in jfr["stdout"]
    jobs = jfr["jc"].get_jobs_info(flow_ids=list(jfr["flows"].values()))
    assert {job.worker for job in jobs} == {"slurm_local"}
    names = {job.name for job in jobs}
    for formula in FORMULAS:
        assert {"random cell", f"collect {formula}"} <= names
        assert {f"production {formula} {t} K" for t in (MELT, QUENCH)} <= names


@pytest.mark.timeout(600)
def test_fireworks_qlaunch_runs_the_flow_on_slurm(cluster, tmp_path):
    from fireworks import LaunchPad
    from jobflow.managers.fireworks import flow_to_workflow

    from amorph.flows.presets import protocol_maker
    from amorph.flows.volume import CheckRunMaker

    paths = services.write_fireworks_configs(
        tmp_path / "config", mongo_port=cluster.mongo_port, database="amorph_ci_fireworks",
        store_database="amorph_ci_fw_outputs", pre_rocket="export OMP_NUM_THREADS=1",
    )  # fmt: skip
    maker = protocol_maker(
        "demo", atoms=12, volume_per_atom=15, temperatures=[MELT, QUENCH], eos_ps=0.1,
        check_ps=0.1, production_ps=0.1, chunk_ps=0.05, run_dir=str(tmp_path / "runs"),
        store_trajectory=True,
    )  # fmt: skip
    # no check run converges: each check job replaces itself once (a FireWork added at run time)
    maker = maker.update_kwargs({"pressure_tolerance_GPa": 1e-3}, class_filter=CheckRunMaker)
    flow = maker.make("Li2O")
    launchpad = LaunchPad.from_file(str(paths["launchpad"]))
    launchpad.reset("", require_password=False)
    launchpad.add_wf(flow_to_workflow(flow))  # no store: the workers' JOB_STORE
    first_fw = launchpad.get_fw_ids()[0]

    launch_dir = tmp_path / "launch"
    launch_dir.mkdir()
    qlaunch = Path(sys.executable).parent / "qlaunch"
    cmd = [str(qlaunch), "-l", str(paths["launchpad"]), "-w", str(paths["fworker"]),
           "-q", str(paths["qadapter"]), "--launch_dir", str(launch_dir),
           "rapidfire", "--nlaunches", "1"]  # fmt: skip
    env = cluster.env(OMP_NUM_THREADS="1")  # JOBFLOW_CONFIG_FILE: exported by pre_rocket
    t0 = time.monotonic()
    log = tmp_path / "qlaunch.log"
    with open(log, "w") as handle:
        proc = subprocess.Popen(
            cmd, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
    cluster.register_pid("qlaunch", proc.pid)
    try:

        def workflow_done():
            state = launchpad.workflows.find_one({"nodes": first_fw}, {"state": 1})["state"]
            if state in ("FIZZLED", "DEFUSED", "PAUSED"):
                raise AssertionError(f"workflow {state}:\n{log.read_text()}")
            return state == "COMPLETED"

        services.wait_for(workflow_done, FLOW_TIMEOUT, "the FireWorks workflow")
        _timed("FireWorks: qlaunch to workflow completed", t0)
        assert proc.wait(60) == 0  # one queue job ran it all
    finally:
        services.terminate(proc)
    fws = launchpad.fireworks.count_documents({})
    assert fws > len(flow.job_uuids)  # the check jobs added FireWorks while running
    outputs = list(launch_dir.glob("block_*/launcher_*/amorph_fw-*.out"))
    assert len(outputs) == 1, outputs  # the rockets ran in one SLURM job

    cp = amorph("db", "list", "--store", str(paths["jobflow"]), env=env, cwd=tmp_path)
    row = listed(cp.stdout)["Li2O"]
    assert row[0] == "chgnet" and row[2:4] == [str(MELT), str(QUENCH)], cp.stdout
    assert DENSITY_G_CM3[0] < float(row[4]) < DENSITY_G_CM3[1], cp.stdout


@pytest.mark.timeout(600)
def test_campaign_on_dask_workers_started_as_slurm_jobs(cluster, tmp_path):
    compositions = tmp_path / "compositions.txt"
    compositions.write_text("Ar\nKr\n")
    outputs = tmp_path / "outputs"
    # network settings of dask-jobqueue for a single node: everything on the loopback
    env = cluster.env(
        PYTHONPATH=os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")])),
        OMP_NUM_THREADS="1",
        DASK_JOBQUEUE__SLURM__SCHEDULER_OPTIONS__HOST=services.HOST,
        DASK_JOBQUEUE__SLURM__WORKER_EXTRA_ARGS=json.dumps(["--host", services.HOST]),
    )
    t0 = time.monotonic()
    cp = amorph(
        "campaign", str(compositions), *lj_options(), "--outputs", str(outputs),
        "--executor", "slurm", "--workers", "2", "--slurm-partition", "debug",
        "--slurm-walltime", "00:20:00", "--slurm-memory", "2GB",
        env=env, cwd=tmp_path, timeout=540,
    )  # fmt: skip
    _timed("dask-jobqueue: amorph campaign (2 SLURM workers)", t0)
    assert "2 of 2 compositions done" in cp.stdout
    status = json.loads((outputs / "campaign.json").read_text())
    assert {f: s["status"] for f, s in status.items()} == {"Ar": "done", "Kr": "done"}
    assert status["Ar"]["temperatures_K"] == [100.0, 80.0]
    worker_logs = list(tmp_path.glob("slurm-*.out"))
    assert len(worker_logs) == 2, worker_logs  # two dask workers, each a SLURM job

    cp = amorph("db", "list", "--outputs", str(outputs), env=env, cwd=tmp_path)
    rows = listed(cp.stdout)
    assert sorted(rows) == ["Ar", "Kr"], cp.stdout
    assert all(row[2:4] == ["100", "80"] for row in rows.values()), cp.stdout


@pytest.mark.timeout(1200)
def test_jobflow_remote_results_read_back_through_the_project_file(jfr, completed, tmp_path):
    store = ["--store", str(jfr["project_file"])]
    env = jfr["env"]
    cp = amorph("db", "list", *store, env=env, cwd=tmp_path)
    rows = {formula: row for formula, row in listed(cp.stdout).items() if formula != TUNED}
    assert sorted(rows) == sorted(FORMULAS), cp.stdout
    for row in rows.values():
        assert row[0] == "chgnet" and row[1] == "12" and row[2:4] == [str(MELT), str(QUENCH)]
        assert DENSITY_G_CM3[0] < float(row[4]) < DENSITY_G_CM3[1], cp.stdout

    for formula in FORMULAS:
        cp = amorph("db", "show", formula, *store, "--json", env=env, cwd=tmp_path)
        stages = json.loads(cp.stdout)
        assert [s["temperature_K"] for s in stages] == [MELT, QUENCH]
        assert all(DENSITY_G_CM3[0] < s["density_g_cm3"] < DENSITY_G_CM3[1] for s in stages)
        assert all(s["trajectory"]["in_data_store"] for s in stages)  # GridFS

    for formula in FORMULAS:
        cp = amorph(
            "publish", "--project", PROJECT, "--formula", formula, "--dry-run", *store, env=env,
            cwd=tmp_path,
        )  # fmt: skip
        assert "2 valid, 0 invalid" in cp.stdout, cp.stdout


@pytest.mark.timeout(1200)
def test_killed_production_resumes_from_its_checkpoint_when_rerun(jfr, completed):
    from monty.json import MontyDecoder

    from amorph.trajectory import Trajectory

    kill = jfr["kill"]
    kill.join(0)  # raises what went wrong in the watcher
    assert kill.slurm_id in kill.squeue_at_kill  # a real SLURM job was cancelled
    assert kill.failed_state in ("FAILED", "REMOTE_ERROR")
    info = jfr["jc"].get_job_info(job_id=kill.job_uuid)
    assert info.state.name == "COMPLETED"
    assert str(info.remote.process_id) != kill.slurm_id  # the rerun was another SLURM job

    store = jfr["project"].get_jobstore()
    store.connect()
    try:
        output = store.get_output(kill.job_uuid, load=True)  # the trajectory from GridFS
    finally:
        store.close()
    (result,) = MontyDecoder().process_decoded(output)
    trajectory = result.trajectory
    interval = trajectory.metadata["sample_interval"]
    chunk_steps = trajectory.metadata["chunk_steps"]
    n_chunks = -(-result.steps // chunk_steps)
    assert 1 <= len(kill.chunks) < n_chunks, kill.chunks  # killed part-way

    # no frame lost or repeated: every sample interval once, evenly spaced
    assert trajectory.n_frames == result.steps // interval
    steps = np.diff(trajectory.time_fs)
    assert np.all(steps > 0) and np.allclose(steps, interval * result.time_step_fs)
    assert trajectory.time_fs[-1] == pytest.approx(result.steps * result.time_step_fs)
    # the rerun integrated only what was left after the chunks it found
    assert result.steps - len(kill.chunks) * chunk_steps <= result.n_force_calls < result.steps
    # the frames written before the kill are those of the final trajectory
    per_chunk = chunk_steps // interval
    for name in kill.chunks:
        index = int(name.removeprefix("production.chunk").removesuffix(".npz"))
        chunk = Trajectory.load(kill.copies / name)
        frames = slice(index * per_chunk, index * per_chunk + chunk.n_frames)
        assert chunk.n_frames == per_chunk
        for key in ("positions", "time_fs", "energies", "temperatures"):
            assert np.array_equal(getattr(chunk, key), getattr(trajectory, key)[frames]), key


@pytest.mark.timeout(1200)
def test_the_audit_tune_loop_runs_as_slurm_jobs_of_one_flow(jfr, tmp_path):
    """DFT frames in parallel jobs, the tuning one job that replaces itself by the next round; its
    record (a TuningDoc) read back through the project file."""
    services.wait_flows(jfr["jc"], [jfr["tune_flow"]], timeout=FLOW_TIMEOUT)
    jobs = jfr["jc"].get_jobs_info(flow_ids=[jfr["tune_flow"]])
    names = [job.name for job in jobs]
    assert {job.worker for job in jobs} == {"slurm_local"}
    name = f"{TUNED} 3000 K"
    assert {f"dft {name} frames 1-2", f"dft {name} frames 3-4", f"tune {TUNED} round 0"} <= set(
        names
    )
    frames = [job for job in jobs if job.name.startswith(f"dft {name} frames ")]
    assert len({str(job.remote.process_id) for job in frames}) == len(frames)  # own SLURM jobs
    store = ["--store", str(jfr["project_file"])]
    shown = amorph("db", "show", TUNED, *store, env=jfr["env"], cwd=tmp_path).stdout
    loop = shown[shown.index(f"audit/tune loop of {TUNED} against gpaw:") :].splitlines()
    assert loop[1].startswith("round 0, stock: P − P_DFT (GPa) 3000 K ")
    (stage,) = json.loads(amorph("db", "show", TUNED, *store, "--json", env=jfr["env"],
                                 cwd=tmp_path).stdout)  # fmt: skip
    if loop[2] == "stopped: agreement":  # the stock model agreed with DFT: no second round
        assert stage["engine_model"] is None and f"tune {TUNED} round 1" not in names
        return
    assert f"tune {TUNED} round 1" in names and names.count(f"dft {name} frames 1-2") == 2
    model = Path(stage["engine_model"])
    assert loop[2].startswith(f"round 1, {model} (") and (model / "tuned.json").is_file()
    assert (
        stage["engine_settings"]["model_sha256"]
        == json.loads((model / "tuned.json").read_text())["sha256"]
    )
