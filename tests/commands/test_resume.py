"""A run killed with SIGKILL during production continues from its last checkpoint when rerun."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from builders import lj_options

from amorph.results.store import open_store
from amorph.trajectory import Trajectory


def arguments(outputs: Path) -> list[str]:
    """``amorph run`` of liquid LJ argon (cheap forces), 6 ps production in 1 ps chunks."""
    production = ["--production-ps", "6", "--chunk-ps", "1", "--outputs", str(outputs), "--json"]
    return ["run", "Ar", *lj_options(temperatures=("100",)), *production]


def run_to_end(amorph, outputs: Path) -> dict:
    return json.loads(amorph(outputs.parent, *arguments(outputs)).stdout)[0]


def test_sigkill_during_production_then_rerun_loses_and_repeats_nothing(amorph, tmp_path):
    outputs = tmp_path / "killed"
    run_dir = outputs / "runs" / "Ar" / "100K"
    victim = subprocess.Popen(
        [sys.executable, "-m", "amorph.cli", *arguments(outputs)],
        env=amorph.environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
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

    resumed = run_to_end(amorph, outputs)
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
    reference = Trajectory.load(run_to_end(amorph, tmp_path / "reference")["trajectory"]["path"])
    assert np.allclose(reference.positions, traj.positions, atol=1e-6)
