"""The old embedded store (``jobs.json`` and ``data.json`` in the store folder), imported once,
losslessly, into the SQLite database by the first writable open."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import orjson
from jobflow import JobStore
from maggma.core import Store

from amorph.errors import StoreError
from amorph.results.sqlite_store import SQLiteStore

logger = logging.getLogger(__name__)

LEGACY_KEYS = {"jobs.json": ["uuid", "index"], "data.json": ["blob_uuid"]}


def legacy_files(directory: Path) -> list[str]:
    """The old JSON store files in ``directory``."""
    return [name for name in LEGACY_KEYS if (directory / name).exists()]


def _read_legacy(path: Path, key: list[str]) -> list[dict] | None:
    """The documents of an old JSON store file, each with its ``key`` fields; None if another
    process imported (and renamed) it meanwhile."""
    try:
        docs = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, orjson.JSONDecodeError) as exc:
        raise StoreError(
            f"old JSON store file {path} cannot be read ({exc}), nothing was imported: "
            "restore it from a copy, or move it away to start a new store"
        ) from None
    if not isinstance(docs, list) or not all(
        isinstance(doc, dict) and all(k in doc for k in key) for doc in docs
    ):
        raise StoreError(
            f"{path} is not an old amorph JSON store (a list of documents with fields "
            f"{', '.join(key)}), nothing was imported: move it away to start a new store"
        )
    return [{k: v for k, v in doc.items() if k != "_id"} for doc in docs]


def import_legacy(store: JobStore, directory: Path, names: list[str]) -> None:
    """Copy the old JSON store files ``names`` into ``store``, then rename them ``*.imported``.

    Upserts by key, so an import interrupted before the renames, or run by two processes at once,
    is harmless.
    """
    stores: dict[str, Store] = store.additional_stores  # type: ignore[has-type]  # unannotated in jobflow
    targets = {"jobs.json": store.docs_store, "data.json": stores["data"]}
    counts = {}
    for name in names:
        docs = _read_legacy(directory / name, LEGACY_KEYS[name])
        if docs is not None:
            targets[name].update(docs, key=LEGACY_KEYS[name])
            counts[name] = len(docs)
    for name in counts:
        with contextlib.suppress(FileNotFoundError):
            (directory / name).replace(directory / f"{name}.imported")
    database = store.docs_store
    assert isinstance(database, SQLiteStore)  # the embedded store's, which alone imports them
    logger.warning(
        "imported the old JSON store in %s (%s) into %s; the JSON files are kept as *.imported",
        directory,
        ", ".join(f"{name}: {n} documents" for name, n in counts.items()),
        database.path,
    )
