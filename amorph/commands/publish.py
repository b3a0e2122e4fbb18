"""``amorph publish``: upload results to an MPContribs project, or check them with ``--dry-run``.

A dry run builds every contribution and checks it against the server's rules offline, printing one
line per invalid item; it exits 1 when any item is invalid and uploads nothing. A real publish
uploads each composition whose temperatures are all valid and not yet on the server, checks that
the server has them, then lists the invalid items and exits 1 if there were any. See
:mod:`amorph.publish`.
"""

from __future__ import annotations

import argparse

from amorph.commands import add_store_options, int_at_least
from amorph.publish.rules import MAX_REQUEST_CONTRIBUTIONS

HELP = "upload results to an MPContribs project (validate offline with --dry-run)"


def register(subparsers) -> None:
    """Add the ``publish`` parser, which runs :func:`run`."""
    parser = subparsers.add_parser("publish", help=HELP, description=HELP)
    parser.add_argument(
        "--project", required=True, help="MPContribs project name (3-31 letters, digits, _)"
    )
    parser.add_argument("--formula", help="only this composition's results")
    parser.add_argument("--engine", help="only the results of this engine")
    add_store_options(parser)
    parser.add_argument(
        "--dry-run", action="store_true", help="build and validate only; upload nothing"
    )
    parser.add_argument(
        "--host",
        help="API host (default: $MPCONTRIBS_API_HOST or contribs-api.materialsproject.org)",
    )
    parser.add_argument(
        "--api-key",
        help="API key (default: $MPCONTRIBS_API_KEY, which keeps it out of shell history)",
    )
    parser.add_argument(
        "--batch-size",
        type=int_at_least(1),
        default=MAX_REQUEST_CONTRIBUTIONS,
        metavar="N",
        help=f"contributions per request, at most {MAX_REQUEST_CONTRIBUTIONS} (default)",
    )
    parser.add_argument(
        "--attachment-frames",
        type=int_at_least(1),
        metavar="N",
        help="frames of the trajectory attachment (default: as many as fit in 2.4 MiB)",
    )
    new = parser.add_argument_group(
        "creating the project", "used only when the project does not exist yet"
    )
    new.add_argument("--authors", help="comma-separated authors")
    new.add_argument("--url", help="URL of the primary reference (paper or website)")
    new.add_argument("--title", help="short title, 5-30 characters (default: 'amorph <project>')")
    new.add_argument(
        "--description", help="brief description (default: a description of amorph's data)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Check (``--dry-run``) or upload the stored results; the exit code of :func:`dry_run` or
    :func:`upload`."""
    from amorph.publish.upload import check_project_name
    from amorph.results.outputs import Outputs
    from amorph.results.reader import Database

    project = check_project_name(args.project)
    entries = Database.open(Outputs(args.outputs, args.store)).stages(args.formula, args.engine)
    return (dry_run if args.dry_run else upload)(args, project, entries)


def dry_run(args: argparse.Namespace, project: str, entries) -> int:
    """Build and check every contribution; 1 if any is invalid or the project would be too wide."""
    from amorph.publish.contributions import build_groups
    from amorph.publish.rules import column_problem
    from amorph.results.outputs import Outputs

    candidates = [c for group in build_groups(entries, args.attachment_frames) for c in group]
    invalid = [c for c in candidates if not c.valid]
    too_many_columns = column_problem(c.contribution.data for c in candidates if c.valid)
    source = Outputs(args.outputs, args.store).description
    print(f"dry run for project {project}: {len(candidates)} contributions from {source}")
    if invalid:
        print(format_invalid(invalid))
    if too_many_columns:
        print(f"invalid project: {too_many_columns}")
    print(f"{len(candidates) - len(invalid)} valid, {len(invalid)} invalid; nothing uploaded")
    return 1 if invalid or too_many_columns else 0


def upload(args: argparse.Namespace, project: str, entries) -> int:
    """Publish; invalid results are listed after the upload of the others and make it fail."""
    from amorph.publish import PublishError
    from amorph.publish.upload import NewProject, publish, resolve_api_key, resolve_host

    report = publish(
        entries,
        project,
        api_key=resolve_api_key(args.api_key),
        host=resolve_host(args.host),
        new_project=NewProject(args.authors, args.url, args.title, args.description),
        batch_size=args.batch_size,
        attachment_frames=args.attachment_frames,
    )
    print(
        f"project {project}: {len(report.uploaded)} contributions uploaded, "
        f"{len(report.already_there)} already there; {report.on_server} on the server"
    )
    if report.invalid:
        print(format_invalid(report.invalid))
        count = len(report.invalid)
        raise PublishError(f"{count} invalid results were not published (listed above)")
    return 0


def format_invalid(candidates) -> str:
    """One line per invalid candidate: ``invalid <identifier> (<source>): <reasons>``."""
    return "\n".join(
        f"invalid {c.identifier} ({c.source}): {'; '.join(c.problems)}" for c in candidates
    )
