"""Descriptors per second of a 100-atom cell and a 1000-frame trajectory, against the former ones.

Usage: python scripts/bench_features.py [--frames 1000] [--jobs 2] [--peer-frames 50] [--repeat 20]

The input is a random dense Li3PO4 cell (96 atoms, no pair closer than 1.5 Å) and a trajectory of
``--frames`` frames made by displacing its atoms at random (0.1 Å). Reported: the single cell's
descriptors per second (``--repeat`` calls after a warm-up) and the trajectory's frames per second
through ``trajectory_features``, in one process and with ``--jobs`` processes sharing the frames.
The peer is amorph's descriptors before the published definitions (commit ``PEER_COMMIT``: union of
Shannon spheres on a grid, periodic-channel search), taken with ``git archive`` and run on the same
files in its own process; it is timed on the first ``--peer-frames`` frames and the ratios compare
rates. Every timing runs in a fresh process (``python -c``) importing the version under test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

import numpy as np
from pymatgen.core import Lattice, Structure

from amorph.trajectory import Trajectory

REPOSITORY = Path(__file__).resolve().parents[1]
PEER_COMMIT = "ba11bb23df9f3e5c671f48a61ae708e54c6f6c4d"
TIMER = """
import json, sys, time
from amorph.descriptors import compute_features, trajectory_features
from amorph.trajectory import Trajectory

path, frames, repeat, options = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
trajectory = Trajectory.load(path)
cell = trajectory.structure(0)
compute_features(cell)
start = time.perf_counter()
for _ in range(repeat):
    compute_features(cell)
cell_rate = repeat / (time.perf_counter() - start)
start = time.perf_counter()
trajectory_features(trajectory.slice(0, frames), frames=frames, **json.loads(options))
print(json.dumps([cell_rate, frames / (time.perf_counter() - start)]))
"""


def random_cell(n_atoms: int, seed: int = 0, min_distance: float = 1.5) -> Structure:
    """A random Li3PO4 cell at ~2.4 g/cm³ with no pair closer than ``min_distance``."""
    rng = np.random.default_rng(seed)
    n_units = max(1, n_atoms // 8)
    species = ["Li"] * 3 * n_units + ["P"] * n_units + ["O"] * 4 * n_units
    volume = n_units * 115.8 * 1.66054 / 2.4  # formula mass (amu) x (g/cm³ per amu/Å³) / density
    lattice = Lattice.cubic(volume ** (1 / 3))
    coords: list[np.ndarray] = []
    while len(coords) < len(species):
        trial = rng.random(3)
        if not coords or lattice.get_all_distances(np.array(coords), [trial]).min() >= min_distance:
            coords.append(trial)
    return Structure(lattice, species, coords)


def shaken(cell: Structure, frames: int, seed: int = 1) -> Trajectory:
    """``frames`` copies of ``cell`` with every atom displaced by N(0, 0.1 Å) per axis."""
    rng = np.random.default_rng(seed)
    positions = cell.cart_coords + rng.normal(0, 0.1, (frames, len(cell), 3))
    return Trajectory(
        cell.atomic_numbers, positions, cell.lattice.matrix, np.arange(frames, dtype=float)
    )


def peer_checkout(folder: Path) -> Path | None:
    """The peer's ``amorph`` package unpacked under ``folder``; None where git cannot give it."""
    try:
        archive = subprocess.run(
            ["git", "-C", str(REPOSITORY), "archive", PEER_COMMIT, "amorph"],
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def rates(
    pythonpath: Path, trajectory: Path, frames: int, repeat: int, options: dict
) -> tuple[float, float]:
    """(cells per second, trajectory frames per second) of the amorph under ``pythonpath``."""
    environment = {**os.environ, "PYTHONPATH": str(pythonpath), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            TIMER,
            str(trajectory),
            str(frames),
            str(repeat),
            json.dumps(options),
        ],
        capture_output=True,
        text=True,
        env=environment,
        check=True,
    )
    cell_rate, frame_rate = json.loads(done.stdout)
    return cell_rate, frame_rate


def main() -> None:
    """Print amorph's descriptor rates, and their ratio to the peer's where its commit is here."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--peer-frames", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    cell = random_cell(100)
    with tempfile.TemporaryDirectory() as tmp:
        path = shaken(cell, args.frames).save(Path(tmp) / "trajectory.npz")
        print(
            f"input: {len(cell)}-atom {cell.composition.reduced_formula} cell, {args.frames} frames"
        )
        cell_rate, serial = rates(REPOSITORY, path, args.frames, args.repeat, {"workers": 1})
        _, parallel = rates(REPOSITORY, path, args.frames, 1, {"workers": args.jobs})
        print(
            f"amorph: {cell_rate:.1f} cells/s; trajectory {serial:.1f} frames/s in one process, "
            f"{parallel:.1f} frames/s in {args.jobs} ({parallel / serial:.2f}x)"
        )
        peer = peer_checkout(Path(tmp) / "peer")
        if peer is None:
            print(f"peer: commit {PEER_COMMIT[:7]} is not in this clone; no ratio")
            return
        peer_cell, peer_frames = rates(peer, path, args.peer_frames, args.repeat, {})
        print(
            f"peer ({PEER_COMMIT[:7]}): {peer_cell:.1f} cells/s; trajectory {peer_frames:.1f} "
            f"frames/s (first {args.peer_frames} frames, one process)"
        )
        print(
            f"ratio amorph/peer: cell {cell_rate / peer_cell:.2f}x, trajectory "
            f"{serial / peer_frames:.2f}x in one process, {parallel / peer_frames:.2f}x in "
            f"{args.jobs}"
        )


if __name__ == "__main__":
    main()
