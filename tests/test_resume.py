"""A run killed with SIGKILL during production continues from its last checkpoint when rerun."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from amorph.results.store import open_store
from amorph.trajectory import Trajectory

TESTS = Path(__file__).resolve().parent


def command(outputs: Path) -> list[str]:
    """Liquid LJ argon (cheap forces) through the real command line, 6 ps production in 1 ps
    chunks."""
    return [
        sys.executable,
        "-m",
        "amorph.cli",
        "run",
        "Ar",
        "--engine",
        "lj_calculators:argon",
        "--preset",
        "demo",
        "--min-distance",
        "3.0",
        "--temperatures",
        "100",
        "--production-ps",
        "6",
        "--chunk-ps",
        "1",
        "--outputs",
        str(outputs),
        "--json",
    ]


def environment() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])),
    }


def run_to_end(outputs: Path) -> dict:
    done = subprocess.run(
        command(outputs), env=environment(), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)[0]


def test_sigkill_during_production_then_rerun_loses_and_repeats_nothing(tmp_path):
    outputs = tmp_path / "killed"
    run_dir = outputs / "runs" / "Ar" / "100K"
    victim = subprocess.Popen(
        command(outputs), env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    while not (run_dir / "production.chunk0001.npz").exists():
        assert victim.poll() is None and time.monotonic() < deadline, (
            "the run ended before it could be killed"
        )
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait() == -signal.SIGKILL
    assert not (run_dir / "production.npz").exists()
    # the killed run's finished jobs left no documents
    assert open_store(None, outputs).docs_store.count() == 0
    finished_before = {p.name: p.stat().st_mtime_ns for p in run_dir.glob("eos*.npz")}
    assert finished_before

    resumed = run_to_end(outputs)
    # finished MD runs were reused, not repeated
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.glob("eos*.npz")} == finished_before
    traj = Trajectory.load(resumed["trajectory"]["path"])
    assert traj.n_frames == 3000 and np.allclose(np.diff(traj.time_fs), 2.0)
    assert sorted(p.name for p in run_dir.glob("production*")) == ["production.npz"]
    # nothing left behind: no empty job folder, no hidden half-written result folder
    assert all(any(d.iterdir()) for d in (outputs / "jobs").rglob("*") if d.is_dir())
    assert not list((outputs / "results").rglob(".*"))

    # an uninterrupted run from scratch gives the same trajectory: no frame lost or repeated, and
    # the thermostat state was restored exactly
    reference = Trajectory.load(run_to_end(tmp_path / "reference")["trajectory"]["path"])
    assert np.allclose(reference.positions, traj.positions, atol=1e-6)
