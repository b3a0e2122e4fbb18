"""Where job outputs live: an embedded SQLite database in ``outputs/store/``, or any jobflow store.

The embedded store is one SQLite file, ``<outputs>/store/amorph.sqlite``, holding jobflow's job
documents (collection ``jobs``) and its large data blobs (collection ``data``) as BSON, each
updated in place inside a transaction. Any number of processes may write and read it at once:
SQLite's locks, waited for up to a busy timeout, serialise the writers, and nothing is rewritten
whole. The database keeps a rollback journal (never WAL), so a read-only open (``?mode=ro``) writes
no byte, not even a journal or shared-memory file, and still sees what live writers commit.
Queries take MongoDB criteria (evaluated by mongomock's matcher); the fields used as update keys
(``uuid``, ``index``, ``blob_uuid``) and a few more are indexed in a side table, so finding a
document by key does not slow down as the store grows. A table ``amorph_meta`` names the format and
its version: a file that is not such a database, is truncated, or comes from a newer amorph is
refused with a :class:`StoreError`, never repaired or overwritten. A folder that still holds the old
JSON store (``jobs.json``, ``data.json``) is imported once, losslessly, by the first writable open,
which then renames the JSON files to ``*.imported``.

For MongoDB (HPC), pass a jobflow store file (``JobStore.from_file`` format, YAML, JSON or TOML)
or a jobflow-remote project file (its ``jobstore:`` section); its MongoDB servers are pinged when
opened, so an unreachable one fails at once with a :class:`StoreError`. Such a file can also name
the embedded database: ``type: SQLiteStore``, with ``path`` and ``collection_name``.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import logging
import math
import os
import sqlite3
import struct
import tomllib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import bson
import orjson
from jobflow import JobStore
from maggma.core import Sort, Store
from mongomock_ng.filtering import NOTHING, filter_applies, iter_key_candidates, resolve_sort_key
from monty.json import MontyDecoder, jsanitize
from pymongo.errors import PyMongoError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from amorph.errors import EmptyStoreError, StoreError

logger = logging.getLogger(__name__)

FORMAT = "amorph-store"
FORMAT_VERSION = 1
DATABASE = "amorph.sqlite"
LEGACY_KEYS = {"jobs.json": ["uuid", "index"], "data.json": ["blob_uuid"]}
PING_TIMEOUT_MS = 3000

_SCHEMA = (
    "CREATE TABLE amorph_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE documents (id INTEGER PRIMARY KEY, collection TEXT NOT NULL, doc BLOB NOT NULL)",
    "CREATE INDEX documents_by_collection ON documents (collection, id)",
    "CREATE TABLE indexed_fields (collection TEXT, field TEXT, PRIMARY KEY (collection, field))",
    "CREATE TABLE field_values (doc_id INTEGER NOT NULL, collection TEXT, field TEXT, value)",
    "CREATE INDEX field_values_lookup ON field_values (collection, field, value)",
    "CREATE INDEX field_values_by_doc ON field_values (doc_id)",
)
_SQLITE_MAGIC = b"SQLite format 3\x00"
_BATCH = 64  # documents read per SELECT while a query streams
_MAX_PARAMS = 500  # values bound in one SQL ``IN (...)``


def no_results(where: str | Path) -> str:
    """What an empty store says: that it is empty, and how to fill it."""
    return (
        f"no results in {where} yet: run `amorph run FORMULA` (or `amorph campaign FILE`, or "
        "`amorph submit FORMULA` on a cluster) to fill it"
    )


@contextlib.contextmanager
def _sql_errors(path: str) -> Iterator[None]:
    """Turn SQLite's errors (not a database, locked past the timeout, interrupted write, malformed
    file) into one-line StoreErrors."""
    try:
        yield
    except sqlite3.Error as exc:
        code = getattr(exc, "sqlite_errorcode", None)
        if code == sqlite3.SQLITE_NOTADB:
            message = f"{path} is not an amorph store (not an SQLite database)"
        elif code == sqlite3.SQLITE_READONLY_ROLLBACK:
            message = (
                f"{path} holds a write interrupted by a killed process: open it once for writing "
                "(e.g. `amorph run`) to roll that write back"
            )
        else:
            message = f"store {path}: {exc}"
        raise StoreError(message) from exc


def _chunks(values: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


def _sql_value(value: Any) -> Any:
    """``value`` as the field index holds it; None for a value it cannot compare exactly."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else None
    if isinstance(value, float):
        return None if math.isnan(value) else value
    return value if isinstance(value, str) else None


