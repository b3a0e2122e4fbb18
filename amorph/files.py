"""Atomic file writes (a reader never sees a half-written file) with the user's permissions, folders
made without following links amorph did not make, and JSON text without NaN."""

from __future__ import annotations

import ctypes
import json
import math
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from amorph.errors import PathError

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once: mkstemp and mkdtemp ignore it (0600, 0700), these helpers do not


def staging_dir(parent: Path, prefix: str) -> Path:
    """A new folder in ``parent`` with the permissions of one made by ``mkdir``."""
    staging = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    staging.chmod(0o777 & ~_UMASK)
    return staging


def safe_directory(path: str | Path, root: str | Path, make: bool = True) -> Path:
    """The folder ``path`` inside ``root``, made where missing, reached through no link amorph did
    not make: every writer of result, export, run, job and store folders makes them here.

    ``root`` is a folder the user named (``--outputs``, ``--folders``, a run folder): made like
    ``mkdir -p`` and, as the user's choice, allowed to be a link. Below it each part of ``path``
    must be a real folder: a missing one is made (with the user's umask); a symbolic link (to a
    folder, a file or nothing) or a file raises :class:`~amorph.errors.PathError` naming it, and
    neither it nor its target is touched.

    Parameters
    ----------
    path, root
        The folder, and the folder the user named (``path`` itself, or one above it).
    make
        False: make nothing, only raise what making would raise (``root`` must exist or be
        makeable, and writable: a probe folder made in it, or above it, is removed at once).

    Returns
    -------
    Path
        ``path``, absolute (not resolved).
    """
    root, path = Path(root).absolute(), Path(path).absolute()
    parts = path.relative_to(root).parts
    folder = root
    try:
        if make:
            root.mkdir(parents=True, exist_ok=True)
        else:
            existing = next(p for p in (root, *root.parents) if p.exists())
            _refuse_file(existing)
            os.rmdir(tempfile.mkdtemp(prefix=".amorph-probe-", dir=existing))
        _refuse_file(root)
        for part in parts:
            folder = folder / part
            if make:
                with suppress(FileExistsError):  # mkdir follows no link: it fails on any entry
                    folder.mkdir()
            elif not folder.is_symlink() and not folder.exists():
                break
            if folder.is_symlink():
                raise PathError(
                    f"{folder} is a symbolic link (to {os.readlink(folder)}): amorph writes "
                    "nothing through a link it did not make; remove the link"
                )
            _refuse_file(folder)
    except OSError as exc:
        _refuse_file(folder)
        raise PathError(f"cannot make or write in folder {folder}: {exc.strerror}") from None
    return path


def stage_folder(root: str | Path, formula: str, temperature: float, make: bool = True) -> Path:
    """``<root>/<formula>/<T>K``: the folder of a composition at a temperature (its MD runs, its
    exported results), reached through no link amorph did not make (:func:`safe_directory`)."""
    return safe_directory(Path(root) / formula / f"{temperature:.0f}K", root, make)


def _refuse_file(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise PathError(f"{path} is a file where amorph needs a folder")


def remove_empty_folders(root: Path) -> None:
    """Remove the empty folders under ``root`` (deepest first), and ``root`` if it ends empty."""
    for folder, _, _ in sorted(os.walk(root), key=lambda entry: -len(entry[0])):
        with suppress(OSError):  # not empty, or gone
            os.rmdir(folder)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine is running (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        pass
    return True


def json_text(value: Any, indent: int | None = 1) -> str:
    """``value`` as JSON, with NaN and infinities as null (JSON has no such numbers)."""
    return json.dumps(_finite(value), indent=indent, allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


@contextmanager
def atomic_path(path: str | Path, replace: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` only if the block succeeds.

    ``path`` itself is replaced (a link there too, never its target); with ``replace=False`` a
    file already at ``path`` is kept and the new one dropped (two processes creating one file).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    tmp_path.chmod(0o666 & ~_UMASK)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        if replace:
            os.replace(tmp_path, path)
        else:
            with suppress(FileExistsError):
                os.link(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def dies_with_this_process(signal_number: int = signal.SIGKILL) -> Callable[[], None] | None:
    """A ``preexec_fn`` that has Linux send ``signal_number`` to the child when this process dies
    (SIGKILL included), so that a killed run leaves no packmol or MPI ranks behind; None
    elsewhere."""
    if sys.platform != "linux":
        return None
    parent = os.getpid()

    def arm() -> None:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal_number)
        if os.getppid() != parent:  # this process died before the request was made
            os._exit(1)

    return arm
