"""MongoDB stores named by a store file: each server pinged once, so that an unreachable one fails
within seconds with one line naming host and port."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jobflow import JobStore
from maggma.core import Store
from monty.json import MontyDecoder
from pymongo.errors import PyMongoError

from amorph.errors import StoreError

PING_TIMEOUT_MS = 3000


def _address(store: Any) -> str:  # a MongoDB store of maggma's (host and port, or a URI)
    uri = getattr(store, "uri", None)
    if uri:
        return uri.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]
    return f"{store.host}:{store.port}"


def ping_servers(store: JobStore, path: Path) -> None:
    """Ping each MongoDB server of ``store`` once, through a copy with short timeouts."""
    seen = set()
    stores: dict[str, Store] = store.additional_stores  # type: ignore[has-type]  # unannotated in jobflow
    for part in [store.docs_store, *stores.values()]:
        if not hasattr(part, "mongoclient_kwargs") or _address(part) in seen:
            continue
        seen.add(_address(part))
        probe = MontyDecoder().process_decoded(part.as_dict())
        probe.mongoclient_kwargs = {
            **probe.mongoclient_kwargs,
            "serverSelectionTimeoutMS": PING_TIMEOUT_MS,
            "connectTimeoutMS": PING_TIMEOUT_MS,
        }
        try:
            probe.connect()
            try:
                collection = getattr(probe, "_files_collection", None)
                collection = probe._collection if collection is None else collection
                collection.database.client.admin.command("ping")
            finally:
                probe.close()
        except PyMongoError as exc:
            raise StoreError(
                f"cannot reach MongoDB at {_address(part)} (store file {path}) within "
                f"{PING_TIMEOUT_MS / 1000:g} s: {str(exc).split(',')[0]}"
            ) from None
