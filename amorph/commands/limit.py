"""``amorph limit TRAJECTORY``: the amorphous limit of a production run, run locally.

Relaxes snapshots of the run (one every --interval-ps back from its end) and the elemental reference
states with one engine, and prints each snapshot's energy and formation energy per atom and their
minimum, the amorphous limit (Aykol et al., Sci. Adv. 2018).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from amorph.commands import add_engine_options, add_store_options, engine_spec, int_at_least
from amorph.files import json_text


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``limit`` parser, which runs :func:`run`."""
    parser = subparsers.add_parser(
        "limit",
        help="amorphous limit: formation energies of relaxed snapshots",
        description=__doc__,
    )
    parser.add_argument("trajectory", help="production trajectory (.npz written by amorph)")
    add_engine_options(parser, role="the relaxations and static energies")
    parser.add_argument(
        "--snapshots", type=int_at_least(1), default=10, help="number of snapshots (default 10)"
    )
    parser.add_argument(
        "--interval-ps", type=float, default=2.0, help="time between snapshots (default 2 ps)"
    )
    parser.add_argument(
        "--fmax", type=float, default=0.05, help="relaxation force tolerance in eV/Å (default 0.05)"
    )
    parser.add_argument(
        "--max-steps",
        type=int_at_least(1),
        default=200,
        help="most ionic steps per relaxation (default 200)",
    )
    add_store_options(parser)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the amorphous-limit flow on the trajectory; print its snapshots and limit (or JSON)."""
    from amorph.flows.amorphous_limit import AmorphousLimitMaker
    from amorph.managers.local import run_flow
    from amorph.results.outputs import Outputs
    from amorph.results.store import open_store

    maker = AmorphousLimitMaker(
        engine=engine_spec(args),
        snapshots=args.snapshots,
        interval_ps=args.interval_ps,
        fmax=args.fmax,
        max_steps=args.max_steps,
    )
    trajectory = str(Path(args.trajectory).resolve())
    flow = maker.make(trajectory)  # validates before any file is written
    outputs = Outputs(args.outputs, args.store)
    store = open_store(outputs.store, outputs.root)
    run_flow(flow, store, outputs, log=bool(args.verbose))
    result = flow.output.resolve(store)
    summary = result.summary()
    if args.json:
        print(json_text(summary))
        return 0
    print(f"{'t (ps)':>8} {'E (eV/atom)':>12} {'Ef (eV/atom)':>13} relaxed")
    for s in summary["snapshots"]:
        print(
            f"{s['time_ps']:8.2f} {s['energy_eV_per_atom']:12.4f} "
            f"{s['formation_energy_eV_per_atom']:13.4f} "
            f"{'yes' if s['relax_converged'] else 'no (max steps)'}"
        )
    for r in summary["references"]:
        print(
            f"reference {r['element']}: {r['description']}, {r['energy_eV_per_atom']:.4f} eV/atom"
        )
    print(
        f"amorphous limit of {result.formula} ({result.engine}): "
        f"{result.amorphous_limit_eV_per_atom:+.4f} eV/atom"
    )
    return 0
