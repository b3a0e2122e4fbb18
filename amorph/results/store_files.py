"""Stores named by a file: a jobflow store file (``JobStore.from_file`` format) or a jobflow-remote
project file (its ``jobstore:`` section), YAML, JSON or TOML. Its MongoDB servers are pinged when
opened; such a file can also name the embedded database (``type: SQLiteStore``, with ``path`` and
``collection_name``)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from jobflow import JobStore
from monty.json import MontyDecoder
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from amorph.errors import StoreError
from amorph.results import sqlite_store  # noqa: F401 - jobflow finds `type: SQLiteStore` in it
from amorph.results.mongo import ping_servers


def store_from_file(path: str | Path) -> JobStore:
    """The connected JobStore a store file describes; its MongoDB servers are pinged first.

    Raises
    ------
    StoreError
        The file is missing, unreadable or not a store file, or a server cannot be reached.
    """
    path = Path(path).expanduser().absolute()
    store = _store(path)
    ping_servers(store, path)
    store.connect()
    return store


def _read_spec(path: Path) -> Any:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not a text file"
        raise StoreError(f"cannot read store file {path}: {reason}") from None
    try:
        if path.suffix == ".json":
            return json.loads(text)
        if path.suffix == ".toml":
            return tomllib.loads(text)
        return YAML(typ="safe").load(text)
    except (ValueError, YAMLError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StoreError(f"store file {path} cannot be parsed: {reason}") from None


def _store(path: Path) -> JobStore:
    """The JobStore of a jobflow store file or of a jobflow-remote project file's ``jobstore``."""
    spec = _read_spec(path)
    if isinstance(spec, dict):
        spec = spec.get("jobstore", spec.get("JOB_STORE", spec))
    try:
        if isinstance(spec, dict) and "@class" in spec:
            store = MontyDecoder().process_decoded(spec)
        elif isinstance(spec, dict) and "docs_store" in spec:
            store = JobStore.from_dict_spec(spec)
        else:
            store = None
    except (KeyError, TypeError, ValueError, ImportError, AttributeError) as exc:
        raise StoreError(
            f"store file {path} does not describe a usable store: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(store, JobStore):
        raise StoreError(
            f"{path} is neither a jobflow store file (with `docs_store:`) nor a jobflow-remote "
            "project file (with `jobstore:`)"
        )
    return store
