"""A hostile but realistic user (issue 27): a damaged store is never written, a planted link never
followed, and every failure is one ``amorph: error:`` line with exit status 1, nothing left behind.

Every command runs as a user runs it: a new process in a folder of the user's, default relative
paths. The store under attack is a real one, filled by ``amorph run`` with Lennard-Jones argon.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import time
from pathlib import Path

import pytest
from builders import lj_options

LJ = [*lj_options(), "--second-opinion", "none"]
STORE = Path("outputs", "store", "amorph.sqlite")


def one_error_line(result, phrase: str) -> str:
    """The one ``amorph: error:`` line of a failed command, which says ``phrase``."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, result.stderr
    assert len(lines) == 1 and lines[0].startswith("amorph: error:"), result.stderr
    assert phrase in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def argon(tmp_path_factory, amorph) -> Path:
    """Outputs of ``amorph run Ar``: a store, run folders and result folders."""
    home = tmp_path_factory.mktemp("argon")
    amorph(home, "run", "Ar", *LJ)
    return home / "outputs"


@pytest.fixture
def home(tmp_path, argon) -> Path:
    """A user's folder holding a copy of the argon outputs."""
    shutil.copytree(argon, tmp_path / "outputs", symlinks=True)
    return tmp_path


def test_1_a_store_damaged_mid_file_is_refused_by_readers_and_writers(amorph, digest, home):
    store = home / STORE
    data = bytearray(store.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4096] = random.Random(27).randbytes(4096)
    store.write_bytes(data)
    before = digest(home / "outputs")
    for command in (["db", "list"], ["db", "show", "Ar"], ["db", "export", "--format", "json"]):
        line = one_error_line(amorph(home, *command, check=False), "is damaged")
        assert str(store) in line and "amorph db export" in line  # how to recover
    one_error_line(amorph(home, "run", "Ar", *LJ, check=False), f"{store} is damaged")
    assert digest(home / "outputs") == before  # no byte written, no MD run, nothing exported


def test_2_an_empty_store_file_is_refused_not_replaced(amorph, digest, home):
    store = home / STORE
    store.write_bytes(b"")
    before = digest(store)
    one_error_line(amorph(home, "db", "list", check=False), f"{store} is empty (0 bytes)")
    one_error_line(amorph(home, "run", "Ar", *LJ, check=False), f"{store} is empty (0 bytes)")
    assert digest(store) == before and store.stat().st_size == 0


def _victim(path: Path, folder: bool) -> Path:
    """What a planted link points to: a folder with a file, or a file."""
    if folder:
        (path / "1000K").mkdir(parents=True)
        (path / "1000K" / "summary.json").write_text("the victim's own file\n")
    else:
        path.write_text("the victim's own file\n")
    return path


@pytest.mark.parametrize("folder", [True, False], ids=["folder-link", "file-link"])
@pytest.mark.parametrize(
    "link",
    [
        "outputs/results/Ar",
        "outputs/runs/Ar",
        "outputs/runs/Ar/100K",
        "outputs/jobs",
        "outputs/store",
        "outputs/store/amorph.sqlite",
    ],
)
def test_3_4_run_refuses_a_planted_link_and_leaves_its_target_untouched(
    amorph, digest, home, tmp_path_factory, link, folder
):
    victim = _victim(tmp_path_factory.mktemp("victim") / "target", folder)
    planted = home / link
    if planted.is_dir() and not planted.is_symlink():
        shutil.rmtree(planted)
    else:
        planted.unlink()
    planted.symlink_to(victim)
    before, store = digest(victim), home / STORE
    store_before = digest(store) if store.exists() else None
    line = one_error_line(amorph(home, "run", "Ar", *LJ, check=False), f"{planted} is a symbolic")
    assert str(victim) in line and "remove the link" in line
    assert digest(victim) == before and os.readlink(planted) == str(victim)
    if store_before is not None:
        assert digest(store) == store_before  # refused before anything reached the store


@pytest.mark.parametrize("folder", [True, False], ids=["folder-link", "file-link"])
def test_3_4_export_refuses_a_planted_link_and_leaves_its_target_untouched(
    amorph, digest, home, tmp_path_factory, folder
):
    victim = _victim(tmp_path_factory.mktemp("victim") / "target", folder)
    (home / "exp").mkdir()
    (home / "exp" / "Ar").symlink_to(victim)
    before = digest(victim)
    result = amorph(home, "db", "export", "--folders", "exp", check=False)
    one_error_line(result, f"{home / 'exp' / 'Ar'} is a symbolic link (to {victim})")
    assert digest(victim) == before
    assert sorted(p.name for p in (home / "exp").iterdir()) == ["Ar"]


