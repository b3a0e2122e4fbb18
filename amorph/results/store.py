"""Where job outputs live: an embedded JSON JobStore under ``outputs/`` by default, or any jobflow store.

The embedded store needs no server: documents go to ``jobs.json`` and large data to ``data.json``,
each rewritten atomically on every update. For MongoDB (HPC), pass a jobflow store file
(``JobStore.from_file`` format) instead.
"""

from __future__ import annotations

from pathlib import Path

import orjson
from jobflow import JobStore
from maggma.stores import JSONStore

from amorph.files import atomic_path


class AtomicJSONStore(JSONStore):
    """A writable maggma ``JSONStore`` whose file is replaced atomically, never left half-written."""

    def update_json_file(self) -> None:
        data = list(self.query())
        for doc in data:
            doc.pop("_id", None)
        with atomic_path(self.paths[0]) as tmp:
            tmp.write_bytes(
                orjson.dumps(
                    data, option=self.serialization_option, default=self.serialization_default
                )
            )


def local_store(directory: str | Path) -> JobStore:
    """The embedded store in ``directory`` (created if needed)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    docs = AtomicJSONStore(str(directory / "jobs.json"), read_only=False)
    data = AtomicJSONStore(str(directory / "data.json"), read_only=False)
    return JobStore(docs, additional_stores={"data": data})


def open_store(config: str | Path | None, outputs: str | Path) -> JobStore:
    """The store named by a jobflow store file ``config``, else the embedded one under ``outputs/store``."""
    if config is not None:
        return JobStore.from_file(str(config))
    return local_store(Path(outputs) / "store")
