"""Campaigns: the melt-quench flow over many compositions, resumable, with failures recorded.

Every composition runs its flow in a private in-memory store (locally, or on a Dask worker); the
campaign process alone writes the finished documents into the campaign's store, so the embedded JSON
store never has two writers. MD files go to the maker's ``run_dir``: a composition interrupted part-way
reuses its finished MD runs and continues its production from the last checkpoint when rerun.
``campaign.json`` beside the store records each composition's status and, for failures, the reason.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobflow import JobStore, run_locally
from maggma.stores import MemoryStore
from tqdm.auto import tqdm

from amorph.composition import parse_composition
from amorph.errors import AmorphError, InputError
from amorph.files import write_text_atomic
from amorph.flows.melt_quench import MeltQuenchMaker

logger = logging.getLogger(__name__)


def read_compositions(path: str | Path) -> list[str]:
    """Formulas of a campaign file: one per line; blank lines and text after ``#`` are ignored."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise InputError(f"cannot read campaign file {path}: {exc.strerror}") from None
    formulas = [line.split("#", 1)[0].strip() for line in lines]
    formulas = list(dict.fromkeys(f for f in formulas if f))
    if not formulas:
        raise InputError(f"campaign file {path} lists no compositions")
    return formulas


@dataclass
class Outcome:
    """What running one composition produced: its job documents, or the reason it failed."""

    formula: str
    status: str  # "done" or "failed"
    reason: str = ""
    docs: list[dict[str, Any]] = field(default_factory=list)
    data: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    temperatures_K: list[float] = field(default_factory=list)


def run_composition(maker: MeltQuenchMaker, formula: str, jobs_dir: str) -> Outcome:
    """Run one composition's flow in a private store; never raises for a failure of the science."""
    store = JobStore(MemoryStore(), additional_stores={"data": MemoryStore()})
    try:
        flow = copy.deepcopy(maker).make(formula)
        run_locally(flow, store=store, root_dir=jobs_dir, create_folders=True, log=False, raise_immediately=True)
        summaries = flow.output.resolve(store)
    except AmorphError as exc:
        return Outcome(formula, "failed", str(exc))
    except Exception as exc:  # noqa: BLE001 - one composition's crash must not stop the campaign
        logger.exception("composition %s crashed", formula)
        return Outcome(formula, "failed", f"{type(exc).__name__}: {exc}")
    return Outcome(
        formula,
        "done",
        docs=_without_ids(store.docs_store.query()),
        data={name: _without_ids(s.query()) for name, s in store.additional_stores.items()},
        temperatures_K=[s["temperature_K"] for s in summaries],
    )


def _without_ids(docs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Documents without the in-memory store's ``_id``, ready for another store."""
    return [{k: v for k, v in d.items() if k != "_id"} for d in docs]


@dataclass
class Campaign:
    """A set of compositions run with one maker into one store, with a status file for resuming."""

    maker: MeltQuenchMaker
    store: JobStore
    outputs: Path
    status: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.outputs = Path(self.outputs)
        self.status_path = self.outputs / "campaign.json"
        if self.status_path.exists():
            self.status = json.loads(self.status_path.read_text())

    def pending(self, formulas: Iterable[str]) -> list[str]:
        """Formulas not finished yet: never run, failed, or interrupted."""
        return [f for f in formulas if self.status.get(self._key(f), {}).get("status") != "done"]

    def run(self, formulas: list[str], executor: str = "local", workers: int = 1) -> dict[str, dict[str, Any]]:
        """Run the pending formulas (sequentially, or on a local Dask cluster) and record each outcome."""
        todo = self.pending(formulas)
        jobs_dir = str((self.outputs / "jobs").resolve())
        outcomes = (self._local(todo, jobs_dir) if executor == "local"
                    else self._dask(todo, jobs_dir, workers))
        for outcome in tqdm(outcomes, total=len(todo), desc="campaign", unit="composition", disable=None):
            self._record(outcome)
        return {f: self.status[self._key(f)] for f in formulas}

    def _local(self, formulas: list[str], jobs_dir: str) -> Iterator[Outcome]:
        return (run_composition(self.maker, formula, jobs_dir) for formula in formulas)

    def _dask(self, formulas: list[str], jobs_dir: str, workers: int) -> Iterator[Outcome]:
        from distributed import Client, LocalCluster, as_completed

        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None) as cluster, Client(cluster) as client:
            futures = [client.submit(run_composition, self.maker, f, jobs_dir, pure=False) for f in formulas]
            for future in as_completed(futures):
                yield future.result()

    def _record(self, outcome: Outcome) -> None:
        if outcome.status == "done":
            self.store.connect()
            self.store.docs_store.update(outcome.docs, key=["uuid", "index"])
            for name, docs in outcome.data.items():
                if docs:
                    self.store.additional_stores[name].update(docs, key="blob_uuid")
        entry = {"status": outcome.status, "reason": outcome.reason, "temperatures_K": outcome.temperatures_K}
        self.status[self._key(outcome.formula)] = {"formula": outcome.formula, **entry}
        write_text_atomic(self.status_path, json.dumps(self.status, indent=1))

    @staticmethod
    def _key(formula: str) -> str:
        """The status key: the reduced formula where the formula parses, else the text itself."""
        try:
            return parse_composition(formula).reduced_formula
        except AmorphError:
            return formula