def test_3_a_link_at_a_result_file_is_replaced_not_written_through(amorph, digest, home, tmp_path):
    victim = _victim(tmp_path / "victim.txt", folder=False)
    summary = home / "outputs" / "results" / "Ar" / "100K" / "summary.json"
    summary.unlink()
    summary.symlink_to(victim)
    table = home / "table.csv"
    table.symlink_to(victim)
    before = digest(victim)
    amorph(home, "db", "export", "--folders", "outputs/results", "-o", "table.csv")
    assert digest(victim) == before
    assert not summary.is_symlink() and not table.is_symlink()
    assert table.read_text().startswith("formula,engine,temperature_K")


@pytest.mark.parametrize(
    ("factory", "phrase"),
    [
        ("os:system", "engine os:system could not be made: TypeError: system() missing"),
        ("os:getcwd", "os:getcwd returned str, not an ASE calculator"),
    ],
)
def test_5_an_engine_factory_that_fails_or_returns_no_calculator_is_one_line(
    amorph, tmp_path, factory, phrase
):
    one_error_line(amorph(tmp_path, "run", "Ar", "--engine", factory, check=False), phrase)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args",
    [
        ["run", "Ar", "--preset", "bogus"],
        ["db", "list", "-v"],
        ["run", "Ar", "--seed", "one"],
        ["campaign"],
        [],
    ],
)
def test_6_command_line_errors_are_one_line_and_exit_1(amorph, tmp_path, args):
    one_error_line(amorph(tmp_path, *args, check=False), "see `amorph")
    assert list(tmp_path.iterdir()) == []


def test_6_a_campaign_whose_only_entry_is_invalid_is_one_line_and_leaves_nothing(amorph, tmp_path):
    (tmp_path / "compositions.txt").write_text("Xx2O\n")
    result = amorph(tmp_path, "campaign", "compositions.txt", *LJ, check=False)
    one_error_line(result, "no composition of the campaign can run (Xx2O: unknown element 'Xx'")
    assert [p.name for p in tmp_path.iterdir()] == ["compositions.txt"]


def _children(pid: int) -> dict[int, str]:
    """The running child processes of ``pid``: their pids and names."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            name, rest = stat.read_text().rsplit(")", 1)
        except OSError:  # ended meanwhile
            continue
        state, parent = rest.split()[:2]
        if int(parent) == pid and state != "Z":
            children[int(stat.parent.name)] = name.split("(", 1)[1]
    return children


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie is dead, waiting for its new parent to reap it


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_7_packmol_dies_with_a_killed_run(amorph, tmp_path):
    # 4 Å apart at 5 Å³ per atom cannot be packed: packmol keeps trying until its timeout
    args = ["--volume-per-atom", "5", "--min-distance", "4.0"]
    run = amorph.start(tmp_path, "run", "Ar", *LJ[:4], *args)
    deadline = time.monotonic() + 120
    while not (packmol := [p for p, name in _children(run.pid).items() if name == "packmol"]):
        assert run.poll() is None, run.stderr.read()
        assert time.monotonic() < deadline, "packmol never started"
        time.sleep(0.1)
    run.send_signal(signal.SIGKILL)
    run.wait()
    deadline = time.monotonic() + 10
    while _running(packmol[0]):
        assert time.monotonic() < deadline, "packmol outlived the killed run"
        time.sleep(0.05)


@pytest.mark.parametrize("command", ["run", "campaign"])
@pytest.mark.parametrize(
    ("outputs", "phrase"),
    [
        ("a-file", "a-file is a file where amorph needs a folder"),
        ("/proc/x", "cannot make or write in folder /proc/x"),
    ],
)
def test_8_unusable_outputs_are_refused_before_any_model_loads(
    amorph, digest, tmp_path, command, outputs, phrase
):
    (tmp_path / "a-file").write_text("the user's own file\n")
    (tmp_path / "compositions.txt").write_text("Li2O\n")
    before = digest(tmp_path)
    target = "Li2O" if command == "run" else "compositions.txt"
    # loading this model would fail with "no matgl model": the outputs are checked first
    engine = ["--engine", "m3gnet-ase", "--model", "/nonexistent"]
    result = amorph(tmp_path, command, target, *engine, "--outputs", outputs, check=False)
    one_error_line(result, phrase)
    assert digest(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "compositions.txt"]
