"""``amorph features``: the descriptor table of the store's results or of structure files (CSV).

Without paths, one row per composition and temperature in the store (``--outputs``/``--store``),
with its Li diffusivity; with paths, one row per structure file (CIF, POSCAR, pymatgen JSON) or
amorph trajectory (.npz). ``--all`` adds the store's results to the paths' rows. The columns are
those of the published table of Zheng et al. (2024); ``--extended`` appends amorph's own variants.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from amorph.commands import add_featurise_options, add_store_options
from amorph.errors import InputError

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``features`` parser, which runs :func:`run`."""
    parser = subparsers.add_parser(
        "features",
        help="structural and compositional descriptors of results or structures (CSV)",
        description=__doc__,
    )
    parser.add_argument("paths", nargs="*", help="structure files or trajectories (default: none)")
    parser.add_argument(
        "--all", action="store_true", help="with paths, also every result in the store"
    )
    parser.add_argument("--formula", help="only this composition's results")
    parser.add_argument("--engine", help="only the results of this engine")
    parser.add_argument(
        "-o", "--output", default="-", help="CSV file to write (default: standard output)"
    )
    add_featurise_options(parser)
    parser.add_argument(
        "--temperature", type=float, help="temperature (K) of the structure files' rows"
    )
    parser.add_argument(
        "--extended",
        action="store_true",
        help="append amorph's own variants (ionic-model anions, union packing fractions, density)",
    )
    add_store_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the CSV feature table of the files and/or stored results (``-o``, default stdout)."""
    from amorph.descriptors.table import features_table, write_table
    from amorph.files import atomic_path
    from amorph.results.outputs import Outputs
    from amorph.results.reader import Database

    if args.temperature is not None and not args.temperature > 0:
        raise InputError(f"--temperature must be positive, got {args.temperature}")
    stages = []
    if not args.paths or args.all:
        stages = Database.open(Outputs(args.outputs, args.store)).stages(args.formula, args.engine)
    rows = features_table(
        stages,
        args.paths,
        frames=args.frames,
        temperature=args.temperature,
        include_unconverged=args.include_unconverged,
        extended=args.extended,
        jobs=args.jobs,
    )
    if args.output == "-":
        count = write_table(rows, sys.stdout, args.extended)
    else:
        with atomic_path(Path(args.output)) as tmp, open(tmp, "w", newline="") as handle:
            count = write_table(rows, handle, args.extended)
    logger.info("wrote %d rows", count)
    return 0
