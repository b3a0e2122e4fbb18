"""The outputs folder of a command (``--outputs``) and the store it uses (``--store``), laid out.

::

    <root>/store/amorph.sqlite   the embedded store, unless ``store`` names a store file
    <root>/results/<formula>/    result folders, exported from the store
    <root>/runs/<formula>/<T>K/  MD trajectories and checkpoints of every run
    <root>/jobs/<time>-<host>-<pid>/   jobflow's job folders of one process
    <root>/campaign.json         a campaign's status

Paths are made absolute once, where the command starts (a job's ``chdir`` cannot move them), and
never resolved: ``root`` may be a link the user made. Folders below it are made by
:meth:`Outputs.folder`, which never follows a link it did not make.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from amorph.files import safe_directory


@dataclass(frozen=True)
class Outputs:
    """The layout of an outputs folder and the store its command reads and writes.

    Parameters
    ----------
    root
        The outputs folder (``--outputs``, default ``outputs``).
    store
        A jobflow store file or jobflow-remote project file (``--store``) to use instead of the
        embedded store in ``<root>/store``.
    """

    root: Path = Path("outputs")
    store: Path | None = None

    def __post_init__(self) -> None:
        """Make ``root`` and ``store`` absolute, ``~`` expanded."""
        object.__setattr__(self, "root", Path(self.root).expanduser().absolute())
        if self.store is not None:
            object.__setattr__(self, "store", Path(self.store).expanduser().absolute())

    @property
    def store_dir(self) -> Path:
        """The folder of the embedded store."""
        return self.root / "store"

    @property
    def results(self) -> Path:
        """The folder of the result folders exported by ``amorph run``."""
        return self.root / "results"

    @property
    def runs(self) -> Path:
        """The folder of the MD runs, ``<formula>/<T>K`` below it."""
        return self.root / "runs"

    @property
    def jobs(self) -> Path:
        """The folder of the job folders, one per process."""
        return self.root / "jobs"

    @property
    def campaign_status(self) -> Path:
        """A campaign's status file."""
        return self.root / "campaign.json"

    @property
    def description(self) -> str:
        """The store, for messages: the store file, else the embedded store's folder."""
        return str(self.store or self.store_dir)

    def folder(self, path: Path) -> Path:
        """Make ``path`` (one of the folders above, or one below them) safely: see
        :func:`~amorph.files.safe_directory`."""
        return safe_directory(path, self.root)

    def check(self, formulas: Iterable[str] = ()) -> None:
        """Raise :class:`~amorph.errors.PathError` now, before any model loads, where writing the
        outputs would fail later: ``root`` is a file or cannot be made or written in, or a folder
        of the layout, or a result or run folder of ``formulas`` (reduced formulas), is a file or
        a link. Makes nothing."""
        folders = [self.store_dir, self.results, self.runs, self.jobs]
        for formula in formulas:
            runs = self.runs / formula
            folders += [self.results / formula, runs, *(runs.iterdir() if runs.is_dir() else [])]
        for path in folders:
            safe_directory(path, self.root, make=False)
