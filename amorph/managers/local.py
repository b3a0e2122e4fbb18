"""Running flows on this machine, into the store: ``amorph run`` from its checks to its exported
folders, and the pieces campaigns share.

jobflow runs each job inside its own folder; a path given relative to where the command started
would resolve again there, so every path comes from an :class:`~amorph.results.outputs.Outputs`,
made absolute once.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from jobflow import Flow, JobStore, run_locally
from maggma.stores import MemoryStore
from pymatgen.core import Composition

from amorph.errors import InputError
from amorph.files import process_alive, remove_empty_folders
from amorph.flows.audit import AuditMaker
from amorph.flows.melt_quench import MeltQuenchMaker
from amorph.results.export import write_folders
from amorph.results.outputs import Outputs
from amorph.results.reader import CompositionEntry, Database
from amorph.results.schemas import AuditDoc
from amorph.results.store import open_store
from amorph.structure.composition import parse_composition

MAX_ATOM_STEPS = 1e9  # about 100 times the paper's protocol: weeks of CHGNet MD on a CPU
PAIR_BYTES = 200  # the batched potentials' dense neighbour search: 27 cell images × ~7 bytes


def check_size(maker: MeltQuenchMaker, compositions: list[Composition], force: bool) -> None:
    """Refuse, unless ``force``, a flow that cannot fit in this machine's memory or whose MD would
    take more than ``MAX_ATOM_STEPS`` atom-steps."""
    if force:
        return
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for composition in compositions:
        atoms, atom_steps = maker.size(composition)
        need = PAIR_BYTES * atoms**2 if maker.engine.batches else 0
        if need > memory:
            raise InputError(
                f"{atoms} atoms of {composition.reduced_formula} need about {need / 1e9:.0f} GB "
                f"of memory, this machine has {memory / 1e9:.0f} GB: use fewer atoms (or --force)"
            )
        if atom_steps > MAX_ATOM_STEPS:
            raise InputError(
                f"{composition.reduced_formula}: at least {atom_steps:.1e} atom-steps of MD, more "
                f"than {MAX_ATOM_STEPS:.0e} (about 100 times the paper's protocol): use fewer "
                "atoms or shorter runs (or --force)"
            )


def run_composition(
    maker: MeltQuenchMaker,
    composition: Composition,
    outputs: Outputs,
    force: bool = False,
    log: bool = False,
) -> CompositionEntry:
    """``amorph run``: the melt-quench flow of ``composition`` here, into the store of
    ``outputs``, then its result folders exported from the store to ``outputs.results``.

    Everything that can be checked is checked before anything is written: the settings, the size
    of the run (unless ``force``), the outputs folder (before any model loads), the engine and its
    elements, the store (a damaged one is refused before any MD).

    Returns
    -------
    CompositionEntry
        The composition's result as the store holds it.
    """
    flow = maker.make(composition)
    check_size(maker, [composition], force)
    outputs.check([composition.reduced_formula])
    check_engine(maker, [composition])
    store = open_store(outputs.store, outputs.root)
    outputs.folder(outputs.runs)
    run_flow(flow, store, outputs, log=log)
    database = Database(store, outputs.description)
    (entry,) = database.compositions(composition.reduced_formula, maker.engine.label)
    write_folders([entry], outputs.folder(outputs.results))
    return entry


def check_engine(maker: MeltQuenchMaker, compositions: list[Composition]) -> None:
    """Load the maker's engine (and its audit's) and check they model every element, and the
    engine a cell of the run's size, before anything is written."""
    engine = maker.engine.load()
    audit = maker.stage.audit and maker.stage.audit.engine.load()
    for composition in compositions:
        engine.check_cell(maker.cell.stand_in(composition, maker.melt_temperature))
        if audit:
            audit.check_elements([el.symbol for el in composition.elements])


def private_store() -> JobStore:
    """An in-memory store to run a flow in, whose documents go to the real store only at the end:
    a failed or killed flow leaves none there."""
    return JobStore(MemoryStore(), additional_stores={"data": MemoryStore()})


