"""Shared fixtures: the embedded CHGNet engine, the test potentials on the path, and ``amorph`` run
as a user runs it (plain builders are in ``builders.py``)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from builders import TESTS


class User:
    """``amorph`` as a user runs it: a new process in a folder of the user's, with the default
    relative paths, and the test potentials (``lj_calculators``) importable by name."""

    def __init__(self):
        environment = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
        path = filter(None, [str(TESTS), environment.get("PYTHONPATH")])
        self.environment = environment | {"PYTHONPATH": os.pathsep.join(path)}

    def __call__(self, cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """``amorph ARGS`` in ``cwd``, to its end; with ``check``, it must succeed."""
        result = subprocess.run(
            [sys.executable, "-m", "amorph.cli", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            env=self.environment,
            timeout=1800,
        )
        if check:
            assert result.returncode == 0, result.stderr
        return result

    def start(self, cwd: Path, *args: str) -> subprocess.Popen:
        """``amorph ARGS`` started in ``cwd``, not waited for."""
        return subprocess.Popen(
            [sys.executable, "-m", "amorph.cli", *args],
            cwd=cwd,
            env=self.environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


@pytest.fixture(scope="session")
def amorph() -> User:
    return User()


def _digest(path: Path) -> dict[str, tuple[str, int]]:
    """sha256 and modification time of the file ``path``, or of every file below the folder."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {
        str(p.relative_to(path)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in files
    }


@pytest.fixture(scope="session")
def digest():
    """``digest(path)``: the sha256 and modification time of a file, or of every file below a
    folder, to show that nothing changed a byte."""
    return _digest


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
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    monkeypatch.syspath_prepend(str(TESTS))
