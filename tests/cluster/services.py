"""Drive the local CI cluster from tests: a single-node SLURM + a MongoDB wire server.

The daemons are started/stopped by ``.ci/services/start.sh`` / ``stop.sh`` (root
only); this module wraps them and adds small helpers for jobflow-remote and
FireWorks. Typical use in a fixture::

    with services.running() as cluster:  # stop.sh runs whatever happens
        env = cluster.env()  # os.environ + SLURM_CONF, PATH, ...
        ...

Every process a test starts in the background (runner, scheduler, ...) should be
registered with ``cluster.register_pid`` so that ``stop.sh`` kills it too.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SERVICES_DIR = REPO / ".ci" / "services"
DEFAULT_CI_DIR = "/tmp/amorph-ci"
DEFAULT_MONGO_PORT = 27217
HOST = "127.0.0.1"
INPUTS = REPO / "inputs"
JFR_EXAMPLE = INPUTS / "jobflow_remote_local_slurm.yaml"


def _ci_dir(ci_dir: str | os.PathLike | None) -> Path:
    return Path(ci_dir or os.environ.get("AMORPH_CI_DIR", DEFAULT_CI_DIR))


def _read_env_sh(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.startswith("export ") and "=" in line:
            key, value = line[len("export ") :].split("=", 1)
            out[key] = shlex.split(value)[0] if value else ""
    return out


@dataclass
class Cluster:
    """A running cluster, as described by ``$AMORPH_CI_DIR/env.sh``."""

    ci_dir: Path
    vars: dict[str, str]

    @property
    def mongo_port(self) -> int:
        return int(self.vars["AMORPH_CI_MONGO_PORT"])

    @property
    def mongo_host(self) -> str:
        return self.vars["AMORPH_CI_MONGO_HOST"]

    @property
    def slurm_conf(self) -> str:
        return self.vars["SLURM_CONF"]

    def env(self, **extra: str) -> dict[str, str]:
        """os.environ plus the cluster variables and the current Python on PATH."""
        env = dict(os.environ)
        env.update(self.vars)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env.update(extra)
        return env

    def register_pid(self, name: str, pid: int) -> None:
        """Make ``stop.sh`` kill ``pid`` (and its descendants)."""
        (self.ci_dir / "pids" / f"{name}.pid").write_text(f"{pid}\n")

    def squeue(self) -> list[str]:
        """Ids of the SLURM jobs still known to the controller (pending or running)."""
        cp = subprocess.run(
            ["squeue", "-h", "-o", "%i %T"], env=self.env(), capture_output=True, text=True
        )
        return [line.split()[0] for line in cp.stdout.splitlines() if line.strip()]


def start(
    ci_dir: str | os.PathLike | None = None,
    mongo_port: int | None = None,
    slurm_cpus: int | None = None,
    timeout: float = 900,
) -> Cluster:
    """Run start.sh (installs what is missing, then starts the daemons). ``slurm_cpus``: CPUs
    the node advertises (more than it has: jobs share them)."""
    ci = _ci_dir(ci_dir)
    env = dict(os.environ, AMORPH_CI_DIR=str(ci))
    if mongo_port:
        env["AMORPH_CI_MONGO_PORT"] = str(mongo_port)
    if slurm_cpus:
        env["AMORPH_CI_SLURM_CPUS"] = str(slurm_cpus)
    subprocess.run(["bash", str(SERVICES_DIR / "start.sh")], env=env, check=True, timeout=timeout)
    return Cluster(ci, _read_env_sh(ci / "env.sh"))


def stop(ci_dir: str | os.PathLike | None = None, timeout: float = 120) -> None:
    """Run stop.sh: kills every recorded PID and leftover SLURM job processes."""
    env = dict(os.environ, AMORPH_CI_DIR=str(_ci_dir(ci_dir)))
    subprocess.run(["bash", str(SERVICES_DIR / "stop.sh")], env=env, check=False, timeout=timeout)


@contextlib.contextmanager
def running(
    ci_dir: str | os.PathLike | None = None,
    mongo_port: int | None = None,
    slurm_cpus: int | None = None,
) -> Iterator[Cluster]:
    """Start the cluster, yield it, and always stop it (even if start failed halfway)."""
    try:
        yield start(ci_dir, mongo_port, slurm_cpus)
    finally:
        stop(ci_dir)


def wait_for(
    predicate: Callable[[], object], timeout: float, what: str, poll: float = 2.0
) -> object:
    """Poll ``predicate`` until it returns something truthy; TimeoutError after ``timeout``."""
    end = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > end:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(poll)


# --- jobflow-remote -----------------------------------------------------------------


def mongo_store(database: str, collection: str, port: int, kind: str = "MongoStore") -> dict:
    """A maggma store spec (jobflow format) on the wire server; no user/password."""
    return {"type": kind, "database": database, "collection_name": collection,
            "host": HOST, "port": port}  # fmt: skip


def jobstore_spec(database: str, port: int) -> dict:
    """A jobflow JobStore spec on the wire server: ``outputs`` documents and a GridFS ``data``
    store (``outputs_blobs``), both in ``database``."""
    return {
        "docs_store": mongo_store(database, "outputs", port),
        "additional_stores": {"data": mongo_store(database, "outputs_blobs", port, "GridFSStore")},
    }


def write_jfr_project(
    folder: str | os.PathLike,
    name: str,
    *,
    mongo_port: int,
    work_dir: str | os.PathLike,
    pre_run: str | None = None,
    database: str | None = None,
    delay: float = 2.0,
) -> Path:
    """Write ``<folder>/<name>.yaml`` from the example ``inputs/jobflow_remote_local_slurm.yaml``
    (a local worker submitting through SLURM): its stores moved to the wire server (queue in
    ``<database>_queue``, outputs and GridFS data in ``<database>``), its worker's ``work_dir``
    and, if given, ``pre_run`` replaced, and a runner polling every ``delay`` seconds."""
    database = database or f"jfr_{name}"
    project = yaml.safe_load(JFR_EXAMPLE.read_text())
    project["name"] = name
    for worker in project["workers"].values():
        worker["work_dir"] = str(work_dir)
        worker["resources"]["time"] = "00:30:00"
        if pre_run is not None:
            worker["pre_run"] = pre_run
    project["queue"]["store"] = mongo_store(f"{database}_queue", "jobs", mongo_port)
    project["jobstore"] = jobstore_spec(database, mongo_port)
    project["runner"] = {
        "delay_checkout": delay,
        "delay_check_run_status": delay,
        "delay_advance_status": delay,
        "delay_refresh_limited": 10 * delay,
        "delay_update_batch": 10 * delay,
        "max_step_attempts": 3,
        "delta_retry": [delay, delay, delay],
    }
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(json.dumps(project, indent=2))  # JSON is valid YAML
    return path


def jf(
    project: str, *args: str, env: dict[str, str], timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess:
    """Run ``jf -p <project> <args>``; ``env`` must carry JFREMOTE_PROJECTS_FOLDER."""
    exe = Path(sys.executable).parent / "jf"
    cmd = [str(exe) if exe.exists() else "jf", "-p", project, *args]
    cp = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and cp.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed ({cp.returncode}):\n{cp.stdout}\n{cp.stderr}")
    return cp


def jfr_runner_start(cluster: Cluster, project: str, env: dict[str, str], base_dir: Path) -> int:
    """``jf runner start --single`` and register supervisord's PID (the runner daemon)."""
    jf(project, "runner", "start", "--single", env=env)
    pid_file = base_dir / "daemon" / "supervisord.pid"
    pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), 30,
                       "supervisord pid file", 0.5))  # fmt: skip
    cluster.register_pid(f"jf-runner-{project}", pid)
    return pid


