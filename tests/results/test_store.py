"""The embedded store: Mongo semantics, concurrent processes, read-only opens, refusals, files.

Run as a script, this file is the worker of the multi-process tests (see ``_worker``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from jobflow import Flow, JobStore, Response, job, run_locally
from maggma.stores import MemoryStore
from monty.json import MontyDecoder, MontyEncoder
from ruamel.yaml import YAML

from amorph.errors import EmptyStoreError, PathError, StoreError
from amorph.results.sqlite_store import FORMAT, SQLiteStore
from amorph.results.store import DATABASE, embedded_store, open_store

HERE = Path(__file__).resolve()


@job
def add(a, b):
    return a + b


@job
def double(x):
    return 2 * x


@job
def add_then_double(a, b):
    """Replaced by a new job, as jobflow's dynamic flows do."""
    return Response(replace=double(a + b))


def _docs(n: int) -> list[dict]:
    """Job-like documents with nested keys, arrays, missing fields and several versions."""
    docs = []
    for i in range(n):
        doc = {
            "uuid": f"u{i % 7}",
            "index": i // 7 + 1,
            "name": ["melt", "quench", "collect"][i % 3],
            "output": {"@class": ["MDResult", "Summary"][i % 2], "T": 300.0 + 100 * (i % 5)},
            "metadata": {"tags": [f"t{i % 4}", "all"], "formula": ["Li2O", "LiF", None][i % 3]},
        }
        if i % 5:
            doc["hosts"] = [f"h{i % 3}"]
        docs.append(doc)
    return docs


QUERIES = [
    {},
    {"uuid": "u3"},
    {"uuid": {"$in": ["u1", "u4", "nope"]}},
    {"uuid": "u2", "index": 2},
    {"output.@class": "Summary"},
    {"output.T": {"$gte": 500.0}},
    {"hosts": {"$exists": False}},
    {"hosts": "h1"},
    {"metadata.tags": "t2"},
    {"metadata.formula": None},
    {"name": {"$in": ["melt", "collect"]}, "output.@class": "MDResult"},
    {"$or": [{"uuid": "u0"}, {"index": 3}]},
    {"index": {"$eq": 2}},
    {"uuid": {"$regex": "^u[12]$"}},
]


def _mongo_pair(tmp_path: Path, docs: list[dict]) -> tuple[SQLiteStore, MemoryStore]:
    ours = SQLiteStore(tmp_path / DATABASE, "jobs", key="uuid")
    reference = MemoryStore(key="uuid")
    for store in (ours, reference):
        store.connect()
        store.update(docs, key=["uuid", "index"])
    ours.ensure_index("name")
    return ours, reference


def _without_id(docs):
    return [{k: v for k, v in doc.items() if k != "_id"} for doc in docs]


@pytest.mark.parametrize("criteria", QUERIES, ids=[json.dumps(q) for q in QUERIES])
def test_queries_match_mongo_semantics(tmp_path, criteria):
    ours, reference = _mongo_pair(tmp_path, _docs(30))
    order = {"index": -1, "uuid": 1}
    assert ours.count(criteria) == reference.count(criteria) > 0
    assert list(ours.query(criteria, sort=order)) == _without_id(
        reference.query(criteria, sort=order)
    )
    for properties in (["uuid", "output.@class", "metadata.tags"], {"metadata": 0, "output.T": 0}):
        assert list(ours.query(criteria, properties, sort=order, skip=1, limit=3)) == _without_id(
            reference.query(criteria, properties, sort=order, skip=1, limit=3)
        )
    assert sorted(ours.distinct("metadata.tags", criteria)) == sorted(
        reference.distinct("metadata.tags", criteria)
    )


