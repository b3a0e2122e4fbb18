"""Benchmark adding one composition's documents to the embedded store, against the old JSON store.

Usage: python scripts/bench_store.py [--sizes 1 100 1000] [--blob-mb 2] [--repeat 3]
           [--real-open-max 100]

A composition is what a campaign writes once its flow is done: 15 job documents, three of them with
~50 kB outputs (lists of floats, like RDFs and MSD curves), and one data blob holding a base64
trajectory of ``--blob-mb`` MB. For each size the store is first filled with that many compositions
(one bulk update per 50 compositions; the old store's files are written directly), then one more
composition is added ``--repeat`` times, each time a new one, and the fastest is reported:
``add`` is ``docs_store.update`` + the data store's ``update`` on the connected store, ``open`` is
building and connecting the store (once; for the embedded store it includes the integrity check a
writer's open runs, SQLite's ``quick_check`` over the whole file), ``check`` that check alone, on a
new connection. The peer is the previous ``AtomicJSONStore``, copied
below: every update rewrites its whole JSON file, and connecting loads all of it, one upsert per
document (quadratic: ~30 s for 100 compositions, so above ``--real-open-max`` its files are
loaded into its in-memory collection directly and its open is not timed). The files live in
a temporary folder, removed after each size (1000 compositions take ~2 GB on disk for each store).
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import mongomock_ng as mongomock
import orjson
from jobflow import JobStore
from maggma.stores import JSONStore

from amorph.files import atomic_path
from amorph.results.sqlite_store import check_integrity
from amorph.results.store import DATABASE, embedded_store

FILL_BATCH = 50  # compositions per bulk update while filling


class AtomicJSONStore(JSONStore):
    """The old embedded store: a ``JSONStore`` whose file is replaced atomically on every update."""

    def update_json_file(self) -> None:
        """Write every document (without ``_id``) to the file, replacing it atomically."""
        data = list(self.query())
        for doc in data:
            doc.pop("_id", None)
        with atomic_path(self.paths[0]) as tmp:
            tmp.write_bytes(
                orjson.dumps(
                    data, option=self.serialization_option, default=self.serialization_default
                )
            )


def old_store(directory: Path) -> JobStore:
    """The old embedded store in ``directory``, connected as it was: its ``connect`` upserts each
    document against all those before it, so opening takes a time quadratic in the store size."""
    docs = AtomicJSONStore(str(directory / "jobs.json"), read_only=False)
    data = AtomicJSONStore(str(directory / "data.json"), read_only=False)
    store = JobStore(docs, additional_stores={"data": data})
    store.connect()
    return store


def old_store_preloaded(directory: Path) -> JobStore:
    """The state ``old_store`` ends in, reached in linear time (one ``insert_many`` per file)."""
    docs = AtomicJSONStore(str(directory / "jobs.json"), read_only=False)
    data = AtomicJSONStore(str(directory / "data.json"), read_only=False)
    for part in (docs, data):
        part._coll = mongomock.MongoClient().db[part.name]
        part._coll.insert_many(orjson.loads(Path(part.paths[0]).read_bytes()))
    return JobStore(docs, additional_stores={"data": data})


def composition(blob: str) -> tuple[list[dict], list[dict]]:
    """One composition's job documents and data blobs, with fresh uuids."""
    formula = f"Li{uuid.uuid4().hex[:6]}"
    docs, blobs = [], []
    for k in range(15):
        job_uuid = str(uuid.uuid4())
        output: dict = {"@class": "MDResult", "temperature_K": 300.0 + k, "energy_eV": -1.5 * k}
        if k in (4, 9, 14):  # ~50 kB of floats: an RDF or MSD curve
            output["curve"] = [0.001 * i + k for i in range(2500)]
        if k == 14:
            blob_uuid = str(uuid.uuid4())
            output["trajectory"] = {"@class": "Trajectory", "blob_uuid": blob_uuid, "store": "data"}
            blobs.append(
                {
                    "blob_uuid": blob_uuid,
                    "job_uuid": job_uuid,
                    "job_index": 1,
                    "data": {"@class": "Trajectory", "npz_base64": blob},
                }
            )
        docs.append(
            {
                "uuid": job_uuid,
                "index": 1,
                "name": f"melt_quench_{k}",
                "output": output,
                "metadata": {"formula": formula},
                "hosts": [str(uuid.uuid4())],
                "completed_at": "2025-01-01T00:00:00",
            }
        )
    return docs, blobs