def _exact(value: Any) -> bool:
    """Whether an equality on ``value`` can be answered from the field index."""
    return value is not None and _sql_value(value) is not None


def _index_values(doc: dict, field: str) -> set[Any]:
    """What the index holds for ``field`` of ``doc``: every value a Mongo equality could match."""
    values = set()
    for value in iter_key_candidates(field, doc):
        for item in value if isinstance(value, list) else [value]:
            if item is not NOTHING:
                values.add(_sql_value(item))
    return values


def _equal_to(condition: Any) -> list[Any] | None:
    """The values a field must equal (one of) to meet ``condition``, if the index can tell."""
    if isinstance(condition, dict) and any(key.startswith("$") for key in condition):
        if "$eq" in condition:
            values = [condition["$eq"]]
        elif isinstance(condition.get("$in"), list) and condition["$in"]:
            values = condition["$in"]
        else:
            return None
    else:
        values = [condition]
    return values if all(_exact(v) for v in values) else None


def _path_tree(paths: list[str]) -> dict[str, Any]:
    """``["a.b", "c"]`` as ``{"a": {"b": True}, "c": True}``; a whole field wins over its parts."""
    tree: dict[str, Any] = {}
    for path in paths:
        node = tree
        *parents, last = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if node is True:
                break
        else:
            node[last] = True
    return tree


def _include(value: Any, tree: dict[str, Any]) -> Any:
    if isinstance(value, list):
        return [_include(item, tree) for item in value if isinstance(item, dict | list)]
    kept = {}
    for key, sub in tree.items():
        if key in value and sub is True:
            kept[key] = value[key]
        elif key in value and isinstance(value[key], dict | list):
            kept[key] = _include(value[key], sub)
    return kept


def _exclude(value: Any, tree: dict[str, Any]) -> Any:
    if isinstance(value, list):
        return [_exclude(item, tree) if isinstance(item, dict | list) else item for item in value]
    kept = {}
    for key, item in value.items():
        sub = tree.get(key)
        if sub is not True:
            kept[key] = _exclude(item, sub) if sub and isinstance(item, dict | list) else item
    return kept


def _project(doc: dict, properties: dict | list | None) -> dict:
    """``doc`` with only the fields ``properties`` asks for (Mongo projection: list or dict)."""
    if not properties:
        return doc
    if isinstance(properties, dict):
        included = [key for key, keep in properties.items() if keep]
        if not included:
            return _exclude(doc, _path_tree(list(properties)))
        return _include(doc, _path_tree(included))
    return _include(doc, _path_tree(list(properties)))


def _sorted(docs: list[dict], sort: dict[str, Sort | int]) -> list[dict]:
    """``docs`` in Mongo's order for ``sort``, the first field the most significant."""
    for field, direction in reversed(list(sort.items())):
        descending = Sort(direction).value < 0
        docs.sort(key=functools.partial(resolve_sort_key, field), reverse=descending)
    return docs