def test_updates_replace_by_key_and_keep_versions(tmp_path):
    ours, reference = _mongo_pair(tmp_path, _docs(30))
    change = [{"uuid": "u1", "index": 2, "name": "new"}, {"uuid": "new", "index": 1}]
    for store in (ours, reference):
        store.update(change, key=["uuid", "index"])
        store.remove_docs({"metadata.tags": "t3"})
        store.update({"blob_uuid": "b1", "data": "x"}, key="blob_uuid")
        store.update({"blob_uuid": "b1", "data": "y"}, key="blob_uuid")
    assert ours.count() == reference.count() == 30 - 7 + 1 + 1
    assert list(ours.query({"uuid": "u1"})) == _without_id(reference.query({"uuid": "u1"}))
    assert ours.query_one({"blob_uuid": "b1"}) == {"blob_uuid": "b1", "data": "y"}
    # an index added late is filled from the documents held, and queries still agree
    assert ours.ensure_index("output.@class") and not ours.ensure_index("uuid", unique=True)
    assert list(ours.query({"output.@class": "Summary"})) == _without_id(
        reference.query({"output.@class": "Summary"})
    )
    groups = {g["uuid"]: len(d) for g, d in ours.groupby("uuid", {"name": "melt"})}
    assert groups == {g["uuid"]: len(d) for g, d in reference.groupby("uuid", {"name": "melt"})}


def test_job_store_holds_megabyte_blobs_and_round_trips_through_mson(tmp_path):
    store = embedded_store(tmp_path / "store")
    blob = os.urandom(3 * 2**20).hex()  # 6 MB of text, like a base64 trajectory
    store.update(
        {"uuid": "j", "index": 1, "output": {"trajectory": {"npz": blob}, "T": 1}},
        save={"data": "trajectory"},
    )
    copy = json.loads(json.dumps(store.as_dict(), cls=MontyEncoder))
    again = MontyDecoder().process_decoded(copy)
    assert isinstance(again, JobStore) and again.docs_store == store.docs_store
    for other in (again, pickle.loads(pickle.dumps(store))):
        other.connect()
        assert other.query_one({"uuid": "j"}, load=True)["output"]["trajectory"]["npz"] == blob
        assert other.additional_stores["data"].count({"job_uuid": "j"}) == 1


