"""Benchmark ``amorph.analysis`` (D + all partial RDFs) against pymatgen-analysis-diffusion, kinisi.

Usage: python scripts/bench_analysis.py [--atoms 200] [--frames 10000] [--rdf-frames 200]
           [--real ../shared/data/liquid_Na/XDATCAR_671K.gz] [--no-kinisi]

Each tool runs in a forked child process on the same in-memory trajectory; its wall time and its
peak extra resident memory (peak RSS less RSS at the start) are reported. The diffusivity of every
tool is printed with the exact all-origins MSD (computed directly, no FFT) fitted on amorph's
window. Peers: ``DiffusionAnalyzer(smoothed="max")`` + ``RadialDistributionFunctionFast`` (its
Structures are built inside the timing, as its API needs them), and kinisi's
``DiffusionAnalyzer.from_ase`` + Bayesian ``diffusion`` on 200 evenly spaced time intervals (all
10^4 would take minutes).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time
import warnings
from pathlib import Path

import numpy as np

from amorph.analysis import (
    diffusivities,
    fit_window,
    mean_squared_displacement,
    radial_distribution,
)
from amorph.analysis.synthetic import random_walk
from amorph.trajectory import Trajectory
from amorph.trajectory.formats import read_trajectory

R_MAX = 10.0
BIN = 0.02


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def _in_child(func, traj: Trajectory, species: str, stride: int, start_ps: float) -> dict:
    """Run ``func`` in a forked process; return its result with wall time and peak extra RSS."""

    def target(queue):
        warnings.simplefilter("ignore")
        rss0 = _rss_mb()
        t0 = time.perf_counter()
        try:
            result = func(traj, species, stride, start_ps)
        except Exception as exc:  # report a peer's failure, go on benchmarking
            result = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0][:90]}
        result["time_s"] = time.perf_counter() - t0
        result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss0
        queue.put(result)

    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(queue,))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def run_amorph(traj, species, stride, start_ps):
    """amorph: D of ``species`` with its error; all partial RDFs on every ``stride``-th frame."""
    d = diffusivities(traj, [species])[species]
    radial_distribution(traj, R_MAX, BIN, stride, progress=False)
    return {"D": d.D_cm2_s, "sigma": d.D_sigma_cm2_s}


def run_pymatgen(traj, species, stride, start_ps):
    """pymatgen-analysis-diffusion: D of ``species`` with its error, and every partial RDF on every
    ``stride``-th frame."""
    from pymatgen.analysis.diffusion.aimd.rdf import RadialDistributionFunctionFast
    from pymatgen.analysis.diffusion.analyzer import DiffusionAnalyzer

    displacements = np.ascontiguousarray((traj.positions - traj.positions[0]).transpose(1, 0, 2))
    dt = float(traj.time_fs[1] - traj.time_fs[0])
    analyzer = DiffusionAnalyzer(
        traj.structure(0), displacements, species, 1000, dt, 1, smoothed="max"
    )
    structures = [traj.structure(f) for f in range(0, traj.n_frames, stride)]
    rdf = RadialDistributionFunctionFast(structures, rmax=R_MAX, ngrid=int(R_MAX / BIN) + 1)
    symbols = list(dict.fromkeys(traj.symbols))
    for i, a in enumerate(symbols):
        for b in symbols[i:]:
            rdf.get_rdf(a, b)
    return {"D": analyzer.diffusivity, "sigma": analyzer.diffusivity_std_dev}


def run_kinisi(traj, species, stride, start_ps):
    """kinisi: D of ``species`` fitted from ``start_ps``, the mean and spread of its samples."""
    import scipp as sc
    from ase import Atoms
    from kinisi.analyze import DiffusionAnalyzer

    dt = float(traj.time_fs[1] - traj.time_fs[0])
    frames = [
        Atoms(numbers=traj.numbers, positions=p, cell=c, pbc=True)
        for p, c in zip(traj.positions, traj.cells, strict=True)
    ]
    lags = np.unique(np.linspace(1, traj.n_frames - 1, 200).astype(int))
    analyzer = DiffusionAnalyzer.from_ase(
        frames,
        specie=species,
        time_step=sc.scalar(dt, unit="fs"),
        step_skip=sc.scalar(1),
        dt=sc.array(dims=["time interval"], values=lags * dt, unit="fs"),
        progress=False,
    )
    analyzer.diffusion(sc.scalar(start_ps * 1000, unit="fs"), progress=False)
    samples = sc.to_unit(analyzer.D, "cm2/s").values
    return {"D": float(np.mean(samples)), "sigma": float(np.std(samples))}


def exact_fit(traj: Trajectory, species: str) -> tuple[float, float, float]:
    """D from OLS on the directly computed all-origins MSD on amorph's window; and that window."""
    msd = mean_squared_displacement(traj, [species])[species]
    start, end = fit_window(msd)
    lags = np.unique(np.linspace(start, end, 100).round().astype(int))
    idx = np.flatnonzero(np.array(traj.symbols) == species)
    x = traj.positions[:, idx] - traj.positions[:, idx][0]
    com = _com(traj)
    x -= com[:, None, :]
    direct = np.array([np.mean(np.sum((x[k:] - x[:-k]) ** 2, axis=2)) for k in lags])
    slope = np.polyfit(lags * msd.frame_interval_fs, direct, 1)[0]
    dt_ps = msd.frame_interval_fs / 1000
    return slope / 6 * 0.1, start * dt_ps, end * dt_ps