def contents(store: JobStore) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """The documents and the data-store documents of ``store``, without the ``_id``s of its
    stores, ready for another store."""

    def without_ids(docs):
        return [{k: v for k, v in d.items() if k != "_id"} for d in docs]

    data = {name: without_ids(s.query()) for name, s in store.additional_stores.items()}
    return without_ids(store.docs_store.query()), data


def add_contents(
    store: JobStore, docs: list[dict[str, Any]], data: dict[str, list[dict[str, Any]]]
) -> None:
    """Write what :func:`contents` returned into ``store``."""
    store.connect()
    store.docs_store.update(docs, key=["uuid", "index"])
    for name, blobs in data.items():
        if blobs:
            store.additional_stores[name].update(blobs, key="blob_uuid")


def run_flow(flow: Flow, store: JobStore, outputs: Outputs, log: bool = False) -> None:
    """Run ``flow`` here; the first failing job stops it with its error. Its documents go to
    ``store`` once every job has finished.

    Parameters
    ----------
    flow, store
        What to run, and the store its documents go to.
    outputs
        Where the job folders go (``outputs.jobs``).
    log
        Whether jobflow logs each job.
    """
    private = private_store()
    with job_folders(outputs) as root:
        run_locally(
            flow, store=private, root_dir=root, create_folders=True, log=log, raise_immediately=True
        )
    add_contents(store, *contents(private))


@contextmanager
def job_folders(outputs: Outputs) -> Iterator[Path]:
    """A folder of this process's own, ``<outputs.jobs>/<time>-<host>-<pid>``, for jobflow's job
    folders.

    Most jobs write nothing in theirs: the empty ones, and this folder if it ends empty, are removed
    afterwards, and before it those that killed processes of this host left. Running processes'
    folders are never touched, so runs can share ``outputs``.
    """
    jobs, host = outputs.folder(outputs.jobs), socket.gethostname()
    for folder in jobs.glob(f"*-{host}-*"):
        pid = folder.name.rsplit("-", 1)[1]
        if pid.isdigit() and not process_alive(int(pid)) and not folder.is_symlink():
            remove_empty_folders(folder)
    root = outputs.folder(jobs / f"{time.strftime('%Y%m%d-%H%M%S')}-{host}-{os.getpid()}")
    try:
        yield root
    finally:
        remove_empty_folders(root)


def audit_stages(
    maker: AuditMaker,
    formulas: list[str],
    outputs: Outputs,
    stage_engine: str | None = None,
    temperatures: list[float] | None = None,
    log: bool = False,
) -> list[AuditDoc]:
    """``amorph audit``: audit the stored stages of ``formulas`` (of ``stage_engine`` and at
    ``temperatures`` only, if given) here; their audits go into the store and are returned."""
    from amorph.flows.audit import AuditSubject
    from amorph.md.engine import EngineSpec

    maker.engine.load().check_elements(
        sorted({el.symbol for f in formulas for el in parse_composition(f).elements})
    )
    database = Database.open(outputs)  # read-only until there is something to audit
    flows = []
    for formula in formulas:
        for entry in database.compositions(parse_composition(formula).reduced_formula):
            for stage in entry.stages:
                doc = stage.doc
                if (stage_engine and doc.engine != stage_engine) or (
                    temperatures and not any(abs(doc.temperature_K - t) < 0.5 for t in temperatures)
                ):
                    continue
                trajectory = stage.trajectory()
                indices = maker.frame_indices(trajectory)
                engine = EngineSpec.parse(doc.engine, model=doc.engine_model)
                subject = AuditSubject(
                    doc.formula, doc.temperature_K, stage.uuid, engine, doc.eos.fit.b0_GPa
                )
                frames = [trajectory.structure(i) for i in indices]
                flows.append(maker.make(subject, frames, indices))
    if not flows:
        return []
    store = open_store(outputs.store, outputs.root)
    run_flow(Flow(flows, name="dft audits"), store, outputs, log=log)
    return [f.output.resolve(store) for f in flows]
