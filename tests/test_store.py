"""The embedded store writes atomically; production trajectories can go to the data store."""

import json
import os

import numpy as np
import pytest
from ase.build import bulk
from jobflow import JobStore, run_locally
from maggma.stores import MemoryStore
from pymatgen.io.ase import AseAtomsAdaptor

from amorph.flows import ProductionMaker, Target
from amorph.md.engine import EngineSpec, MDSettings, MDState
from amorph.results.store import local_store
from amorph.trajectory import Trajectory


def test_embedded_store_survives_a_crash_while_writing(tmp_path, monkeypatch):
    store = local_store(tmp_path)
    store.connect()
    store.docs_store.update([{"uuid": "a", "index": 1, "output": 1}], key=["uuid", "index"])
    before = (tmp_path / "jobs.json").read_text()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        store.docs_store.update([{"uuid": "b", "index": 1, "output": 2}], key=["uuid", "index"])
    assert (tmp_path / "jobs.json").read_text() == before  # the old file, whole
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    assert json.loads(before)[0]["uuid"] == "a"


def test_production_trajectory_goes_to_the_data_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argon = AseAtomsAdaptor.get_structure(bulk("Ar", "fcc", a=5.6, cubic=True).repeat(2))
    maker = ProductionMaker(
        duration_ps=0.1, chunk_ps=0.05, md=MDSettings(time_step_fs=5.0), store_trajectory=True
    )
    targets = [Target(argon, 100.0, "Ar"), Target(argon, 80.0, "Ar")]
    job = maker.make(targets, [MDState(argon)] * 2, EngineSpec.parse("lj_calculators:argon"))
    store = JobStore(MemoryStore(), additional_stores={"data": MemoryStore()})
    run_locally(job, store=store, log=False, raise_immediately=True)
    document = store.docs_store.query_one({"uuid": job.uuid})
    assert [r["trajectory"]["store"] for r in document["output"]] == [
        "data"
    ] * 2  # the document holds references
    assert store.additional_stores["data"].count() == 2
    for result in job.output.resolve(store):
        assert isinstance(result.trajectory, Trajectory) and result.trajectory.n_frames == 20
        assert np.array_equal(
            result.trajectory.positions, Trajectory.load(result.trajectory_path).positions
        )