def add(store: JobStore, docs: list[dict], blobs: list[dict]) -> None:
    """What a campaign does with a finished composition."""
    store.docs_store.update(docs, key=["uuid", "index"])
    store.additional_stores["data"].update(blobs, key="blob_uuid")


def fill_new(directory: Path, n: int, blob: str) -> None:
    """Fill a new embedded store in ``directory``: ``n`` compositions, ``FILL_BATCH`` per update."""
    store = embedded_store(directory)
    for start in range(0, n, FILL_BATCH):
        parts = [composition(blob) for _ in range(min(FILL_BATCH, n - start))]
        add(store, [d for docs, _ in parts for d in docs], [b for _, blobs in parts for b in blobs])
    store.close()


def fill_old(directory: Path, n: int, blob: str) -> None:
    """Write the old store's two JSON lists directly, one composition at a time."""
    with open(directory / "jobs.json", "wb") as jobs, open(directory / "data.json", "wb") as data:
        for i in range(n):
            docs, blobs = composition(blob)
            separator = b"," if i else b"["
            jobs.write(separator + orjson.dumps(docs)[1:-1])
            data.write(separator + orjson.dumps(blobs)[1:-1])
        jobs.write(b"]")
        data.write(b"]")


def timed(opener: Callable[[Path], JobStore], directory: Path, blob: str, repeat: int):
    """Seconds to open the store, and the fastest of ``repeat`` adds of a new composition."""
    start = time.perf_counter()
    store = opener(directory)
    opened = time.perf_counter() - start
    best = float("inf")
    for _ in range(repeat):
        docs, blobs = composition(blob)
        start = time.perf_counter()
        add(store, docs, blobs)
        best = min(best, time.perf_counter() - start)
    store.close()
    return opened, best


def check_time(directory: Path) -> float:
    """Seconds of the integrity check a writer's open runs, on a new connection."""
    path = directory / DATABASE
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, isolation_level=None)
    try:
        conn.execute("BEGIN")
        start = time.perf_counter()
        check_integrity(conn, path)
        return time.perf_counter() - start
    finally:
        conn.close()


def main() -> None:
    """Per size, print the new store's size, fill, open, check and add times, and the old one's."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 100, 1000])
    parser.add_argument("--blob-mb", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--real-open-max",
        type=int,
        default=100,
        help="above this size, load the old store in linear time instead of timing its real open",
    )
    args = parser.parse_args()
    blob = base64.b64encode(os.urandom(int(args.blob_mb * 2**20 * 3 / 4))).decode()
    print(f"one composition: 15 job docs (3 with ~50 kB outputs) + a {args.blob_mb:g} MB blob")
    print(
        f"{'held':>6} {'size new':>9} {'fill new':>9} {'open new':>9} {'check':>9} {'add new':>9}"
        f" {'open old':>9} {'add old':>9} {'old/new add':>11}"
    )
    for n in args.sizes:
        root = Path(tempfile.mkdtemp(prefix="bench_store_"))
        try:
            (root / "new").mkdir()
            (root / "old").mkdir()
            start = time.perf_counter()
            fill_new(root / "new", n, blob)
            fill = time.perf_counter() - start
            new_open, new_add = timed(embedded_store, root / "new", blob, args.repeat)
            check = check_time(root / "new")
            size = (root / "new" / DATABASE).stat().st_size / 1e9
            fill_old(root / "old", n, blob)
            real = n <= args.real_open_max
            opener = old_store if real else old_store_preloaded
            old_open, old_add = timed(opener, root / "old", blob, args.repeat)
        finally:
            shutil.rmtree(root)
        print(
            f"{n:>6} {size:>7.2f}GB {fill:>8.2f}s {new_open:>8.3f}s {check:>8.3f}s "
            f"{new_add:>8.3f}s "
            + (f"{old_open:>8.3f}s " if real else f"{'preload':>9} ")
            + f"{old_add:>8.3f}s {old_add / new_add:>10.1f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()
