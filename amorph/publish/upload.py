"""Uploading contributions with ``mpcontribs-client``: connect, create the project, batches, checks.

A publish connects (after checking that the server answers and accepts the key, because the client
would otherwise wait minutes or fail obscurely), creates the project if needed, asks the server
which identifiers it already has and builds only the others. It submits them in batches within the
request limits, declaring the column units with ``init_columns`` before every batch (the client
resets the project columns to those in use after each submission, and a column without a declared
unit gets one the server picks). ``submit_contributions`` returns None and only logs when the server
refuses a payload, so each batch is followed by a look-up of its identifiers on the server, and the
run ends with a look-up of all of them; anything missing is a :class:`~amorph.publish.PublishError`
naming it.

The API key comes from ``MPCONTRIBS_API_KEY`` or the caller, is sent only in the ``X-API-Key``
header and is removed from every message; nothing is written locally.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from amorph.publish import PublishError
from amorph.publish.contributions import Candidate, Contribution, build_groups, identifier
from amorph.publish.rules import (
    MAX_REQUEST_BYTES,
    MAX_REQUEST_CONTRIBUTIONS,
    data_columns,
    request_bytes,
)

if TYPE_CHECKING:
    from amorph.results.reader import StageEntry

API_KEY_ENV = "MPCONTRIBS_API_KEY"
HOST_ENV = "MPCONTRIBS_API_HOST"
DEFAULT_HOST = "contribs-api.materialsproject.org"
API_KEY_LENGTH = 32
PROJECT_NAME = re.compile(r"[a-zA-Z0-9_]{3,31}")
BATCH_BYTES = int(0.8 * MAX_REQUEST_BYTES)  # margin for the estimate of the request size
REQUEST_TIMEOUT_S = 30
DEFAULT_DESCRIPTION = (
    "Amorphous structures from melt-quench molecular dynamics and the tracer diffusivities of "
    "their ions, generated with amorph."
)

logger = logging.getLogger(__name__)


@dataclass
class NewProject:
    """What ``create_project`` needs when the project does not exist yet."""

    authors: str | None = None
    url: str | None = None
    title: str | None = None  # default: "amorph <name>"
    description: str | None = None  # default: DEFAULT_DESCRIPTION


@dataclass
class PublishReport:
    """Identifiers uploaded and already there, invalid candidates, and the count on the server."""

    project: str
    uploaded: list[str] = field(default_factory=list)
    already_there: list[str] = field(default_factory=list)
    invalid: list[Candidate] = field(default_factory=list)
    on_server: int = 0


def check_project_name(name: str) -> str:
    """``name``, if MPContribs accepts it as a project name; else ``PublishError``."""
    if not PROJECT_NAME.fullmatch(name):
        raise PublishError(f"project name {name!r} must be 3-31 letters, digits or '_'")
    return name


def resolve_api_key(option: str | None) -> str:
    """The key given, else ``$MPCONTRIBS_API_KEY``; checked for length without ever showing it."""
    key = option or os.environ.get(API_KEY_ENV)
    if not key:
        raise PublishError(f"no API key: set {API_KEY_ENV} (or pass --api-key)")
    if len(key) != API_KEY_LENGTH:
        raise PublishError(
            f"an MPContribs API key has {API_KEY_LENGTH} characters; the one given has {len(key)}"
        )
    return key


def resolve_host(option: str | None) -> str:
    """The host given, else ``$MPCONTRIBS_API_HOST``, else MPContribs' own."""
    return option or os.environ.get(HOST_ENV) or DEFAULT_HOST