def _read_header(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(100)


def _check_journal_mode(path: Path) -> None:
    """Refuse an SQLite file in WAL mode before opening it: even a reader would write beside it."""
    header = _read_header(path) if path.exists() else b""
    if header.startswith(_SQLITE_MAGIC) and len(header) == 100 and header[18] != 1:
        raise StoreError(f"{path} is not an amorph store (an SQLite database in WAL mode)")


def _check_size(path: Path) -> None:
    """Refuse a truncated database: shorter than its header says (call under a lock)."""
    header = _read_header(path)
    (page_size,) = struct.unpack(">H", header[16:18])
    change, pages = struct.unpack(">II", header[24:32])
    (valid_for,) = struct.unpack(">I", header[92:96])
    expected = pages * (65536 if page_size == 1 else page_size)
    size = path.stat().st_size
    if change == valid_for and size < expected:
        raise StoreError(
            f"{path} is truncated ({size} of {expected} bytes): restore it from a copy"
        )


class SQLiteStore(Store):
    """A maggma store of BSON documents in one collection of an amorph SQLite database.

    Parameters
    ----------
    path
        The database file (made absolute here). Created with its schema on the first writable
        connect if missing or empty.
    collection_name
        The collection (several share one file).
    read_only
        Open with ``?mode=ro``: never write to the file or beside it.
    timeout
        Seconds to wait for another process's lock before failing.
    **kwargs
        Passed to :class:`maggma.core.Store` (``key``, ``last_updated_field``, ...).
    """

    def __init__(
        self,
        path: str | Path,
        collection_name: str,
        read_only: bool = False,
        timeout: float = 60.0,
        **kwargs: Any,
    ):
        self.path = str(Path(path).expanduser().absolute())
        self.collection_name = collection_name
        self.read_only = read_only
        self.timeout = timeout
        self.kwargs = kwargs
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        super().__init__(**kwargs)

    @property
    def name(self) -> str:
        """The database file and collection, as ``sqlite://PATH#COLLECTION``."""
        return f"sqlite://{self.path}#{self.collection_name}"

    @property
    def _collection(self) -> sqlite3.Connection:
        """The SQLite connection (there is no pymongo collection)."""
        return self._connection()

    def connect(self, force_reset: bool = False) -> None:
        """Open the database (creating it when writable and new) and check that it is a store."""
        if self._conn is not None and self._pid == os.getpid() and not force_reset:
            return
        self.close()
        path = Path(self.path)
        if self.read_only and not path.exists():
            raise EmptyStoreError(no_results(path.parent))
        try:
            if not self.read_only:
                path.parent.mkdir(parents=True, exist_ok=True)
            _check_journal_mode(path)
        except OSError as exc:
            raise StoreError(f"cannot open store {path}: {exc.strerror}") from None
        mode = "ro" if self.read_only else "rwc"
        # only creating the schema takes the write lock; checking an existing store reads
        creating = not self.read_only and (not path.exists() or path.stat().st_size == 0)
        with _sql_errors(self.path):
            conn = sqlite3.connect(
                f"{path.as_uri()}?mode={mode}",
                uri=True,
                timeout=self.timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            try:
                # a shared (or, creating, a reserved) lock keeps the file still while it is checked
                conn.execute("BEGIN IMMEDIATE" if creating else "BEGIN")
                self._check(conn, path)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                conn.close()
                raise
        self._conn, self._pid = conn, os.getpid()

    def _check(self, conn: sqlite3.Connection, path: Path) -> None:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}  # locks
        if path.stat().st_size == 0:
            if self.read_only:
                raise EmptyStoreError(no_results(path.parent))
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.executemany(
                "INSERT INTO amorph_meta VALUES (?, ?)",
                [("format", FORMAT), ("version", str(FORMAT_VERSION))],
            )
            return
        _check_size(path)
        if "amorph_meta" not in tables:
            raise StoreError(f"{path} is an SQLite database but not an amorph store")
        meta = dict(conn.execute("SELECT name, value FROM amorph_meta"))
        if meta.get("format") != FORMAT or not meta.get("version", "").isdigit():
            raise StoreError(f"{path} is not an amorph store (format {meta.get('format')!r})")
        if int(meta["version"]) > FORMAT_VERSION:
            raise StoreError(
                f"{path} was written by a newer amorph (store format {meta['version']}, this "
                f"version reads up to {FORMAT_VERSION}): upgrade amorph"
            )

    def close(self) -> None:
        """Close the connection (one inherited through ``fork`` is dropped, not closed)."""
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None

    def _connection(self) -> sqlite3.Connection:
        self.connect()
        assert self._conn is not None
        return self._conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: other writers wait; readers see all of it or none of it."""
        if self.read_only:
            raise StoreError(f"store {self.path} is open read-only")
        conn = self._connection()
        with _sql_errors(self.path):
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")

    def _indexed(self, conn: sqlite3.Connection) -> list[str]:
        rows = conn.execute(
            "SELECT field FROM indexed_fields WHERE collection = ?", (self.collection_name,)
        )
        return [row[0] for row in rows]

    def _add_indexes(self, conn: sqlite3.Connection, fields: list[str]) -> list[str]:
        """Index ``fields`` (filling the index from the documents held); all indexed fields."""
        for field in fields:
            added = conn.execute(
                "INSERT OR IGNORE INTO indexed_fields VALUES (?, ?)", (self.collection_name, field)
            ).rowcount
            if added:
                rows = conn.execute(
                    "SELECT id, doc FROM documents WHERE collection = ?", (self.collection_name,)
                )
                for doc_id, blob in rows:
                    self._write_index(conn, doc_id, bson.decode(blob), [field])
        return self._indexed(conn)

    def _write_index(
        self, conn: sqlite3.Connection, doc_id: int, doc: dict, fields: list[str]
    ) -> None:
        conn.executemany(
            "INSERT INTO field_values VALUES (?, ?, ?, ?)",
            [
                (doc_id, self.collection_name, field, value)
                for field in fields
                for value in _index_values(doc, field)
            ],
        )

    def _candidates(self, conn: sqlite3.Connection, criteria: dict) -> list[int]:
        """Ids, in insertion order, of a superset of the documents matching ``criteria``."""
        collection = self.collection_name
        indexed = self._indexed(conn)
        for field, condition in criteria.items():
            values = _equal_to(condition) if field in indexed else None
            if values is None:
                continue
            lookup = "SELECT doc_id FROM field_values WHERE collection = ? AND field = ? AND value"
            ids = {row[0] for row in conn.execute(f"{lookup} IS NULL", (collection, field))}
            for chunk in _chunks([_sql_value(v) for v in values], _MAX_PARAMS):
                rows = conn.execute(f"{lookup} IN ({_marks(chunk)})", (collection, field, *chunk))
                ids.update(row[0] for row in rows)
            return sorted(ids)
        rows = conn.execute(
            "SELECT id FROM documents WHERE collection = ? ORDER BY id", (collection,)
        )
        return [row[0] for row in rows]

    def _matching(self, conn: sqlite3.Connection, criteria: dict) -> Iterator[tuple[int, dict]]:
        """``(id, document)`` of each document matching ``criteria``, read in short batches."""
        for chunk in _chunks(self._candidates(conn, criteria), _BATCH):
            rows = conn.execute(
                f"SELECT id, doc FROM documents WHERE id IN ({_marks(chunk)}) ORDER BY id", chunk
            ).fetchall()
            for doc_id, blob in rows:
                doc = bson.decode(blob)
                if not criteria or filter_applies(criteria, doc):
                    yield doc_id, doc

    def query(
        self,
        criteria: dict | None = None,
        properties: dict | list | None = None,
        sort: dict[str, Sort | int] | None = None,
        skip: int = 0,
        limit: int = 0,
    ) -> Iterator[dict]:
        """Documents matching the Mongo ``criteria``, projected, sorted, skipped and limited."""
        conn = self._connection()
        with _sql_errors(self.path):
            docs: Iterator[dict] = (doc for _, doc in self._matching(conn, criteria or {}))
            if sort:
                docs = iter(_sorted(list(docs), sort))
            for doc in itertools.islice(docs, skip, skip + limit if limit else None):
                yield _project(doc, properties)

    def count(self, criteria: dict | None = None, hint: dict | None = None) -> int:
        """The number of documents matching ``criteria`` (``hint`` is ignored)."""
        conn = self._connection()
        with _sql_errors(self.path):
            if not criteria:
                return conn.execute(
                    "SELECT count(*) FROM documents WHERE collection = ?", (self.collection_name,)
                ).fetchone()[0]
            return sum(1 for _ in self._matching(conn, criteria))

    def distinct(self, field: str, criteria: dict | None = None, all_exist: bool = False) -> list:
        """The distinct values of ``field`` (array elements counted one by one, as in Mongo)."""
        seen: dict[bytes, Any] = {}
        for doc in self.query(criteria, properties=[field]):
            for value in iter_key_candidates(field, doc):
                for item in value if isinstance(value, list) else [value]:
                    if item is not NOTHING:
                        seen.setdefault(bson.encode({"v": item}), item)
        return list(seen.values())

    def groupby(
        self,
        keys: list[str] | str,
        criteria: dict | None = None,
        properties: dict | list | None = None,
        sort: dict[str, Sort | int] | None = None,
        skip: int = 0,
        limit: int = 0,
    ) -> Iterator[tuple[dict, list[dict]]]:
        """``(key values, documents)`` for each combination of ``keys`` (missing keys left out)."""
        keys = [keys] if isinstance(keys, str) else list(keys)
        if properties:
            properties = list(properties) + keys
        groups: dict[bytes, tuple[dict, list[dict]]] = {}
        for doc in self.query(criteria, properties=properties, sort=sort, skip=skip, limit=limit):
            values = {}
            for key in keys:
                value = next(iter(iter_key_candidates(key, doc)), NOTHING)
                if value is not NOTHING:
                    values[key] = value
            group = groups.setdefault(bson.encode(values), (_nested(values), []))
            group[1].append(doc)
        yield from groups.values()

    def update(self, docs: list[dict] | dict, key: list | str | None = None) -> None:
        """Insert ``docs``, each replacing the document with the same ``key`` values if any."""
        docs = docs if isinstance(docs, list) else [docs]
        key = key or self.key
        fields = [key] if isinstance(key, str) else list(key)
        prepared = []
        for doc in docs:
            doc = jsanitize(doc, allow_bson=True)
            prepared.append(({field: doc[field] for field in fields}, doc, bson.encode(doc)))
        if not prepared:
            return
        with self._write() as conn:
            indexed = self._add_indexes(conn, fields)
            for search, doc, blob in prepared:
                old = next(self._matching(conn, search), None)
                if old is None:
                    doc_id = conn.execute(
                        "INSERT INTO documents (collection, doc) VALUES (?, ?)",
                        (self.collection_name, blob),
                    ).lastrowid
                else:
                    doc_id = old[0]
                    conn.execute("UPDATE documents SET doc = ? WHERE id = ?", (blob, doc_id))
                    conn.execute("DELETE FROM field_values WHERE doc_id = ?", (doc_id,))
                self._write_index(conn, doc_id, doc, indexed)

    def remove_docs(self, criteria: dict) -> None:
        """Delete the documents matching ``criteria``."""
        with self._write() as conn:
            ids = [doc_id for doc_id, _ in self._matching(conn, criteria)]
            for chunk in _chunks(ids, _MAX_PARAMS):
                conn.execute(f"DELETE FROM field_values WHERE doc_id IN ({_marks(chunk)})", chunk)
                conn.execute(f"DELETE FROM documents WHERE id IN ({_marks(chunk)})", chunk)

    def ensure_index(self, key: str, unique: bool = False) -> bool:
        """Index the field ``key``; False for a unique index (not supported) or when read-only
        and the index does not exist."""
        if unique:
            return False
        with _sql_errors(self.path):
            if key in self._indexed(self._connection()):
                return True
        if self.read_only:
            return False
        with self._write() as conn:
            self._add_indexes(conn, [key])
        return True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SQLiteStore) and (self.path, self.collection_name) == (
            other.path,
            other.collection_name,
        )

    def __hash__(self) -> int:
        return hash((self.path, self.collection_name))


def _nested(values: dict[str, Any]) -> dict:
    """``{"a.b": 1}`` as ``{"a": {"b": 1}}``."""
    nested: dict[str, Any] = {}
    for key, value in values.items():
        node = nested
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return nested


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


def _import_legacy(store: JobStore, directory: Path, names: list[str]) -> None:
    """Copy the old JSON store files ``names`` into ``store``, then rename them ``*.imported``.

    Upserts by key, so an import interrupted before the renames, or run by two processes at once,
    is harmless.
    """
    targets = {"jobs.json": store.docs_store, "data.json": store.additional_stores["data"]}
    counts = {}
    for name in names:
        docs = _read_legacy(directory / name, LEGACY_KEYS[name])
        if docs is not None:
            targets[name].update(docs, key=LEGACY_KEYS[name])
            counts[name] = len(docs)
    for name in counts:
        with contextlib.suppress(FileNotFoundError):
            (directory / name).replace(directory / f"{name}.imported")
    logger.warning(
        "imported the old JSON store in %s (%s) into %s; the JSON files are kept as *.imported",
        directory,
        ", ".join(f"{name}: {n} documents" for name, n in counts.items()),
        DATABASE,
    )


def embedded_store(directory: str | Path, *, read_only: bool = False) -> JobStore:
    """The embedded store in ``directory``, connected: job documents and a ``data`` store.

    Parameters
    ----------
    directory
        The store folder (made absolute here, so a later ``chdir`` cannot move the store);
        created with the database when writable.
    read_only
        Open without writing anything; a folder without a database raises
        :class:`EmptyStoreError`.

    Returns
    -------
    JobStore
        A connected store whose ``docs_store`` and ``data`` store share ``directory/amorph.sqlite``.
    """
    directory = Path(directory).expanduser().absolute()
    legacy = [name for name in LEGACY_KEYS if (directory / name).exists()]
    if read_only and legacy:
        raise StoreError(
            f"{directory} holds results in the old JSON format ({', '.join(legacy)}): open it once "
            f"for writing (e.g. `amorph run FORMULA` with these outputs) to import them into "
            f"{DATABASE}"
        )
    database = directory / DATABASE
    docs = SQLiteStore(database, "jobs", read_only=read_only)
    data = SQLiteStore(database, "data", read_only=read_only)
    store = JobStore(docs, additional_stores={"data": data})
    store.connect()
    if legacy:
        _import_legacy(store, directory, legacy)
    docs.ensure_index("name")
    data.ensure_index("job_uuid")
    return store


def _parse_store_file(path: Path) -> Any:
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


def _store_from_file(path: Path) -> JobStore:
    """The JobStore of a jobflow store file or of a jobflow-remote project file's ``jobstore``."""
    spec = _parse_store_file(path)
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


def _address(store: Store) -> str:
    uri = getattr(store, "uri", None)
    if uri:
        return uri.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]
    return f"{store.host}:{store.port}"


