"""Shared fixtures: the embedded CHGNet engine and paths to the shared data."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared"


@pytest.fixture(scope="session")
def chgnet():
    from amorph.md.engine import EngineSpec

    return EngineSpec("chgnet-ase").load()