def publish(
    entries: Sequence[StageEntry],
    project: str,
    *,
    api_key: str,
    host: str,
    new_project: NewProject | None = None,
    batch_size: int = MAX_REQUEST_CONTRIBUTIONS,
    attachment_frames: int | None = None,
) -> PublishReport:
    """Upload every valid composition of ``entries`` that the project lacks (see the module doc)."""
    check_project_name(project)
    if not 1 <= batch_size <= MAX_REQUEST_CONTRIBUTIONS:
        raise PublishError(
            f"the batch size must be 1 to {MAX_REQUEST_CONTRIBUTIONS}, got {batch_size}"
        )
    server = Server(host, api_key)
    server.ensure_project(project, new_project or NewProject())
    local = set()
    for entry in entries:  # a summary without an identity is reported as invalid when built
        with suppress(KeyError, TypeError, ValueError):
            local.add(identifier(entry.summary))
    existing = server.identifiers(project, local)
    report = PublishReport(project, already_there=sorted(existing))
    batch: list[Contribution] = []
    batch_bytes = 0
    for group in build_groups(entries, attachment_frames, skip=existing):
        if not all(c.valid for c in group):
            report.invalid += group
            continue
        for candidate in group:
            size = request_bytes(candidate.contribution)
            if batch and (len(batch) >= batch_size or batch_bytes + size > BATCH_BYTES):
                report.uploaded += server.submit(project, batch)
                batch, batch_bytes = [], 0
            batch.append(candidate.contribution)
            batch_bytes += size
    if batch:
        report.uploaded += server.submit(project, batch)
    expected = existing | set(report.uploaded)
    missing = sorted(expected - server.identifiers(project, expected))
    if missing:
        raise PublishError(
            f"{len(missing)} contributions are missing on the server: {', '.join(missing)}"
        )
    report.on_server = server.count(project)
    return report


