"""Shared fixtures: the embedded CHGNet engine, the test potentials, paths to the shared data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared"


@pytest.fixture(autouse=True)
def _environment_restored():
    """Each test starts from the session's environment: dask's LocalCluster sets
    ``OMP_NUM_THREADS=1`` in the process that starts it, which made every later subprocess test (the
    CHGNet user day among them) run torch on one thread."""
    before = dict(os.environ)
    yield
    if dict(os.environ) != before:
        os.environ.clear()
        os.environ.update(before)


@pytest.fixture(scope="session")
def chgnet():
    from amorph.md.engine import EngineSpec

    return EngineSpec("chgnet-ase").load()


@pytest.fixture
def lj_on_path(monkeypatch):
    """Make the test potentials (``lj_calculators``) importable by name, also in workers."""
    tests = str(Path(__file__).resolve().parent)
    monkeypatch.setenv("PYTHONPATH", tests)
    monkeypatch.syspath_prepend(tests)