def _ping_servers(store: JobStore, path: Path) -> None:
    """Ping each MongoDB server of ``store`` once, through a copy with short timeouts."""
    seen = set()
    for part in [store.docs_store, *store.additional_stores.values()]:
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


def open_store(
    store: str | Path | None = None, outputs: str | Path = "outputs", *, read_only: bool = False
) -> JobStore:
    """The connected store a command works with.

    Parameters
    ----------
    store
        None for the embedded store in ``<outputs>/store/``; else a jobflow store file
        (``JobStore.from_file`` format) or a jobflow-remote project file (its ``jobstore:``),
        YAML, JSON or TOML. Its MongoDB servers are pinged now.
    outputs
        The outputs folder holding the embedded store.
    read_only
        Open the embedded store without writing anything (a store file is used as it says).

    Returns
    -------
    JobStore
        The connected store.

    Raises
    ------
    StoreError
        The file is missing, unreadable or not a store, or a server cannot be reached.
    EmptyStoreError
        ``read_only`` and the embedded store does not exist yet.
    """
    if store is None:
        return embedded_store(Path(outputs) / "store", read_only=read_only)
    path = Path(store).expanduser().absolute()
    jobstore = _store_from_file(path)
    _ping_servers(jobstore, path)
    jobstore.connect()
    return jobstore
