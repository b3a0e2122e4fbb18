"""Benchmark: the batched ML-potential engines against MD through the stock ASE calculators.

Both run NVT MD, in one process, from the same packmol cell. Reported: per-step time of the ASE
engine and of the batched engine with one replica, throughput (atom-steps/s) of the batched engine
for several batch sizes, peak memory per replica of one force evaluation, and the largest force
difference between the two.

    python scripts/bench_engine.py                  # CHGNet, Li3PO4, ~100 atoms, CPU
    python scripts/bench_engine.py --model m3gnet --json
    python scripts/bench_engine.py --threads 1 --profile   # where a step's time goes
    python scripts/bench_engine.py --compile   # CHGNet's gated MLPs compiled (first call: minutes)
    # (M3GNet: random weights unless --m3gnet-model)
    python scripts/bench_engine.py --device cuda --batch-sizes 1,4,16,64

On a CPU, set the thread count with --threads (default: torch's); other load on the machine skews
times.
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from pymatgen.io.ase import AseAtomsAdaptor

from amorph.md.engine import EngineSpec, MDSettings, MDState, MDTask
from amorph.md.potential import Systems
from amorph.structure.composition import formula_units_for, parse_composition
from amorph.structure.packing import random_packed_structure
from amorph.volume.estimate import estimate_volume_per_atom


def engine_specs(args) -> tuple[EngineSpec, EngineSpec]:
    """The stock (ASE) and batched specs of one model."""
    if args.model == "chgnet":
        return EngineSpec("chgnet-ase", device=args.device), EngineSpec(
            "chgnet", device=args.device
        )
    model = args.m3gnet_model or str(Path(tempfile.mkdtemp()) / "m3gnet")
    if (
        not args.m3gnet_model
    ):  # matgl's pretrained architecture, random weights scaled to eV/Å forces
        from matgl.apps.pes import Potential
        from matgl.models import M3GNet

        torch.manual_seed(0)
        Potential(model=M3GNet(is_intensive=False), calc_stresses=True, data_std=1000.0).save(model)
    return (
        EngineSpec("m3gnet-ase", model=model, device=args.device),
        EngineSpec("m3gnet", model=model, device=args.device),
    )


def md_tasks(structure, n: int, steps: int, root: Path) -> list[MDTask]:
    """``n`` NVT tasks from ``structure`` at 1500 K + 50 K per task, each its own folder, seed."""
    settings = MDSettings(time_step_fs=1.0)
    return [
        MDTask(MDState(structure), 1500.0 + 50 * i, steps, settings, root / f"r{i}", seed=i)
        for i in range(n)
    ]


def seconds_per_step(engine, tasks: list[MDTask]) -> float:
    """Wall time of one run of ``tasks`` per MD step (the starting force evaluation included)."""
    start = time.perf_counter()
    engine.run(tasks)
    return (time.perf_counter() - start) / (tasks[0].steps + 1)


def systems(structure, n: int, device: str) -> Systems:
    """``n`` copies of ``structure`` as one batch on ``device``."""
    return Systems(
        positions=torch.tensor(np.tile(structure.cart_coords, (n, 1)), device=device),
        cells=torch.tensor(structure.lattice.matrix, device=device).expand(n, 3, 3).contiguous(),
        numbers=torch.tensor(structure.atomic_numbers * n, device=device),
        counts=[len(structure)] * n,
    )


def step_split(potential, batch: Systems, repeats: int = 5) -> dict[str, float]:
    """Seconds of one CHGNet force evaluation spent building its graphs (pairs within the atom
    cutoff, angles within the bond cutoff), in the rest of the forward pass, and in the backward
    pass (forces and stress); best of ``repeats``."""
    from amorph.potentials.graph import neighbor_list, pairs_sharing_center

    def best(function) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            function()
            times.append(time.perf_counter() - start)
        return min(times)

    def graphs():
        with torch.no_grad():
            edges = neighbor_list(batch, potential.atom_cutoff)
            lengths = edges.vectors(batch.positions, batch.cells, batch.owner).norm(dim=1)
            pairs_sharing_center(
                edges.center, lengths <= potential.bond_cutoff, lengths < potential.bond_cutoff
            )

    def forward():
        positions = batch.positions.to(potential.dtype).requires_grad_(True)
        potential.energies(batch, positions, batch.cells.to(potential.dtype))

    graph_s, forward_s, total_s = best(graphs), best(forward), best(lambda: potential(batch))
    return {
        "graphs": graph_s,
        "model forward": forward_s - graph_s,
        "backward (forces, stress)": total_s - forward_s,
    }


def force_differences(stock, potential, reference, structure, rattles: int = 3) -> dict[str, float]:
    """Largest force differences (eV/Å) over the structure and rattled copies of it: stock
    calculator vs batched ``potential``, and each of them vs ``reference``, the potential in float64
    (float32 round-off)."""
    worst = {"max_force_diff_eV_A": 0.0, "ase_vs_float64_eV_A": 0.0, "engine_vs_float64_eV_A": 0.0}
    for seed in range(rattles):
        atoms = AseAtomsAdaptor.get_atoms(structure)
        atoms.rattle(0.05 * seed, seed=seed)
        atoms.calc = stock.calculator
        batch = systems(AseAtomsAdaptor.get_structure(atoms), 1, potential.device)
        forces = [
            atoms.get_forces(),
            potential(batch).forces.cpu().numpy(),
            reference(batch).forces.cpu().numpy(),
        ]
        for key, (a, b) in zip(worst, ((0, 1), (0, 2), (1, 2)), strict=True):
            worst[key] = max(worst[key], float(np.abs(forces[a] - forces[b]).max()))
    return worst


def peak_memory_mb(spec: EngineSpec, structure, n: int, threads: int) -> float:
    """Peak memory of one force evaluation of ``n`` replicas (stock: one structure), in MiB.

    On a GPU from the allocator's peak; on a CPU from the peak resident size of a fresh process
    (Linux: its high-water mark, reset after the model is loaded).
    """
    if spec.device.startswith("cuda"):
        return _evaluate_peak(spec, structure, n, threads)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_evaluate_peak, (spec, structure, n, threads))


def _evaluate_peak(spec: EngineSpec, structure, n: int, threads: int) -> float:
    torch.set_num_threads(threads)
    engine = spec.load()
    cuda = spec.device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # high-water mark := current resident size
        before = _resident_kib("VmHWM")
    if hasattr(engine, "potential"):
        engine.potential(systems(structure, n, spec.device))
    else:
        atoms = AseAtomsAdaptor.get_atoms(structure)
        atoms.calc = engine.calculator
        atoms.get_stress()
    if cuda:
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    return (_resident_kib("VmHWM") - before) / 1024


def _resident_kib(key: str) -> int:
    line = next(
        line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(key)
    )
    return int(line.split()[1])


def main() -> None:
    """Time the stock and batched engines on one packmol cell; print the report (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("chgnet", "m3gnet"), default="chgnet")
    parser.add_argument(
        "--m3gnet-model", help="a matgl model directory or name (default: random weights)"
    )
    parser.add_argument("--formula", default="Li3PO4")
    parser.add_argument("--atoms", type=int, default=100)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=5, help="MD steps per timed run")
    parser.add_argument("--batch-sizes", default="1,2,4,8,16")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurements")
    parser.add_argument(
        "--profile", action="store_true", help="also split one evaluation (CHGNet, batch 1)"
    )
    parser.add_argument(
        "--compile", action="store_true", help="CHGNet: the engine's compile option"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(args.threads)

    composition = parse_composition(args.formula)
    structure = random_packed_structure(
        composition,
        formula_units_for(composition, args.atoms),
        estimate_volume_per_atom(composition),
        seed=1,
    )
    stock_spec, batched_spec = engine_specs(args)
    batched_spec.options = {"max_atoms": 10**9}  # every batch size below runs as one batch
    if args.compile:
        batched_spec.options["compile"] = True
    stock, batched = stock_spec.load(), batched_spec.load()
    potential = batched.potential
    reference = type(potential)(copy.deepcopy(potential.model).double(), potential.device)
    n_atoms = len(structure)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        seconds_per_step(batched, md_tasks(structure, 1, 1, root / "warm"))  # first calls allocate
        # alternate the two engines so that load on the machine hits both alike
        ase_times, engine_times = [], []
        for repeat in range(2):
            ase_times.append(
                seconds_per_step(stock, md_tasks(structure, 1, args.steps, root / f"ase{repeat}"))
            )
            engine_times.append(
                seconds_per_step(batched, md_tasks(structure, 1, args.steps, root / f"b{repeat}"))
            )
        throughput = {}
        for n in (int(b) for b in args.batch_sizes.split(",")):
            seconds = seconds_per_step(
                batched, md_tasks(structure, n, args.steps, root / f"batch{n}")
            )
            throughput[n] = n * n_atoms / seconds
    ase_step, engine_step = min(ase_times), min(engine_times)
    report = {
        "model": args.model,
        "device": args.device,
        "threads": args.threads,
        "formula": args.formula,
        "n_atoms": n_atoms,
        "ase_ms_per_step": 1000 * ase_step,
        "engine_ms_per_step": 1000 * engine_step,
        "cpu_speedup_vs_ase" if args.device == "cpu" else "speedup_vs_ase_batch1": ase_step
        / engine_step,
        "ase_atom_steps_per_s": n_atoms / ase_step,
        "atom_steps_per_s": throughput,
        "best_speedup_vs_sequential_ase": max(throughput.values()) * ase_step / n_atoms,
        **force_differences(stock, potential, reference, structure),
    }
    if args.profile and args.model == "chgnet":
        report["split_s"] = step_split(potential, systems(structure, 1, args.device))
    if not args.no_memory:
        largest = max(throughput)
        report["memory_MiB"] = {
            "ase_per_structure": peak_memory_mb(stock_spec, structure, 1, args.threads),
            "engine_per_replica_batch1": peak_memory_mb(batched_spec, structure, 1, args.threads),
            f"engine_per_replica_batch{largest}": peak_memory_mb(
                batched_spec, structure, largest, args.threads
            )
            / largest,
        }
    if args.json:
        print(json.dumps(report, indent=1))
        return
    print(
        f"{args.model} on {args.device} ({args.threads} threads), {args.formula}, {n_atoms} atoms"
    )
    print(
        f"ASE calculator {report['ase_ms_per_step']:.0f} ms/step, batched engine (1 replica) "
        f"{report['engine_ms_per_step']:.0f} ms/step: {ase_step / engine_step:.2f}x; "
        f"max force difference {report['max_force_diff_eV_A']:.1e} eV/Å (float32 round-off: ASE "
        f"{report['ase_vs_float64_eV_A']:.1e}, "
        f"engine {report['engine_vs_float64_eV_A']:.1e} from float64)"
    )
    print("batch  atom-steps/s  vs sequential ASE")
    for n, rate in throughput.items():
        print(f"{n:5d}  {rate:12.0f}  {rate * ase_step / n_atoms:8.2f}x")
    split = report.get("split_s", {})
    for part, seconds in split.items():
        print(f"{part}: {1000 * seconds:.1f} ms ({100 * seconds / sum(split.values()):.1f} %)")
    for key, value in report.get("memory_MiB", {}).items():
        print(f"peak memory {key}: {value:.0f} MiB")


if __name__ == "__main__":
    main()