class Server:
    """An MPContribs API reached through ``mpcontribs-client``; errors become ``PublishError``."""

    def __init__(self, host: str, api_key: str):
        self.api_key = api_key
        self.url = client_url(host)
        mpcontribs = _client_module()
        if self.url not in mpcontribs.VALID_URLS:
            raise PublishError(f"mpcontribs-client does not accept the host {host} ({self.url})")
        self._check_reachable()
        with self._errors(f"connecting to {self.url}"):
            self.client = mpcontribs.Client(apikey=api_key, host=host)

    def _check_reachable(self) -> None:
        """Fail fast on a server that is down or refuses the key (the client would retry for
        minutes, or fail on a missing field)."""
        import requests

        try:
            response = requests.get(
                f"{self.url}/projects/",
                params={"_fields": "name", "per_page": 1},
                headers={"X-API-Key": self.api_key},
                timeout=REQUEST_TIMEOUT_S,
            )
        except requests.RequestException as exc:
            raise PublishError(
                self._redacted(f"cannot reach the MPContribs server at {self.url}: {exc}")
            ) from None
        if response.status_code in (401, 403):
            status = response.status_code
            raise PublishError(f"the server at {self.url} refused the API key (HTTP {status})")
        if not response.ok:
            raise PublishError(
                f"the MPContribs server at {self.url} answered HTTP {response.status_code}"
            )

    def ensure_project(self, name: str, new: NewProject) -> None:
        """Create project ``name`` unless it exists (it then needs authors and a reference URL)."""
        with self._errors(f"looking up project {name}"):
            if self.client.get_totals(query={"name": name}, resource="projects")[0]:
                return
        if not new.authors or not new.url:
            raise PublishError(
                f"project {name} does not exist; to create it, give --authors and --url"
            )
        title = new.title or f"amorph {name}"[:30]
        description = new.description or DEFAULT_DESCRIPTION
        with self._errors(f"creating project {name}"):
            self.client.create_project(name, title, new.authors, description, new.url)
        logger.warning(
            "created project %s (%s); it stays private until MPContribs approves it", name, title
        )

    def identifiers(self, project: str, among: set[str]) -> set[str]:
        """Which of ``among`` the project holds."""
        if not among:
            return set()
        with self._errors(f"listing the contributions of {project}"):
            found = self.client.get_all_ids({"project": project, "identifier__in": sorted(among)})
        return set(found.get(project, {}).get("identifiers", set())) & among

    def count(self, project: str) -> int:
        """How many contributions the project holds."""
        with self._errors(f"counting the contributions of {project}"):
            return self.client.get_totals(query={"project": project})[0]

    def submit(self, project: str, batch: list[Contribution]) -> list[str]:
        """Declare the columns, submit ``batch`` and check that the server stored all of it."""
        from mpcontribs.client import Attachment

        with self._errors(f"declaring the columns of {project}"):
            self.client.init_columns(self._columns(project, batch), name=project)
        payload = [
            {
                "project": project,
                "identifier": c.identifier,
                "formula": c.formula,
                "data": c.data,
                "structures": c.structures,
                "tables": c.tables,
                "attachments": [Attachment(a) for a in c.attachments],
            }
            for c in batch
        ]
        wanted = {c.identifier for c in batch}
        with _client_errors_logged() as server_said, self._errors(f"uploading to {project}"):
            # identifiers already on the server were left out before building, so skip the client's
            # own check, which lists the whole project on every call
            self.client.submit_contributions(payload, skip_dupe_check=True)
        missing = sorted(wanted - self.identifiers(project, wanted))
        if missing:
            reason = f"; the server said: {server_said[0]}" if server_said else ""
            raise PublishError(
                self._redacted(
                    f"the server did not store {len(missing)} of {len(batch)} contributions of a "
                    f"batch: {', '.join(missing)}{reason}"
                )
            )
        logger.info("uploaded %d contributions to %s", len(batch), project)
        return sorted(wanted)

    def _columns(self, project: str, batch: list[Contribution]) -> dict[str, str | None]:
        """The project's data columns with their units, plus those of ``batch``, sorted by path.

        Existing columns keep their unit (the server converts to it). Sorting puts ``D.S`` before
        ``D.Si``: the client rejects a path that is a prefix of one it has already seen.
        """
        with self._errors(f"reading the columns of {project}"):
            existing = self.client.get_project(name=project, fields=["columns"]).get("columns", [])
        columns = {}
        for contribution in batch:
            columns |= data_columns(contribution.data)
        for column in existing:
            if column["path"].startswith("data."):
                unit = column.get("unit", "NaN")
                columns[column["path"].removeprefix("data.")] = None if unit == "NaN" else unit
        return dict(sorted(columns.items()))

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Turn the client's failures (refused requests, network errors, bad payloads) into
        ``PublishError``, without the key."""
        from bravado.exception import HTTPError
        from jsonschema.exceptions import ValidationError
        from mpcontribs.client import MPContribsClientError
        from requests import RequestException
        from swagger_spec_validator.common import SwaggerValidationError

        try:
            yield
        except (
            MPContribsClientError,
            HTTPError,
            RequestException,
            ValidationError,
            SwaggerValidationError,
        ) as exc:
            raise PublishError(self._redacted(f"{doing}: {exc}")) from None

    def _redacted(self, text: str) -> str:
        return text.replace(self.api_key, "<api key>")


def client_url(host: str) -> str:
    """The URL ``mpcontribs-client`` makes of ``host`` (https for materialsproject.org hosts)."""
    secure = host.endswith(".materialsproject.org") and not host.startswith("localhost.")
    return f"{'https' if secure else 'http'}://{host}"


def _client_module():
    """``mpcontribs.client``, imported without pint's warnings about the units it redefines, with
    its records sent through the logging tree (its own handlers print to the streams of its import
    time) so that the command line's verbosity governs them."""
    pint_log = logging.getLogger("pint")
    level = pint_log.level
    pint_log.setLevel(logging.ERROR)
    try:
        import mpcontribs.client
    except ImportError:
        raise PublishError(
            "publishing needs mpcontribs-client: pip install 'amorph[publish]'"
        ) from None
    finally:
        pint_log.setLevel(level)
    client_log = logging.getLogger("mpcontribs.client")
    client_log.handlers.clear()
    client_log.setLevel(logging.NOTSET)
    client_log.propagate = True
    return mpcontribs.client


@contextmanager
def _client_errors_logged() -> Iterator[list[str]]:
    """Collect the error messages the client logs (it logs, not raises, what the server refuses)."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage().removesuffix("..."))

    handler = Collect(logging.ERROR)
    client_log = logging.getLogger("mpcontribs.client")
    client_log.addHandler(handler)
    try:
        yield messages
    finally:
        client_log.removeHandler(handler)
