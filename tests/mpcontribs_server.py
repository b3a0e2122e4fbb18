"""A loopback MPContribs API (5.10.5) for testing ``amorph publish`` with the real client.

It serves the shared ``apispec-5.10.5.json`` at ``/apispec.json`` and implements, in memory, the
endpoints ``mpcontribs-client`` uses: projects (query, get, create, update incl. columns, delete),
contributions (query with counts and pages, get, bulk create, bulk delete) and their structures,
tables and attachments. It enforces the server-side rules of ``../shared/README.md``
independently of amorph's own validation:

* ``data`` keys of ASCII letters and digits, at most 4 keys deep, values strings or numbers;
* quantities ``"<number>[±<error>] <unit>"`` (two words, finite numbers) are converted to the
  column unit once a column exists (HTTP 400 on another dimension), else ``to_compact()``-ed like
  the real server, whose choice then becomes the column unit. When ``init_columns`` resets the
  columns (``columns: []``, which the client sends after every submission) they are re-derived
  from the stored data, so declared but unused columns disappear, as on the real server;
* at most 10 structures, tables and attachments per contribution, an attachment at most 2.4 MiB
  (after gzip), a request body at most 15 MB and 1000 contributions, unique identifiers;
* API keys: an unknown ``X-API-Key`` is refused with 401 (as the gateway does), writes need a
  known key, private projects are visible to their owner only.

A request that breaks a rule is refused as a whole with ``{"error": ...}``, as the real server
does. Lower ``ServerState.max_body_bytes`` to make the server refuse what the client sends.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import math
import re
import secrets
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from tokenize import TokenError
from typing import Any

import pint
from flask import Flask, Response, request
from werkzeug.serving import make_server

SPEC = Path(__file__).resolve().parents[1] / ".." / "shared" / "mpcontribs" / "apispec-5.10.5.json"
PORTS = (
    5000,
    5002,
    5003,
    5005,
    10000,
    10002,
    10003,
    10005,
    20000,
    20005,
)  # mpcontribs-client's whitelist
VERSION = "5.10.5"
MAX_ATTACHMENT_BYTES = 2.4 * 1024 * 1024
MAX_BODY_BYTES = 15 * 1024 * 1024
MAX_CONTRIBUTIONS = 1000
MAX_COMPONENTS = 10
MAX_DEPTH = 4
COMPONENTS = ("structures", "tables", "attachments")
MIMES = ("application/gzip", "image/jpeg", "image/png", "image/gif", "image/tiff")
CONTRIBUTION_FIELDS = (
    "id",
    "project",
    "identifier",
    "formula",
    "is_public",
    "last_modified",
    "needs_build",
)
PROJECT_FIELDS = ("name", "is_public", "title", "owner", "is_approved", "unique_identifiers")
ALL_PROJECT_FIELDS = (
    *PROJECT_FIELDS,
    "long_title",
    "authors",
    "description",
    "references",
    "license",
    "other",
    "columns",
    "stats",
)
UPDATABLE_PROJECT_FIELDS = ("title", "long_title", "authors", "description", "references", "other")
COMPONENT_FIELDS = {
    "structures": ("id", "name", "md5"),
    "tables": ("id", "name", "md5", "attrs", "columns", "total_data_rows", "total_data_pages"),
    "attachments": ("id", "name", "mime", "md5"),
}
KEY = re.compile(r"^[A-Za-z0-9]+$")
PROJECT_NAME = re.compile(r"^[a-zA-Z0-9_]{3,31}$")

units = pint.UnitRegistry()
units.define("atom = 1")
BAD_UNIT = (
    AttributeError,
    TypeError,
    ValueError,
    AssertionError,
    TokenError,
)  # pint's parse errors


class Refused(Exception):
    """A request the server answers with ``{field: message}`` and ``status``; the gateway's refusal
    of an unknown API key says ``message``, the API itself ``error``."""

    def __init__(self, message: str, status: int = 400, field: str = "error"):
        super().__init__(message)
        self.status = status
        self.field = field


@dataclass
class ServerState:
    """Everything the server holds; tests may inspect it, or change the limits and users."""

    users: dict[str, str] = field(default_factory=dict)  # API key -> owner ("provider:email")
    projects: dict[str, dict] = field(default_factory=dict)
    contributions: dict[str, dict] = field(default_factory=dict)
    components: dict[str, dict[str, dict]] = field(
        default_factory=lambda: {c: {} for c in COMPONENTS}
    )
    max_body_bytes: int = MAX_BODY_BYTES
    requests: list[str] = field(default_factory=list)  # "METHOD path" of every request served
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_project(
        self, name: str, owner: str, *, is_public: bool = False, title: str | None = None
    ) -> dict:
        project = {
            "name": name,
            "title": title or f"Project {name}"[:30],
            "owner": owner,
            "is_public": is_public,
            "is_approved": is_public,
            "unique_identifiers": True,
            "authors": "A. Author",
            "description": f"The {name} project.",
            "references": [{"label": "REF", "url": "https://example.org"}],
            "license": "CCA4",
            "columns": [],
            "stats": {},
        }
        self.projects[name] = project
        return project

    def project_contributions(self, name: str) -> list[dict]:
        return [c for c in self.contributions.values() if c["project"] == name]


# ---------------------------------------------------------------- data rules and unit conversion


def checked_data(data: Any, columns: dict[str, dict]) -> dict:
    """``data`` with every quantity converted to its column unit; ``Refused`` if a rule is broken.

    ``columns`` maps "data.a.b" paths to column dicts and gains a column for every new path.
    """
    if not isinstance(data, dict):
        raise Refused("data must be an object")
    return _walk(data, ("data",), columns)


def _walk(node: dict, path: tuple[str, ...], columns: dict[str, dict]) -> dict:
    out = {}
    for key, value in node.items():
        where = ".".join((*path, key))
        if not isinstance(key, str) or not KEY.match(key):
            raise Refused(f"invalid key {key!r} in {where}: use letters and digits only")
        if len(path) > MAX_DEPTH:
            raise Refused(f"{where} is nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            out[key] = _walk(value, (*path, key), columns)
        elif isinstance(value, list):
            raise Refused(f"{where} is a list; lists are not allowed in data")
        elif isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise Refused(f"{where}: values must be strings or numbers")
        else:
            out[key] = _stored_value(where, value, columns)
    return out


def _stored_value(path: str, value: str | float, columns: dict[str, dict]) -> Any:
    """A number or ``"<number>[±<error>] <unit>"`` (one space, as the server splits words) becomes a
    quantity converted to its column unit; anything else is text. Non-finite numbers are refused."""
    text = str(value).strip()
    words = text.split()
    numbers = None
    if len(words) == 1:
        numbers = _floats(words)
    elif len(words) == 2:
        numbers = _floats(words[0].split("±", 1))
    if numbers is None:
        unit = columns.get(path, {}).get("unit", "NaN")
        if unit != "NaN":
            raise Refused(f"{path}: {text!r} is not a quantity but its column has unit {unit}")
        columns.setdefault(path, {"path": path, "unit": "NaN"})
        return text
    if not all(math.isfinite(n) for n in numbers):
        raise Refused(f"{path}: {text!r} is not a finite number")
    try:
        quantity = units.Quantity(
            numbers[0], units.Unit(words[1]) if len(words) == 2 else units.dimensionless
        )
    except BAD_UNIT:
        raise Refused(f"{path}: cannot parse the unit of {text!r}") from None
    column = columns.get(path)
    if column is None:
        target = quantity.to_compact().units  # the real server picks "compact" units on its own
        columns[path] = {"path": path, "unit": str(target)}
    elif column["unit"] == "NaN":
        raise Refused(f"{path}: column {path} holds text, not quantities")
    else:
        target = units.Unit(column["unit"]) if column["unit"] else units.dimensionless
    try:
        converted = quantity.to(target)
        error = (
            None
            if len(numbers) == 1
            else units.Quantity(numbers[1], quantity.units).to(target).magnitude
        )
    except pint.errors.DimensionalityError:
        raise Refused(f"Can't convert [{quantity.units}] to [{target}] for {path}!") from None
    stored = {"value": float(converted.magnitude), "unit": str(target)}
    if error is not None:
        stored["error"] = float(error)
    stored["display"] = (
        f"{stored['value']:.6g}{'' if error is None else f'±{error:.2g}'} {target:~P}".strip()
    )
    return stored


def _floats(texts: list[str]) -> list[float] | None:
    try:
        return [float(t) for t in texts]
    except ValueError:
        return None


def leaf_columns(data: dict, path: str = "data") -> dict[str, str]:
    """Column path -> unit of every leaf of stored ``data`` ("NaN" for text)."""
    result = {}
    for key, value in data.items():
        where = f"{path}.{key}"
        if isinstance(value, dict) and "value" not in value:
            result |= leaf_columns(value, where)
        else:
            result[where] = value["unit"] if isinstance(value, dict) else "NaN"
    return result


def _md5(document: dict) -> str:
    return hashlib.md5(json.dumps(document, sort_keys=True).encode()).hexdigest()


def checked_component(kind: str, element: Any, where: str) -> dict:
    """A structure, table or attachment as submitted, checked; ``Refused`` if it breaks a rule."""
    if not isinstance(element, dict) or not isinstance(element.get("name"), str):
        raise Refused(f"{where}: each of {kind} must be an object with a name")
    if kind == "structures" and not {"lattice", "sites"} <= element.keys():
        raise Refused(f"{where}: a structure needs lattice and sites")
    if kind == "tables" and not {"columns", "index", "data"} <= element.keys():
        raise Refused(f"{where}: a table needs columns, index and data")
    if kind == "attachments":
        if element.get("mime") not in MIMES:
            raise Refused(
                f"{where}: attachment mime {element.get('mime')!r} is not one of {', '.join(MIMES)}"
            )
        try:
            content = base64.b64decode(element.get("content", ""), validate=True)
        except (binascii.Error, TypeError):
            raise Refused(f"Attachment {element['name']} not base64 encoded!") from None
        if len(content) > MAX_ATTACHMENT_BYTES:
            raise Refused(
                f"Attachment {element['name']} too large ({len(content)} > {MAX_ATTACHMENT_BYTES})!"
            )
        if element["mime"] == "application/gzip" and content[:2] != b"\x1f\x8b":
            raise Refused(f"Attachment {element['name']} is not gzip data")
    body = {k: v for k, v in element.items() if k not in ("name", "attrs")}
    return {**element, "md5": _md5(body)}


# ---------------------------------------------------------------- the Flask app


def create_app(state: ServerState, spec_path: Path = SPEC) -> Flask:
    """The API over ``state``; every handler runs under ``state.lock``."""
    app = Flask("mpcontribs_test_server")
    spec_text = spec_path.read_text()

    def user() -> str | None:
        key = request.headers.get("X-Api-Key")
        if key is None:
            return None
        if key not in state.users:
            raise Refused("Invalid authentication credentials", 401, field="message")
        return state.users[key]

    def writer() -> str:
        owner = user()
        if owner is None:
            raise Refused("an API key is required to change data", 401)
        return owner

    def visible_project(name: str) -> dict:
        project = state.projects.get(name)
        if project is None or not (project["is_public"] or project["owner"] == user()):
            raise Refused(f"project {name} not found", 404)
        return project

    def owned_project(name: str) -> dict:
        owner = writer()
        project = state.projects.get(name)
        if project is None:
            raise Refused(f"project {name} not found", 404)
        if project["owner"] != owner:
            raise Refused(f"not allowed to change project {name}", 403)
        return project

    @app.errorhandler(Refused)
    def refused(exc: Refused):
        return {exc.field: str(exc)}, exc.status

    @app.before_request
    def lock_and_log():
        state.lock.acquire()
        state.requests.append(f"{request.method} {request.path}")

    @app.teardown_request
    def unlock(exc=None):
        state.lock.release()

    @app.get("/apispec.json")
    def apispec():
        return Response(spec_text, mimetype="application/json")

    @app.get("/healthcheck")
    def healthcheck():
        return {"status": "OK", "version": VERSION}

    # ------------------------------------------------------------ projects

    @app.get("/projects/")
    def query_projects():
        owner = user()
        rows = [p for p in state.projects.values() if p["is_public"] or p["owner"] == owner]
        rows = _filter(rows, {"name": "name", "title": "title"})
        return _page(
            rows, lambda p: _select(p, _fields(PROJECT_FIELDS, ALL_PROJECT_FIELDS)), default=100
        )

    @app.get("/projects/<name>/")
    def get_project(name):
        return _select(visible_project(name), _fields(PROJECT_FIELDS, ALL_PROJECT_FIELDS))

    @app.post("/projects/")
    def create_project():
        owner = writer()
        body = request.get_json(silent=True) or {}
        name, title = body.get("name", ""), body.get("title", "")
        if not PROJECT_NAME.match(name):
            raise Refused(f"invalid project name {name!r}")
        if name in state.projects or any(p["title"] == title for p in state.projects.values()):
            raise Refused(f"a project named {name!r} or titled {title!r} exists")
        description = body.get("description", "")
        if (
            not 5 <= len(title) <= 30
            or not body.get("authors")
            or not 5 <= len(description) <= 2000
        ):
            raise Refused("title (5-30 characters), authors and description (5-2000) are required")
        if not body.get("references"):
            raise Refused("at least one reference is required")
        project = state.add_project(name, owner, title=title)
        project.update({k: body[k] for k in UPDATABLE_PROJECT_FIELDS if k in body})
        return project

    @app.put("/projects/<name>/")
    def update_project(name):
        project = owned_project(name)
        body = request.get_json(silent=True) or {}
        for key, value in body.items():
            if key == "columns":
                project["columns"] = (
                    _declared_columns(value) if value else _derived_columns(state, name)
                )
            elif key in UPDATABLE_PROJECT_FIELDS:
                project[key] = value
            else:
                raise Refused(f"cannot update {key}")
        return {"count": 1}

    @app.delete("/projects/<name>/")
    def delete_project(name):
        owned_project(name)
        for contribution in state.project_contributions(name):
            _delete_contribution(state, contribution)
        del state.projects[name]
        return {"count": 1}

    # ------------------------------------------------------------ contributions

    def visible_contributions() -> list[dict]:
        owner = user()
        return [
            c
            for c in state.contributions.values()
            if c["project"] in state.projects
            and (c["is_public"] or state.projects[c["project"]]["owner"] == owner)
        ]

    def contribution_filters():
        return {"id": "id", "project": "project", "identifier": "identifier", "formula": "formula"}

    @app.get("/contributions/")
    def query_contributions():
        rows = sorted(
            _filter(visible_contributions(), contribution_filters()), key=lambda c: c["id"]
        )
        fields = _fields(CONTRIBUTION_FIELDS, (*CONTRIBUTION_FIELDS, "data", *COMPONENTS))
        return _page(rows, lambda c: _contribution_view(state, c, fields), default=200)

    @app.get("/contributions/<cid>/")
    def get_contribution(cid):
        rows = [c for c in visible_contributions() if c["id"] == cid]
        if not rows:
            raise Refused(f"contribution {cid} not found", 404)
        fields = _fields(CONTRIBUTION_FIELDS, (*CONTRIBUTION_FIELDS, "data", *COMPONENTS))
        return _contribution_view(state, rows[0], fields)

    @app.post("/contributions/")
    def create_contributions():
        owner = writer()
        # read the whole body, so that the connection stays usable after a refusal
        size = len(request.get_data())
        if size > state.max_body_bytes:
            raise Refused(
                f"request body of {size} bytes exceeds the limit of {state.max_body_bytes} bytes",
                413,
            )
        body = request.get_json(silent=True)
        if not isinstance(body, list):
            raise Refused("expected a list of contributions")
        if len(body) > MAX_CONTRIBUTIONS:
            raise Refused(
                f"{len(body)} contributions in one request; the limit is {MAX_CONTRIBUTIONS}"
            )
        created = _create(state, owner, body)
        return {
            "data": [{k: c[k] for k in ("id", "project", "identifier")} for c in created],
            "count": len(created),
        }

    @app.delete("/contributions/")
    def delete_contributions():
        owner = writer()
        rows = sorted(
            _filter(visible_contributions(), contribution_filters()), key=lambda c: c["id"]
        )
        rows = [c for c in rows if state.projects[c["project"]]["owner"] == owner]
        deleted = rows[: _per_page(200)]  # pages shift as rows go: always delete the first page
        for contribution in deleted:
            _delete_contribution(state, contribution)
        return {
            "count": len(deleted),
            "has_more": len(rows) > len(deleted),
            "total_count": len(rows),
            "total_pages": 1,
        }

    # ------------------------------------------------------------ structures, tables, attachments

    for kind in COMPONENTS:
        app.add_url_rule(f"/{kind}/", f"query_{kind}", _component_query(state, kind))
        app.add_url_rule(f"/{kind}/<pk>/", f"get_{kind}", _component_get(state, kind))

    return app


def _fields(default: tuple[str, ...], every: tuple[str, ...]) -> list[str]:
    """The ``_fields`` asked for (comma separated or repeated); ``_all`` means every field."""
    if "_fields" not in request.args:
        return list(default)
    names = [n for value in request.args.getlist("_fields") for n in value.split(",") if n]
    return list(every) if "_all" in names else names


def _select(document: dict, fields: list[str]) -> dict:
    out = {}
    for name in fields:
        head, _, rest = name.partition(".")
        if head in document:
            out[head] = (
                _select(document[head], [rest])
                if rest and isinstance(document[head], dict)
                else document[head]
            )
    return out


def _filter(rows: list[dict], filters: dict[str, str]) -> list[dict]:
    """Rows matching the exact and ``__in`` filters of the query; other parameters are ignored."""
    for param, key in filters.items():
        if param in request.args:
            rows = [r for r in rows if str(r.get(key)) == request.args[param]]
        if f"{param}__in" in request.args:
            wanted = {v for value in request.args.getlist(f"{param}__in") for v in value.split(",")}
            rows = [r for r in rows if str(r.get(key)) in wanted]
    return rows


def _per_page(default: int) -> int:
    return max(1, int(request.args.get("per_page") or request.args.get("_limit") or default))


def _page(rows: list[dict], view, default: int) -> dict:
    per_page = _per_page(default)
    page = max(1, int(request.args.get("page", 1)))
    chunk = rows[(page - 1) * per_page : page * per_page]
    total_pages = max(1, math.ceil(len(rows) / per_page))
    return {
        "data": [view(r) for r in chunk],
        "total_count": len(rows),
        "total_pages": total_pages,
        "has_more": page < total_pages,
    }


def _contribution_view(state: ServerState, contribution: dict, fields: list[str]) -> dict:
    out = _select(contribution, [f for f in fields if f not in COMPONENTS])
    out["id"] = contribution["id"]
    for kind in COMPONENTS:
        if kind in fields:
            out[kind] = [
                _select(state.components[kind][i], ["id", "name", "md5"])
                for i in contribution[kind]
            ]
    return out


def _create(state: ServerState, owner: str, body: list) -> list[dict]:
    """Check every contribution (all or nothing), then store them and update the columns."""
    columns = {
        name: {c["path"]: dict(c) for c in p["columns"]} for name, p in state.projects.items()
    }
    taken = {(c["project"], c["identifier"]) for c in state.contributions.values()}
    prepared = []
    for n, item in enumerate(body):
        if not isinstance(item, dict):
            raise Refused(f"contribution #{n} is not an object")
        name, identifier = item.get("project"), item.get("identifier")
        project = state.projects.get(name)
        if project is None or project["owner"] != owner:
            raise Refused(f"contribution #{n}: project {name!r} not found or not yours", 403)
        if not isinstance(identifier, str) or not identifier.strip():
            raise Refused(f"contribution #{n}: identifier missing")
        if project["unique_identifiers"] and (name, identifier) in taken:
            raise Refused(f"contribution #{n}: identifier {identifier} already exists in {name}")
        taken.add((name, identifier))
        data = checked_data(item.get("data", {}), columns[name])
        parts = {}
        for kind in COMPONENTS:
            elements = item.get(kind) or []
            if len(elements) > MAX_COMPONENTS:
                raise Refused(
                    f"{identifier}: {len(elements)} {kind}; at most {MAX_COMPONENTS} allowed"
                )
            parts[kind] = [
                checked_component(kind, e, f"{identifier} {kind}[{i}]")
                for i, e in enumerate(elements)
            ]
        prepared.append((name, identifier, item.get("formula") or identifier, data, parts))
    created = []
    for name, identifier, formula, data, parts in prepared:
        ids = {}
        for kind, elements in parts.items():
            ids[kind] = []
            for element in elements:
                element_id = secrets.token_hex(12)
                state.components[kind][element_id] = {**element, "id": element_id}
                ids[kind].append(element_id)
        contribution = {
            "id": secrets.token_hex(12),
            "project": name,
            "identifier": identifier,
            "formula": formula,
            "is_public": False,
            "needs_build": True,
            "last_modified": "2024-01-01T00:00:00",
            "data": data,
            **ids,
        }
        state.contributions[contribution["id"]] = contribution
        created.append(contribution)
    for name in {c["project"] for c in created}:
        kept = {c["path"]: c for c in state.projects[name]["columns"]}
        state.projects[name]["columns"] = list((kept | columns[name]).values())
    return created


def _declared_columns(columns: list) -> list[dict]:
    """Columns set by ``init_columns``; a unit must parse (``""`` is dimensionless)."""
    declared = []
    for column in columns:
        path, unit = column.get("path"), column.get("unit", "NaN")
        if unit not in ("NaN", ""):
            try:
                units.Unit(unit)
            except BAD_UNIT:
                raise Refused(f"unit {unit!r} of column {path} is not understood") from None
        declared.append(
            {"path": path, "unit": unit} if path.startswith("data.") else {"path": path}
        )
    return declared


def _derived_columns(state: ServerState, name: str) -> list[dict]:
    """Columns re-derived from the stored data, as the server does when columns are reset to []."""
    found = {}
    for contribution in state.project_contributions(name):
        found |= leaf_columns(contribution["data"])
    columns = [{"path": path, "unit": unit} for path, unit in found.items()]
    contributions = state.project_contributions(name)
    return columns + [{"path": kind} for kind in COMPONENTS if any(c[kind] for c in contributions)]


def _delete_contribution(state: ServerState, contribution: dict) -> None:
    for kind in COMPONENTS:
        for element_id in contribution[kind]:
            state.components[kind].pop(element_id, None)
    del state.contributions[contribution["id"]]


def _component_query(state: ServerState, kind: str):
    def view():
        rows = _filter(
            list(state.components[kind].values()), {"id": "id", "md5": "md5", "name": "name"}
        )
        fields = _fields(
            COMPONENT_FIELDS[kind],
            COMPONENT_FIELDS[kind] + ("content", "lattice", "sites", "charge"),
        )
        return _page(rows, lambda r: _select(r, fields), default=10)

    return view


def _component_get(state: ServerState, kind: str):
    def view(pk):
        element = state.components[kind].get(pk)
        if element is None:
            raise Refused(f"{kind} {pk} not found", 404)
        if kind != "tables":
            return dict(element)
        per_page = int(request.args.get("data_per_page", 20))
        page = int(request.args.get("data_page", 1))
        rows = element["data"]
        return {
            **{k: v for k, v in element.items() if k != "data"},
            "data": rows[(page - 1) * per_page : page * per_page],
            "total_data_rows": len(rows),
            "total_data_pages": max(1, math.ceil(len(rows) / per_page)),
        }

    return view


# ---------------------------------------------------------------- running it on a loopback port


class RunningServer:
    """The app served from a thread on the first free whitelisted port of 127.0.0.1."""

    def __init__(self, state: ServerState):
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
        app = create_app(state)
        self.state = state
        self._server = _bind_free_port(app)
        self.port = self._server.server_port
        self.host = f"localhost:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def _bind_free_port(app: Flask):
    """Bind the first whitelisted port free on 127.0.0.1 (atomic, so parallel runs differ)."""
    for port in PORTS:
        try:
            server = make_server("127.0.0.1", port, app, threaded=True)
        except OSError:
            continue
        if not _ipv6_loopback_taken(port):  # "localhost" may resolve to ::1 first
            return server
        server.server_close()
    raise RuntimeError(f"none of the ports {PORTS} is free on 127.0.0.1")


def _ipv6_loopback_taken(port: int) -> bool:
    try:
        with socket.create_connection(("::1", port), timeout=0.2):
            return True
    except OSError:
        return False


def free_whitelisted_port() -> int:
    """A whitelisted port where nothing listens now (for a 'server is down' test)."""
    for port in PORTS:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0 and not _ipv6_loopback_taken(port):
                return port
    raise RuntimeError(f"every port of {PORTS} is in use")
