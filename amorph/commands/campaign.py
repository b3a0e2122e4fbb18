"""``amorph campaign FILE``: the melt-quench flow for every composition of a file, resumable."""

from __future__ import annotations

import argparse

from amorph.commands import int_at_least
from amorph.commands.run import add_protocol_arguments, build_maker


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "campaign",
        help="run many compositions; rerun to resume",
        description=__doc__,
        epilog="The file lists one formula per line; blank lines and text after # are ignored. Finished "
        "compositions are skipped on a rerun; failed ones are recorded with their reason "
        "(outputs/campaign.json) and retried.",
    )
    parser.add_argument("file", help="text file of formulas")
    add_protocol_arguments(parser)
    parser.add_argument(
        "--executor",
        choices=("local", "dask"),
        default="local",
        help="run compositions one after another (local) or on a local Dask cluster",
    )
    parser.add_argument(
        "--workers", type=int_at_least(1), default=2, help="Dask worker processes (default 2)"
    )
    parser.add_argument(
        "--batch",
        type=int_at_least(1),
        default=1,
        help="compositions per flow; with a batched engine (chgnet, m3gnet) their MD runs "
        "go to the model together (default 1)",
    )
    parser.set_defaults(func=campaign)


def campaign(args: argparse.Namespace) -> int:
    from amorph.managers.campaign import Campaign, read_compositions
    from amorph.results.store import open_store

    formulas = read_compositions(args.file)
    maker = build_maker(args)
    maker.engine.load()  # a wrong engine or model fails once, here, not once per composition
    runner = Campaign(maker, open_store(args.store, args.outputs), args.outputs)
    status = runner.run(formulas, executor=args.executor, workers=args.workers, batch=args.batch)
    failed = {f: s for f, s in status.items() if s["status"] != "done"}
    print(f"{len(status) - len(failed)} of {len(status)} compositions done")
    for formula, s in failed.items():
        print(f"failed {formula}: {s['reason']}")
    return 1 if failed else 0