def jfr_runner_stop(cluster: Cluster, project: str, env: dict[str, str]) -> None:
    """``jf runner shutdown``; if the daemon is still alive after 60 s its pid file is
    left in place so that ``stop.sh`` kills it."""
    pid_file = cluster.ci_dir / "pids" / f"jf-runner-{project}.pid"
    with contextlib.suppress(Exception):
        jf(project, "runner", "shutdown", env=env, timeout=120, check=False)
    with contextlib.suppress(FileNotFoundError, ValueError, TimeoutError):
        pid = int(pid_file.read_text())
        wait_for(lambda: not _alive(pid), 60, "runner shutdown", 1)
        pid_file.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):  # a zombie is dead for us
        if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
            return False
    return True


def terminate(proc: subprocess.Popen, grace: float = 10) -> None:
    """TERM a Popen started with ``start_new_session=True`` (its whole process group),
    then KILL after ``grace`` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)


def wait_flows(job_controller, flow_ids: list[str], timeout: float, poll: float = 2.0) -> dict:
    """Wait until all flows are COMPLETED (raise if one FAILED/STOPPED or on timeout).
    Returns {flow_id: FlowInfo}."""
    from jobflow_remote.jobs.state import FlowState

    bad = {FlowState.FAILED, FlowState.STOPPED, FlowState.PAUSED}

    def done():
        infos = {f.flow_id: f for f in job_controller.get_flows_info(flow_ids=flow_ids)}
        failed = [f for f in infos.values() if f.state in bad]
        if failed:
            raise RuntimeError(f"flows failed: {[(f.flow_id, f.state) for f in failed]}")
        if len(infos) == len(flow_ids) and all(
            f.state == FlowState.COMPLETED for f in infos.values()
        ):
            return infos
        return None

    return wait_for(done, timeout, f"flows {flow_ids} to complete", poll)


# --- FireWorks ----------------------------------------------------------------------


def write_fireworks_configs(
    folder: str | os.PathLike,
    *,
    mongo_port: int,
    database: str,
    store_database: str,
    pre_rocket: str = "",
    walltime: str = "00:30:00",
) -> dict[str, Path]:
    """Write my_launchpad.yaml, my_fworker.yaml, my_qadapter.yaml and jobflow.yaml into
    ``folder``, from the examples ``inputs/fireworks_*.yaml`` moved to the wire server: the
    LaunchPad in ``database``, a SLURM CommonAdapter whose queue jobs run ``rlaunch rapidfire``
    after ``pre_rocket`` and an export of ``JOBFLOW_CONFIG_FILE``, and those jobflow settings,
    whose ``JOB_STORE`` is in ``store_database``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = {"launchpad": "my_launchpad", "fworker": "my_fworker", "qadapter": "my_qadapter",
             "jobflow": "jobflow"}  # fmt: skip
    paths = {key: folder / f"{name}.yaml" for key, name in names.items()}
    launchpad = yaml.safe_load((INPUTS / "fireworks_launchpad.yaml").read_text())
    launchpad |= {"host": HOST, "port": mongo_port, "name": database, "username": None,
                  "password": None, "logdir": None, "strm_lvl": "INFO"}  # fmt: skip
    fworker = {"name": "amorph_ci_slurm", "category": "", "query": "{}"}
    rlaunch = Path(sys.executable).parent / "rlaunch"
    qadapter = yaml.safe_load((INPUTS / "fireworks_qadapter_slurm.yaml").read_text())
    qadapter.pop("cpus_per_task")
    qadapter |= {
        "rocket_launch": f"{rlaunch} -l {paths['launchpad']} -w {paths['fworker']} rapidfire "
        "--sleep 2",
        "walltime": walltime,
        "queue": "debug",
        "pre_rocket": f"{pre_rocket}\nexport JOBFLOW_CONFIG_FILE={paths['jobflow']}".strip(),
    }
    settings = yaml.safe_load((INPUTS / "fireworks_jobflow.yaml").read_text())
    settings["JOB_STORE"] = jobstore_spec(store_database, mongo_port)
    contents = {"launchpad": launchpad, "fworker": fworker, "qadapter": qadapter,
                "jobflow": settings}  # fmt: skip
    for key, data in contents.items():
        paths[key].write_text(json.dumps(data, indent=2))
    return paths
