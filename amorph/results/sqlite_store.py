"""The embedded store's engine: a maggma store of BSON documents in an SQLite database.

One SQLite file holds any number of collections (jobflow's ``jobs`` and ``data``) as BSON, each
document updated in place inside a transaction. Any number of processes may write and read it at
once: SQLite's locks, waited for up to a busy timeout, serialise the writers, and nothing is
rewritten whole. The database keeps a rollback journal (never WAL), so a read-only open
(``?mode=ro``) writes no byte, not even a journal or shared-memory file, and still sees what live
writers commit. Queries take MongoDB criteria (evaluated by mongomock's matcher); the fields used as
update keys (``uuid``, ``index``, ``blob_uuid``) and a few more are indexed in a side table, so
finding a document by key does not slow down as the store grows.

A table ``amorph_meta`` names the format and its version. A database is made whole (built beside
its place, then linked there), so an empty file is never one of amorph's. A file that is empty, not
such a database, truncated, damaged (SQLite's ``quick_check``, run when a writer opens it), holds a
document that does not decode, or comes from a newer amorph is refused with a :class:`StoreError`
naming it, never repaired or overwritten; so is a database file that is a symbolic link, for a
writer.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import os
import sqlite3
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import bson
from bson.errors import InvalidBSON
from maggma.core import Sort, Store
from mongomock_ng.filtering import NOTHING, filter_applies, iter_key_candidates, resolve_sort_key
from monty.json import jsanitize

from amorph.errors import EmptyStoreError, StoreError
from amorph.files import atomic_path

FORMAT = "amorph-store"
FORMAT_VERSION = 1
RECOVER = (
    "copy it aside, `amorph db export` what still reads, and start a new store (README: "
    "recovering a damaged store)"
)

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
    """Turn SQLite's errors (not a database, locked past the timeout, interrupted write, damaged
    file) into one-line StoreErrors."""
    try:
        yield
    except sqlite3.Error as exc:
        code = getattr(exc, "sqlite_errorcode", 0)
        if code == sqlite3.SQLITE_NOTADB:
            message = f"{path} is not an amorph store (not an SQLite database)"
        elif code == sqlite3.SQLITE_READONLY_ROLLBACK:
            message = (
                f"{path} holds a write interrupted by a killed process: open it once for writing "
                "(e.g. `amorph run`) to roll that write back"
            )
        elif code & 0xFF == sqlite3.SQLITE_CORRUPT:  # and its extended codes
            message = f"{path} is damaged ({exc}): {RECOVER}"
        else:
            message = f"store {path}: {exc}"
        raise StoreError(message) from exc


def _decode(blob: bytes, path: str) -> dict:
    """A stored document; one that does not decode is a damaged store."""
    try:
        return bson.decode(blob)
    except InvalidBSON as exc:
        raise StoreError(
            f"{path} is damaged (a document does not decode: {exc}): {RECOVER}"
        ) from None


def _create(path: Path) -> None:
    """Make an empty store database at ``path`` whole: built beside it, then linked into place,
    so that no process sees it half made (a database another process made first is kept)."""
    with atomic_path(path, replace=False) as tmp:
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute("BEGIN")
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.executemany(
                "INSERT INTO amorph_meta VALUES (?, ?)",
                [("format", FORMAT), ("version", str(FORMAT_VERSION))],
            )
            conn.execute("COMMIT")
        finally:
            conn.close()


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


def check_integrity(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse a database whose pages are damaged: SQLite's ``PRAGMA quick_check``, every page of
    every table and index in one pass over the file (call under a lock, which keeps SQLite from
    shrinking the file). The file is memory-mapped meanwhile: 2-3 times faster than reading it."""
    conn.execute(f"PRAGMA mmap_size={path.stat().st_size}")
    try:
        rows = conn.execute("PRAGMA quick_check(3)").fetchall()
    finally:
        conn.execute("PRAGMA mmap_size=0")
    problems = [" ".join(row[0].split()) for row in rows]
    if problems != ["ok"]:
        raise StoreError(f"{path} is damaged ({'; '.join(problems)}): {RECOVER}")


def _file_state(path: Path) -> tuple[int, ...]:
    info = path.stat()
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns


_SOUND: set[tuple[int, ...]] = set()  # states of database files this process found sound


class SQLiteStore(Store):
    """A maggma store of BSON documents in one collection of an amorph SQLite database.

    Parameters
    ----------
    path
        The database file (made absolute here). Made with its schema by the first writable
        connect if missing.
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
        """Open the database (a writer makes it when missing) and check that it is a sound store."""
        if self._conn is not None and self._pid == os.getpid() and not force_reset:
            return
        self.close()
        path = Path(self.path)
        try:
            if not self.read_only:
                if path.is_symlink():
                    raise StoreError(
                        f"{path} is a symbolic link (to {os.readlink(path)}): amorph writes into "
                        "no store through a link it did not make; remove the link"
                    )
                if not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    _create(path)
            elif not path.exists():
                raise EmptyStoreError(no_results(path.parent))
            _check_journal_mode(path)
        except OSError as exc:
            raise StoreError(f"cannot open store {path}: {exc.strerror}") from None
        with _sql_errors(self.path):
            conn = sqlite3.connect(
                f"{path.as_uri()}?mode={'ro' if self.read_only else 'rw'}",
                uri=True,
                timeout=self.timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            try:
                conn.execute("BEGIN")  # a shared lock keeps the file still while it is checked
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
        if path.stat().st_size == 0:  # amorph makes a database whole, never empty
            raise StoreError(f"{path} is empty (0 bytes), not a store amorph made: {RECOVER}")
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
        if not self.read_only and _file_state(path) not in _SOUND:  # the collections share it
            check_integrity(conn, path)
            _SOUND.add(_file_state(path))

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
                    self._write_index(conn, doc_id, _decode(blob, self.path), [field])
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
                doc = _decode(blob, self.path)
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
                    assert doc_id is not None  # an INSERT sets lastrowid
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
        """Equal to the SQLite store of the same file and collection."""
        return isinstance(other, SQLiteStore) and (self.path, self.collection_name) == (
            other.path,
            other.collection_name,
        )

    def __hash__(self) -> int:
        """Hash of the file and collection, as ``__eq__`` compares them."""
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
