"""Opening the store a command or a script works with: the embedded store of an outputs folder, or
any jobflow store named by a file.

The embedded store is one SQLite database, ``<outputs>/store/amorph.sqlite``
(:mod:`amorph.results.sqlite_store`), holding jobflow's job documents (collection ``jobs``) and its
large data blobs (collection ``data``). A folder that still holds the old JSON store is imported
once by the first writable open (:mod:`amorph.results.legacy_json`). For MongoDB (HPC), pass a
jobflow store file or a jobflow-remote project file (:mod:`amorph.results.store_files`).
"""

from __future__ import annotations

from pathlib import Path

from jobflow import JobStore

from amorph.errors import StoreError
from amorph.results.legacy_json import import_legacy, legacy_files
from amorph.results.outputs import Outputs
from amorph.results.sqlite_store import SQLiteStore
from amorph.results.store_files import store_from_file

DATABASE = "amorph.sqlite"


def embedded_store(directory: str | Path, *, read_only: bool = False) -> JobStore:
    """The embedded store in ``directory``, connected: job documents and a ``data`` store.

    Parameters
    ----------
    directory
        The store folder (made absolute here, so a later ``chdir`` cannot move the store);
        created with the database when writable.
    read_only
        Open without writing anything; a folder without a database raises
        :class:`~amorph.errors.EmptyStoreError`.

    Returns
    -------
    JobStore
        A connected store whose ``docs_store`` and ``data`` store share ``directory/amorph.sqlite``.
    """
    directory = Path(directory).expanduser().absolute()
    legacy = legacy_files(directory)
    if read_only and legacy:
        raise StoreError(
            f"{directory} holds results in the old JSON format ({', '.join(legacy)}): open it once "
            f"for writing (e.g. `amorph run FORMULA` with these outputs) to import them into "
            f"{DATABASE}"
        )
    database = directory / DATABASE
    docs = SQLiteStore(database, "jobs", read_only=read_only)
    data = SQLiteStore(database, "data", read_only=read_only)
    store = JobStore(docs, additional_stores={"data": data})
    store.connect()
    if legacy:
        import_legacy(store, directory, legacy)
    docs.ensure_index("name")
    data.ensure_index("job_uuid")
    return store


def open_store(
    store: str | Path | None = None, outputs: str | Path = "outputs", *, read_only: bool = False
) -> JobStore:
    """The connected store of ``Outputs(outputs, store)``.

    Parameters
    ----------
    store
        None for the embedded store in ``<outputs>/store/``; else a jobflow store file
        (``JobStore.from_file`` format) or a jobflow-remote project file (its ``jobstore:``),
        YAML, JSON or TOML. Its MongoDB servers are pinged now.
    outputs
        The outputs folder holding the embedded store.
    read_only
        Open the embedded store without writing anything (a store file is used as it says).

    Returns
    -------
    JobStore
        The connected store.

    Raises
    ------
    StoreError
        The file is missing, unreadable, damaged or not a store, or a server cannot be reached.
    EmptyStoreError
        ``read_only`` and the embedded store does not exist yet.
    PathError
        Writable, and the store folder is a file or a link amorph did not make.
    """
    layout = Outputs(Path(outputs), None if store is None else Path(store))
    if layout.store is not None:
        return store_from_file(layout.store)
    if not read_only:
        layout.folder(layout.store_dir)
    return embedded_store(layout.store_dir, read_only=read_only)
