"""``amorph features``: the descriptor table of structures or results, as CSV for ``amorph train``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from amorph.commands import int_at_least
from amorph.errors import InputError

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "features",
        help="compute structural and compositional descriptors (CSV)",
        description=(
            "Compute the descriptors of Zheng et al. (2024) / Sendek et al. (2017) for structure files "
            "(CIF, POSCAR, pymatgen JSON), amorph trajectories (.npz) and result directories (every "
            "summary.json below a directory is one row, with its temperature and Li diffusivity)."
        ),
    )
    parser.add_argument(
        "paths", nargs="+", help="structure files, trajectories or result directories"
    )
    parser.add_argument(
        "-o", "--output", default="-", help="CSV file to write (default: standard output)"
    )
    parser.add_argument(
        "--frames",
        type=int_at_least(0),
        default=0,
        help="average the features over this many evenly spaced trajectory frames (default 0: use the "
        "structure file of a result; a bare .npz input uses at least 1, the last frame)",
    )
    parser.add_argument(
        "--temperature", type=float, help="temperature (K) for inputs that do not state one"
    )
    parser.add_argument(
        "--include-unconverged",
        action="store_true",
        help="keep results whose summary says converged: false",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from amorph.descriptors.table import features_table, write_table
    from amorph.files import atomic_path

    if args.temperature is not None and not args.temperature > 0:
        raise InputError(f"--temperature must be positive, got {args.temperature}")
    rows = features_table(
        args.paths,
        frames=args.frames,
        temperature=args.temperature,
        include_unconverged=args.include_unconverged,
    )
    if args.output == "-":
        count = write_table(rows, sys.stdout)
    else:
        with atomic_path(Path(args.output)) as tmp, open(tmp, "w", newline="") as handle:
            count = write_table(rows, handle)
    log.info("wrote %d rows", count)
    return 0