def _com(traj: Trajectory) -> np.ndarray:
    from ase.data import atomic_masses

    w = atomic_masses[traj.numbers] / atomic_masses[traj.numbers].sum()
    com = np.einsum("fak,a->fk", traj.positions, w)
    return com - com[0]


def bench(label: str, traj: Trajectory, species: str, rdf_frames: int, kinisi: bool) -> None:
    """Run each tool on ``traj`` in a child process; print D against the exact fit, time, memory."""
    stride = max(1, traj.n_frames // rdf_frames)
    raw_mb = traj.positions.nbytes / 2**20
    d_exact, start_ps, end_ps = exact_fit(traj, species)
    print(
        f"\n{label}: {traj.n_atoms} atoms x {traj.n_frames} frames (positions {raw_mb:.0f} MB); "
        f"D({species}) fit window {start_ps:.3g}-{end_ps:.3g} ps; RDF: all pairs, "
        f"{len(range(0, traj.n_frames, stride))} frames, r_max {R_MAX} Å"
    )
    print(f"  exact all-origins MSD, OLS on that window: D = {d_exact:.4e} cm²/s")
    runners = {"amorph": run_amorph, "pymatgen-analysis-diffusion": run_pymatgen}
    if kinisi:
        runners["kinisi"] = run_kinisi
    results = {name: _in_child(f, traj, species, stride, start_ps) for name, f in runners.items()}
    base = results["amorph"]["time_s"]
    header = ("tool", "D (cm2/s)", "sigma", "D/exact", "time (s)", "x amorph", "peak MB", "/raw")
    widths = (28, 12, 11, 9, 10, 10, 9, 6)
    print(
        "  "
        + header[0].ljust(widths[0])
        + "".join(h.rjust(w) for h, w in zip(header[1:], widths[1:], strict=True))
    )
    for name, r in results.items():
        if "error" in r:
            print(f"  {name:<28}failed: {r['error']}")
            continue
        cells = (
            f"{r['D']:.4e}",
            f"{r['sigma']:.2e}",
            f"{r['D'] / d_exact:.4f}",
            f"{r['time_s']:.2f}",
            f"{r['time_s'] / base:.1f}",
            f"{r['peak_mb']:.0f}",
            f"{r['peak_mb'] / raw_mb:.2f}",
        )
        print(
            "  "
            + name.ljust(widths[0])
            + "".join(c.rjust(w) for c, w in zip(cells, widths[1:], strict=True))
        )


def main() -> None:
    """Benchmark a synthetic Li/O random walk, then the ``--real`` trajectory if the file exists."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--atoms", type=int, default=200)
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--rdf-frames", type=int, default=200)
    parser.add_argument(
        "--real",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "../shared/data/liquid_Na/XDATCAR_671K.gz",
    )
    parser.add_argument(
        "--time-step", type=float, default=2.0, help="fs per frame of the real file"
    )
    parser.add_argument("--no-kinisi", action="store_true")
    args = parser.parse_args()

    half = args.atoms // 2
    traj = random_walk(
        {"Li": half, "O": args.atoms - half},
        {"Li": 1e-4, "O": 1e-6},
        args.frames,
        frame_interval_fs=2.0,
        seed=0,
    )
    bench("synthetic Li/O random walk", traj, "Li", args.rdf_frames, not args.no_kinisi)
    if args.real.is_file():
        from pymatgen.io.vasp.outputs import Xdatcar

        t0 = time.perf_counter()
        real = read_trajectory(args.real, time_step_fs=args.time_step)
        t1 = time.perf_counter()
        Xdatcar(args.real)
        t2 = time.perf_counter()
        print(f"\nread {args.real.name}: amorph {t1 - t0:.2f} s, pymatgen Xdatcar {t2 - t1:.2f} s")
        bench(f"real {args.real.name}", real, real.symbols[0], args.rdf_frames, not args.no_kinisi)


if __name__ == "__main__":
    main()
