"""``amorph run FORMULA``: the melt-quench flow of one composition, run locally."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

PRESET_NAMES = ("paper", "demo")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run", help="melt-quench one composition and run it locally", description=__doc__
    )
    parser.add_argument("formula", help="composition, e.g. Li2SiO3")
    add_protocol_arguments(parser)
    parser.add_argument(
        "--json", action="store_true", help="print the per-temperature summary as JSON"
    )
    parser.set_defaults(func=run)


def add_protocol_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``run`` and ``campaign``: protocol, engine and where outputs go."""
    parser.add_argument(
        "--preset",
        choices=PRESET_NAMES,
        default="paper",
        help="paper protocol (default) or a small, short demo",
    )
    parser.add_argument(
        "--engine",
        default="chgnet",
        help="chgnet (default), m3gnet, vasp, or package.module:function returning an ASE calculator",
    )
    parser.add_argument("--model", help="pretrained model name or local model path for the engine")
    parser.add_argument(
        "--device", default="cpu", help="torch device for ML potentials (default cpu)"
    )
    parser.add_argument(
        "--temperatures",
        type=float,
        nargs="+",
        metavar="K",
        help="melt temperature then quench temperatures (default 5000 2500 2000 1500 1000)",
    )
    parser.add_argument(
        "--atoms", type=int, help="approximate number of atoms (whole formula units)"
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="random seed for packing and velocities"
    )
    parser.add_argument(
        "--volume-per-atom", type=float, help="starting volume per atom in Å³ (default: estimate)"
    )
    parser.add_argument(
        "--min-distance", type=float, help="smallest interatomic distance of the packing in Å"
    )
    parser.add_argument(
        "--pressure-convention",
        choices=("virial", "total"),
        help="virial (paper, VASP external pressure) or total (adds N k T / V)",
    )
    parser.add_argument("--eos-ps", type=float, help="length of each volume-search run in ps")
    parser.add_argument("--check-ps", type=float, help="length of each check run in ps")
    parser.add_argument("--production-ps", type=float, help="length of the production run in ps")
    parser.add_argument("--chunk-ps", type=float, help="production checkpoint interval in ps")
    parser.add_argument(
        "--outputs", default="outputs", help="folder for results, job folders and the store"
    )
    parser.add_argument(
        "--store", help="jobflow JobStore file (e.g. MongoDB) instead of the embedded store"
    )
    parser.add_argument(
        "--trajectory-in-store",
        action="store_true",
        help="also put production trajectories into the store's data store (e.g. GridFS)",
    )


def build_maker(args: argparse.Namespace):
    """The preset's MeltQuenchMaker with the command-line overrides applied."""
    from amorph.flows.melt_quench import PRESETS
    from amorph.md.engine import EngineSpec

    maker = PRESETS[args.preset](
        engine=EngineSpec.parse(args.engine, model=args.model, device=args.device),
        seed=args.seed,
        results_dir=str((Path(args.outputs) / "results").resolve()),
        run_dir=str((Path(args.outputs) / "runs").resolve()),
    )
    if args.temperatures:
        temperatures = sorted(args.temperatures, reverse=True)
        maker.melt_temperature, maker.quench_temperatures = temperatures[0], tuple(temperatures[1:])
    if args.atoms is not None:
        maker.cell.atoms = args.atoms
    if args.volume_per_atom is not None:
        maker.cell.volume_per_atom = args.volume_per_atom
    if args.min_distance is not None:
        maker.cell.min_distance = args.min_distance
    maker.cell.seed = args.seed
    stage = maker.stage
    if args.pressure_convention:
        for part in (stage.volume_search, stage.check, stage.production):
            part.md = dataclasses.replace(part.md, pressure_convention=args.pressure_convention)
    durations = [
        (stage.volume_search, "duration_ps", args.eos_ps),
        (stage.check, "duration_ps", args.check_ps),
        (stage.production, "duration_ps", args.production_ps),
        (stage.production, "chunk_ps", args.chunk_ps),
    ]
    for part, name, value in durations:
        if value is not None:
            setattr(part, name, value)
    stage.production.store_trajectory = args.trajectory_in_store
    return maker


def run(args: argparse.Namespace) -> int:
    from jobflow import run_locally

    from amorph.results.store import open_store

    flow = build_maker(args).make(args.formula)  # validates everything before any file is written
    outputs = Path(args.outputs)
    store = open_store(args.store, outputs)
    run_locally(
        flow,
        store=store,
        root_dir=outputs / "jobs",
        create_folders=True,
        log=bool(args.verbose),
        raise_immediately=True,
    )
    summaries = flow.output.resolve(store)
    if args.json:
        print(json.dumps(summaries, indent=1))
    else:
        print_table(summaries)
    return 0


def print_table(summaries: list[dict[str, Any]]) -> None:
    header = f"{'T (K)':>7} {'atoms':>5} {'V/atom (Å³)':>11} {'ρ (g/cm³)':>9} {'P (GPa)':>8} {'converged':>9}  results"
    print(header)
    for s in summaries:
        print(
            f"{s['temperature_K']:7.0f} {s['n_atoms']:5d} {s['volume_per_atom_A3']:11.2f} "
            f"{s['density_g_cm3']:9.3f} {s['pressure_GPa']:8.2f} {str(s['converged']):>9}  "
            f"{s.get('results_dir', s['trajectory'])}"
        )
