"""The MPContribs server's rules for a contribution, checked offline.

The API (5.10.5) and ``mpcontribs-client`` (5.10.x) accept a contribution only if

* every ``data`` key is ASCII letters and digits, a leaf is at most :data:`MAX_DEPTH` keys below
  ``data``, and values are strings or numbers (no lists, no booleans, no None);
* a string ``"<number> <unit>"`` or ``"<number>±<error> <unit>"`` is a quantity: its numbers must
  be finite and its unit one that pint understands (the server answers 400 otherwise);
* it has at most 10 structures, 10 tables and 10 attachments; an attachment is base64 of gzip,
  PNG, JPEG, GIF or TIFF data of at most 2.4 MiB;
* it fits in one request body (15 MB, 1000 contributions), and a project has at most 160 columns
  (every data path, plus one each for structures, tables and attachments).

Identifiers must be unique in the project; amorph's own identifiers are also kept to letters,
digits, ``.`` and ``-`` (the client joins identifiers with commas in queries, so a comma would
break look-ups).
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
import re
from collections.abc import Iterable
from tokenize import TokenError
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from amorph.publish.contributions import Contribution

MIB = 1024 * 1024
MAX_ATTACHMENT_BYTES = int(2.4 * MIB)
MAX_REQUEST_BYTES = 15 * MIB
MAX_REQUEST_CONTRIBUTIONS = 1000
MAX_COMPONENTS = 10
MAX_COLUMNS = 160
# the kinds of contribution components; the server adds a project column for each kind in use
COMPONENTS = ("structures", "tables", "attachments")
MAX_DEPTH = 4
ATTACHMENT_MIMES = ("application/gzip", "image/jpeg", "image/png", "image/gif", "image/tiff")
GZIP_MAGIC = b"\x1f\x8b"
DATA_KEY = re.compile(r"[A-Za-z0-9]+")
IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,99}")
# what pint raises for units it cannot parse (its own errors derive from the first three)
UNPARSABLE_UNIT = (ValueError, TypeError, AttributeError, AssertionError, TokenError)


def contribution_problems(contribution: Contribution) -> list[str]:
    """Every rule ``contribution`` breaks, one readable reason each (empty when it is valid)."""
    problems = []
    if not IDENTIFIER.fullmatch(contribution.identifier):
        problems.append(
            f"identifier {contribution.identifier!r} must be letters, digits, '.' and '-' "
            "(at most 100 characters)"
        )
    problems += data_problems(contribution.data)
    for kind in COMPONENTS:
        count = len(getattr(contribution, kind))
        if count > MAX_COMPONENTS:
            problems.append(f"{count} {kind}; the server allows {MAX_COMPONENTS}")
    problems += [
        p for attachment in contribution.attachments for p in attachment_problems(attachment)
    ]
    size = request_bytes(contribution) / MIB
    if size > MAX_REQUEST_BYTES / MIB:
        problems.append(
            f"{size:.1f} MiB to send; a request is at most {MAX_REQUEST_BYTES / MIB:.0f} MiB"
        )
    return problems


def data_problems(data: dict, path: tuple[str, ...] = ()) -> list[str]:
    """Rule breaks in a ``data`` dict: keys, nesting depth, value types and quantities."""
    problems = []
    for key, value in data.items():
        where = ".".join((*path, str(key)))
        if not isinstance(key, str) or not DATA_KEY.fullmatch(key):
            problems.append(
                f"data key {where!r} has characters other than ASCII letters and digits"
            )
        if len(path) + 1 > MAX_DEPTH:
            problems.append(f"data key {where!r} is nested more than {MAX_DEPTH} levels deep")
        elif isinstance(value, dict):
            problems += data_problems(value, (*path, str(key)))
        elif isinstance(value, bool) or not isinstance(value, (str, int, float)):
            problems.append(
                f"data {where!r} is a {type(value).__name__}; values are strings or numbers"
            )
        elif isinstance(value, float) and not math.isfinite(value):
            problems.append(f"data {where!r} is {value}, not a finite number")
        elif isinstance(value, str) and (reason := quantity_problem(value)):
            problems.append(f"data {where!r}: {reason}")
    return problems


def quantity_problem(text: str) -> str | None:
    """Why the server would refuse ``text`` as a quantity, or None (also for plain text)."""
    numbers, unit = split_quantity(text)
    if numbers is None:
        return None
    if not all(math.isfinite(n) for n in numbers):
        return f"{text!r} is not a finite number"
    if " " in unit:
        return f"write the unit of {text!r} without spaces (the server reads '<number> <unit>')"
    error = unit_registry_error(unit) if unit else None
    return f"unit {unit!r} of {text!r} is not understood ({error})" if error else None


def split_quantity(text: str) -> tuple[list[float] | None, str]:
    """``([value], "")`` for a number, ``([value] or [value, error], unit)`` for a quantity, else
    ``(None, "")``: the server reads one word as a number, two as ``<number>[±<error>] <unit>``."""
    words = text.split()
    if len(words) < 2:
        return _floats(words), ""
    numbers = _floats(words[0].split("±", 1))
    return (numbers, " ".join(words[1:])) if numbers else (None, "")


def _floats(texts: list[str]) -> list[float] | None:
    try:
        return [float(t) for t in texts] or None
    except ValueError:
        return None


@functools.cache
def unit_registry_error(unit: str) -> str | None:
    """None if pint parses ``unit`` (as the server and client do), else pint's complaint."""
    registry = _registry()
    try:
        registry.Unit(unit)
    except UNPARSABLE_UNIT as exc:
        return str(exc) or type(exc).__name__
    return None