def _tree(directory: Path) -> dict[str, tuple[str, int]]:
    return {
        str(p.relative_to(directory)): (
            hashlib.sha256(p.read_bytes()).hexdigest(),
            p.stat().st_mtime_ns,
        )
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_read_only_open_changes_no_byte_and_sees_live_writes(tmp_path):
    writer = embedded_store(tmp_path)
    writer.update({"uuid": "a", "index": 1, "output": {"big": "x" * 100_000}}, save={"data": "big"})
    before = _tree(tmp_path)
    time.sleep(0.01)
    reader = embedded_store(tmp_path, read_only=True)
    assert reader.query_one({"uuid": "a"}, load=True)["output"]["big"] == "x" * 100_000
    assert reader.count() == 1 and reader.docs_store.distinct("uuid") == ["a"]
    with pytest.raises(StoreError, match="read-only"):
        reader.update({"uuid": "b", "index": 1})
    assert not reader.docs_store.ensure_index("metadata.formula")
    reader.close()
    assert _tree(tmp_path) == before  # no journal, WAL or shm file either
    reader.connect()
    writer.update({"uuid": "b", "index": 1, "output": 2})  # a live writer's commit is seen
    assert reader.query_one({"uuid": "b"})["output"] == 2


def test_read_only_open_of_a_missing_store_creates_nothing(tmp_path):
    missing = re.escape(f"no results in {tmp_path / 'outputs' / 'store'} yet: run `amorph run")
    with pytest.raises(EmptyStoreError, match=missing):
        open_store(None, tmp_path / "outputs", read_only=True)
    with pytest.raises(EmptyStoreError, match="no results in"):
        embedded_store(tmp_path, read_only=True)  # a folder, but no database in it
    assert list(tmp_path.iterdir()) == []


def test_a_store_where_a_file_is_refused(tmp_path):
    (tmp_path / "outputs").write_text("not a folder")
    with pytest.raises(PathError, match="outputs is a file where amorph needs a folder"):
        open_store(None, tmp_path / "outputs")
    assert (tmp_path / "outputs").read_text() == "not a folder"


def _sqlite_file(path: Path, statements: list[str]) -> None:
    conn = sqlite3.connect(path)
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()


def _bad_files(directory: Path) -> dict[str, tuple[Path, str]]:
    """Files that must be refused, and the phrase naming why."""
    good = directory / "good"
    store = embedded_store(good)
    store.docs_store.update([{"uuid": str(i), "index": 1, "x": "y" * 5000} for i in range(50)])
    store.close()
    full = (good / DATABASE).read_bytes()
    cases = {}
    for name, content in {
        "truncated": full[: len(full) // 2],
        "random": os.urandom(20_000),
        "json": b"{}",
        "empty": b"",
    }.items():
        (directory / name).mkdir()
        (directory / name / DATABASE).write_bytes(content)
    cases["truncated"] = (directory / "truncated", "truncated")
    cases["random"] = (directory / "random", "not an SQLite database")
    cases["json"] = (directory / "json", "not an SQLite database")
    cases["empty"] = (directory / "empty", r"is empty \(0 bytes\)")
    meta = "CREATE TABLE amorph_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)"
    for name, statements, phrase in [
        ("foreign", ["CREATE TABLE people (name TEXT)"], "not an amorph store"),
        ("other-format", [meta, "INSERT INTO amorph_meta VALUES ('format', 'x')"], "format 'x'"),
        (
            "newer",
            [meta, f"INSERT INTO amorph_meta VALUES ('format', '{FORMAT}'), ('version', '99')"],
            "newer amorph",
        ),
        ("wal", ["PRAGMA journal_mode=WAL", "CREATE TABLE t (x)"], "WAL"),
    ]:
        (directory / name).mkdir()
        _sqlite_file(directory / name / DATABASE, statements)
        cases[name] = (directory / name, phrase)
    return cases


def test_corrupt_or_foreign_databases_are_refused_untouched(tmp_path):
    for name, (directory, phrase) in _bad_files(tmp_path).items():
        before = _tree(directory)
        for read_only in (True, False):
            with pytest.raises(StoreError, match=phrase) as error:
                embedded_store(directory, read_only=read_only)
            assert str(directory / DATABASE) in str(error.value), name
            assert "\n" not in str(error.value)
        assert _tree(directory) == before, name


def test_damaged_pages_are_refused_to_writers_and_readers_fail_in_one_line(tmp_path):
    store = embedded_store(tmp_path)
    store.docs_store.update([{"uuid": str(i), "index": 1, "x": "y" * 5000} for i in range(50)])
    store.close()
    database = tmp_path / DATABASE
    data = database.read_bytes()
    half = len(data) // 2
    database.write_bytes(data[:half] + random.Random(27).randbytes(len(data) - half))
    before = _tree(tmp_path)
    with pytest.raises(StoreError, match=r"is damaged .*: copy it aside") as error:
        embedded_store(tmp_path)  # SQLite's quick_check, as a writer opens it
    assert str(database) in str(error.value) and "\n" not in str(error.value)
    reader = embedded_store(tmp_path, read_only=True)  # readers do not check every page first
    with pytest.raises(StoreError, match="is damaged") as error:
        reader.docs_store.count({"x": "z"})  # reads every document, half of them damaged
    assert str(database) in str(error.value) and "\n" not in str(error.value)
    assert _tree(tmp_path) == before


def test_a_document_that_does_not_decode_is_a_store_error_naming_the_file(tmp_path):
    store = embedded_store(tmp_path)
    store.update({"uuid": "a", "index": 1, "output": 1})
    store.close()
    _sqlite_file(tmp_path / DATABASE, ["UPDATE documents SET doc = x'0500000001'"])
    for read_only in (True, False):
        with pytest.raises(StoreError, match="a document does not decode") as error:
            embedded_store(tmp_path, read_only=read_only).query_one({"uuid": "a"})
        assert str(tmp_path / DATABASE) in str(error.value)


LEGACY_JOBS = [
    {"uuid": f"j{i // 2}", "index": i % 2 + 1, "output": {"value": i}, "_id": {"$oid": "x"}}
    for i in range(20)
]
LEGACY_DATA = [{"blob_uuid": "b", "job_uuid": "j0", "job_index": 1, "data": [1.5] * 1000}]


def test_legacy_json_store_is_imported_once_without_loss(tmp_path):
    (tmp_path / "jobs.json").write_text(json.dumps(LEGACY_JOBS))
    (tmp_path / "data.json").write_text(json.dumps(LEGACY_DATA))
    with pytest.raises(StoreError, match="old JSON format"):
        embedded_store(tmp_path, read_only=True)
    assert not (tmp_path / DATABASE).exists()
    store = embedded_store(tmp_path)
    assert store.count() == 20  # every version of every job
    assert sorted(store.docs_store.distinct("index")) == [1, 2]
    assert store.additional_stores["data"].query_one({"blob_uuid": "b"})["data"] == [1.5] * 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        DATABASE,
        "data.json.imported",
        "jobs.json.imported",
    ]
    reader = embedded_store(tmp_path, read_only=True)
    assert reader.count() == 20 and "_id" not in reader.query_one({"uuid": "j3", "index": 2})


@pytest.mark.parametrize("content", [json.dumps(LEGACY_JOBS)[:500], "{}"])
def test_broken_legacy_json_store_is_refused_and_kept(tmp_path, content):
    (tmp_path / "jobs.json").write_text(content)
    with pytest.raises(StoreError, match=re.escape(str(tmp_path / "jobs.json"))):
        embedded_store(tmp_path)
    assert (tmp_path / "jobs.json").read_text() == content
    assert SQLiteStore(tmp_path / DATABASE, "jobs", read_only=True).count() == 0


def test_store_files_jobflow_and_jobflow_remote(tmp_path):
    embedded = tmp_path / "db" / DATABASE
    spec = {
        "docs_store": {"type": "SQLiteStore", "path": str(embedded), "collection_name": "jobs"},
        "additional_stores": {
            "data": {"type": "SQLiteStore", "path": str(embedded), "collection_name": "data"}
        },
    }
    files = {
        "store.yaml": json.dumps(spec),
        "store.json": json.dumps(embedded_store(tmp_path / "db").as_dict(), cls=MontyEncoder),
        "project.yaml": "name: hpc\nworkers: {}\njobstore:\n"
        + "".join(f"  {line}\n" for line in json.dumps(spec, indent=2).splitlines()),
        "settings.toml": '[JOB_STORE.docs_store]\ntype = "MemoryStore"\n',
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    open_store(tmp_path / "store.yaml").update({"uuid": "via-file", "index": 1, "output": 1})
    for name in files:
        store = open_store(tmp_path / name, tmp_path / "unused")
        expected = 0 if name.endswith(".toml") else 1
        assert store.count({"uuid": "via-file"}) == expected, name
    from jobflow_remote.config.base import Project

    project = YAML(typ="safe").load((tmp_path / "project.yaml").read_text())
    project = Project(**project, queue={"store": {"type": "MemoryStore"}})
    assert project.get_jobstore().docs_store == open_store(tmp_path / "project.yaml").docs_store
    assert not (tmp_path / "unused").exists()


@pytest.mark.parametrize(
    ("name", "text", "phrase"),
    [
        ("missing.yaml", None, "cannot read store file"),
        ("bad.yaml", "docs_store: [unclosed", "cannot be parsed"),
        ("bad.json", "{", "cannot be parsed"),
        ("list.yaml", "- 1\n- 2\n", "neither a jobflow store file"),
        ("unknown.yaml", "docs_store: {type: NoSuchStore}\n", "NoSuchStore"),
    ],
)
def test_bad_store_files_name_the_file(tmp_path, name, text, phrase):
    if text is not None:
        (tmp_path / name).write_text(text)
    with pytest.raises(StoreError, match=phrase) as error:
        open_store(tmp_path / name)
    assert str(tmp_path / name) in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("kind", ["jobflow", "jobflow-remote"])
def test_unreachable_mongodb_fails_fast_naming_host_and_port(tmp_path, kind):
    with socket.socket() as closed:  # bound but not listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        mongo = {"type": "MongoStore", "database": "db", "host": "127.0.0.1", "port": port}
        spec = {"docs_store": {**mongo, "collection_name": "docs"}}
        spec["additional_stores"] = {"data": {**mongo, "collection_name": "data"}}
        text = json.dumps(spec if kind == "jobflow" else {"name": "p", "jobstore": spec})
        (tmp_path / "store.json").write_text(text)
        start = time.monotonic()
        with pytest.raises(StoreError, match=f"127.0.0.1:{port}"):
            open_store(tmp_path / "store.json", tmp_path / "outputs")
        assert time.monotonic() - start < 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.json"]


def test_run_locally_from_a_relative_outputs_path_writes_one_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = open_store(None, "outputs")
    first = add_then_double(1, 2)
    last = add(first.output, 10)
    responses = run_locally(
        Flow([first, last]), store=store, create_folders=True, log=False, raise_immediately=True
    )
    assert responses[last.uuid][1].output == 16
    assert Path.cwd() == tmp_path
    assert list(tmp_path.rglob(DATABASE)) == [tmp_path / "outputs" / "store" / DATABASE]
    reader = open_store(None, tmp_path / "outputs", read_only=True)
    assert reader.count() == 3  # the replaced job, its replacement (same uuid, index 2), add
    assert sorted(reader.docs_store.distinct("index", {"uuid": first.uuid})) == [1, 2]
    assert reader.get_output(last.uuid) == 16 and reader.get_output(first.uuid) == 6


def _start(role: str, directory: Path, tag: str, n: int) -> subprocess.Popen:
    args = [sys.executable, str(HERE), role, str(directory), tag, str(n)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_concurrent_processes_lose_nothing(tmp_path):
    """Two runs, a campaign and a run_locally create and write one new store while a reader reads,
    all released at once."""
    roles = {"A": "writer", "B": "writer", "C": "campaign", "R": "run", "Q": "reader"}
    n = 30
    procs = {tag: _start(role, tmp_path, tag, n) for tag, role in roles.items()}
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready-{tag}").exists() for tag in roles):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs.values())
        time.sleep(0.05)
    (tmp_path / "go").touch()
    results = {}
    for tag in ["A", "B", "C", "R", "Q"]:
        if tag == "Q":
            (tmp_path / "stop").touch()
        out, err = procs[tag].communicate(timeout=180)
        assert procs[tag].returncode == 0, err
        results[tag] = json.loads(out.splitlines()[-1])
    store = embedded_store(tmp_path, read_only=True)
    data = store.additional_stores["data"]
    for tag in "AB":
        assert store.count({"metadata.run": tag}) == 2 * n  # two versions of each job
        assert data.count({"job_uuid": {"$regex": f"^{tag}-"}}) == 2 * n
        doc = store.query_one({"uuid": f"{tag}-{n - 1}", "index": 2}, load=True)
        assert doc["output"]["trajectory"] == {"npz": tag * 10_000}
    assert store.count({"metadata.composition": {"$regex": "^C"}}) == 5 * n
    assert data.count({"job_uuid": {"$regex": "^C"}}) == n
    for uuid, value in results["R"].items():
        assert store.get_output(uuid) == value
    assert len(results["R"]) == n
    seen = results["Q"]
    total = 4 * n + 5 * n + 3 * n
    assert seen == sorted(seen) and seen[-1] == total
    assert any(n <= count < total for count in seen)  # it read while A waited half-way
    assert store.count() == total


KILLED_WRITER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA cache_size=1")  # spill changed pages into the file before the commit
conn.execute("BEGIN IMMEDIATE")
conn.execute("UPDATE documents SET doc = zeroblob(9000)")
print("mid-transaction", flush=True)
time.sleep(60)
"""


def test_a_write_interrupted_by_kill_is_rolled_back_by_the_next_writer(tmp_path):
    store = embedded_store(tmp_path)
    store.update([{"uuid": str(i), "index": 1, "x": "y" * 5000} for i in range(300)])
    store.close()
    args = [sys.executable, "-c", KILLED_WRITER, str(tmp_path / DATABASE)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "mid-transaction"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _tree(tmp_path)
    assert f"{DATABASE}-journal" in before  # a hot journal: the file holds half a write
    with pytest.raises(StoreError, match="interrupted by a killed process"):
        embedded_store(tmp_path, read_only=True)
    assert _tree(tmp_path) == before
    store = embedded_store(tmp_path)
    assert store.count() == 300 and store.query_one({"uuid": "7"})["x"] == "y" * 5000
    assert sorted(p.name for p in tmp_path.iterdir()) == [DATABASE]


def _wait(directory: Path, tag: str) -> None:
    (directory / f"ready-{tag}").touch()
    while not (directory / "go").exists():
        time.sleep(0.001)


def _worker(role: str, directory: Path, tag: str, n: int) -> object:
    """One process of the concurrency tests; returns what it prints as JSON."""
    _wait(directory, tag)
    if role == "reader":
        store = None
        while store is None:  # until a writer has created the store
            with contextlib.suppress(EmptyStoreError):
                store = embedded_store(directory, read_only=True)
    else:
        store = embedded_store(directory)
    if role == "writer":  # JobStore.update of each job, then its new version, as jobflow does
        for index in (1, 2):
            for i in range(n):
                doc = {
                    "uuid": f"{tag}-{i}",
                    "index": index,
                    "metadata": {"run": tag},
                    "output": {"trajectory": {"npz": tag * 10_000}, "i": i},
                }
                store.update(doc, key=["uuid", "index"], save={"data": "trajectory"})
            if tag == "A" and index == 1:  # hold until the reader has seen a store half written
                deadline = time.monotonic() + 120
                while not (directory / "seen-half").exists():
                    assert time.monotonic() < deadline, "the reader never saw A's first pass"
                    time.sleep(0.001)
        return None
    if role == "campaign":  # Campaign writes each composition's documents at once
        for i in range(n):
            docs = [
                {"uuid": f"{tag}{i}-{k}", "index": 1, "metadata": {"composition": f"{tag}{i}"}}
                for k in range(5)
            ]
            store.docs_store.update(docs, key=["uuid", "index"])
            blob = {"blob_uuid": f"{tag}{i}", "job_uuid": f"{tag}{i}-0", "data": "z" * 50_000}
            store.additional_stores["data"].update([blob], key="blob_uuid")
        return None
    if role == "run":
        outputs = {}
        for i in range(n):
            first = add_then_double(i, 1)
            last = add(first.output, 1)
            run_locally(Flow([first, last]), store=store, log=False, raise_immediately=True)
            outputs[last.uuid] = 2 * (i + 1) + 1
        return outputs
    seen = []  # reader: counts never go down, and queries keep working
    while not (directory / "stop").exists():
        count = store.count()
        if not seen or count != seen[-1]:
            seen.append(count)
        if count >= n:
            (directory / "seen-half").touch()
        list(store.query({"metadata.run": "A"}, properties=["uuid"]))
        store.query_one({"uuid": "A-0"}, sort={"index": -1})
    return seen


if __name__ == "__main__":
    role, directory, tag, n = sys.argv[1:]
    print(json.dumps(_worker(role, Path(directory), tag, int(n))))


def test_production_trajectory_goes_to_the_data_store(tmp_path, monkeypatch):
    import numpy as np
    from ase.build import bulk
    from pymatgen.io.ase import AseAtomsAdaptor

    from amorph.flows import ProductionMaker, Target
    from amorph.md.engine import EngineSpec, MDSettings, MDState
    from amorph.trajectory import Trajectory

    monkeypatch.chdir(tmp_path)
    argon = AseAtomsAdaptor.get_structure(bulk("Ar", "fcc", a=5.6, cubic=True).repeat(2))
    maker = ProductionMaker(
        duration_ps=0.1,
        chunk_ps=0.05,
        md=MDSettings(time_step_fs=5.0),
        engine=EngineSpec.parse("lj_calculators:argon"),
        store_trajectory=True,
    )
    targets = [Target(argon, 100.0, "Ar"), Target(argon, 80.0, "Ar")]
    job_ = maker.make(targets, [MDState(argon)] * 2)
    store = open_store(None, "outputs")
    run_locally(job_, store=store, log=False, raise_immediately=True)
    document = store.docs_store.query_one({"uuid": job_.uuid})
    assert [r["trajectory"]["store"] for r in document["output"]] == ["data"] * 2  # references
    assert store.additional_stores["data"].count() == 2
    for result in job_.output.resolve(open_store(None, "outputs", read_only=True)):
        assert isinstance(result.trajectory, Trajectory) and result.trajectory.n_frames == 20
        assert np.array_equal(
            result.trajectory.positions, Trajectory.load(result.trajectory_path).positions
        )
