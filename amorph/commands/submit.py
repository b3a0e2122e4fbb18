"""``amorph submit FORMULA...``: melt-quench flows into a jobflow-remote project's queue.

The project's runner (``jf runner start``) then submits every job to the worker's scheduler
(SLURM, PBS, ...); ``jf flow list`` follows them and ``amorph db list --store PROJECT.yaml`` reads
the results. See the README section on clusters.
"""

from __future__ import annotations

import argparse

from amorph.commands.run import add_protocol_options, protocol


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``submit`` parser, which runs :func:`run`."""
    parser = subparsers.add_parser(
        "submit", help="submit melt-quench flows to a jobflow-remote project", description=__doc__
    )
    parser.add_argument("formulas", nargs="+", metavar="FORMULA", help="compositions")
    add_protocol_options(parser)
    parser.add_argument("--project", help="jobflow-remote project (default: the current one)")
    parser.add_argument("--worker", help="worker of the project (default: its first)")
    parser.add_argument("--exec-config", help="execution configuration of the project")
    parser.add_argument(
        "--run-dir",
        help="absolute folder for MD files, on a file system all nodes see, so that a rerun job "
        "resumes (default: <worker work_dir>/amorph-runs)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Submit one melt-quench flow per composition to jobflow-remote; print the flows' ids."""
    from amorph.errors import InputError
    from amorph.managers.local import check_size
    from amorph.managers.remote import Destination, submit
    from amorph.structure.composition import parse_composition

    if args.store:
        raise InputError("amorph submit writes to the project's job store; --store is not used")
    destination = Destination.find(args.project, args.worker)
    args.trajectory_in_store = True  # workers' files need not be visible where results are read
    maker = protocol(args, run_dir=args.run_dir or destination.default_run_dir)
    compositions = [parse_composition(formula, whole=True) for formula in args.formulas]
    flows = [maker.make(c) for c in compositions]  # every setting checked before submitting any
    check_size(maker, compositions, args.force)
    ids = submit(flows, destination, args.exec_config)
    for composition, flow in zip(compositions, flows, strict=True):
        print(f"submitted {composition.reduced_formula}: flow {flow.uuid}")
    print(f"{len(ids)} jobs in project {destination.project} for worker {destination.worker}")
    return 0