@functools.cache
def _registry():
    try:
        import pint
    except ImportError:
        from amorph.publish import PublishError

        raise PublishError("checking units needs pint: pip install 'amorph[publish]'") from None

    registry = pint.UnitRegistry()
    registry.define("atom = 1")
    return registry


def attachment_problems(attachment: dict[str, Any]) -> list[str]:
    """Rule breaks of one attachment ``{"name", "mime", "content"}`` (content base64)."""
    name = attachment.get("name", "attachment")
    if attachment.get("mime") not in ATTACHMENT_MIMES:
        mimes = ", ".join(ATTACHMENT_MIMES)
        return [f"attachment {name}: mime {attachment.get('mime')!r} is not one of {mimes}"]
    try:
        content = base64.b64decode(attachment.get("content", ""), validate=True)
    except (binascii.Error, TypeError):
        return [f"attachment {name}: content is not base64"]
    if attachment["mime"] == "application/gzip" and not content.startswith(GZIP_MAGIC):
        return [f"attachment {name}: content is not gzip data"]
    if len(content) > MAX_ATTACHMENT_BYTES:
        size, limit = len(content) / MIB, MAX_ATTACHMENT_BYTES / MIB
        reason = f"is {size:.2f} MiB after gzip, over the {limit:.1f} MiB limit"
        return [f"attachment {name} {reason} (use fewer --attachment-frames)"]
    return []


def column_problem(datas: Iterable[dict]) -> str | None:
    """Why one project could not hold the columns of all these ``data`` dicts, or None."""
    paths = set().union(*(data_columns(data) for data in datas))
    total = len(paths) + len(COMPONENTS)
    if total > MAX_COLUMNS:
        return (
            f"the project would have {total} columns ({len(paths)} data columns plus "
            f"{', '.join(COMPONENTS)}); the server allows {MAX_COLUMNS}"
        )
    return None


def data_columns(data: dict, prefix: str = "") -> dict[str, str | None]:
    """``init_columns`` argument for ``data``: dotted path -> unit ("" number, None text)."""
    columns = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            columns |= data_columns(value, f"{path}.")
        else:
            numbers, unit = split_quantity(str(value))
            columns[path] = None if numbers is None else unit
    return columns


def request_bytes(contribution: Contribution) -> int:
    """About how many bytes ``contribution`` takes in the client's request body (JSON)."""
    parts = [
        contribution.data,
        *(s.as_dict() for s in contribution.structures),
        *contribution.attachments,
    ]
    parts += [table.to_dict(orient="split") for table in contribution.tables]
    return (
        sum(len(json.dumps(part, default=str)) for part in parts)
        + len(contribution.identifier)
        + 200
    )
