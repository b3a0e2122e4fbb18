"""Shared fixtures: the embedded CHGNet engine, the test potentials, paths to the shared data."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared"


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
