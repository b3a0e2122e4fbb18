"""Campaigns: the melt-quench flow over many compositions, resumable, with failures recorded.

Every composition, or group of ``batch`` compositions sharing one flow (and, with a batched engine, its
engine calls), runs in a private in-memory store (locally, or on a Dask worker); the
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

from amorph.errors import AmorphError, InputError
from amorph.files import write_text_atomic
from amorph.flows.melt_quench import MeltQuenchMaker
from amorph.structure.composition import parse_composition

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
    """What running a group of compositions as one flow produced: its job documents, or why it failed."""

    formulas: list[str]
    status: str  # "done" or "failed"
    reason: str = ""
    docs: list[dict[str, Any]] = field(default_factory=list)
    data: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    temperatures_K: dict[str, list[float]] = field(default_factory=dict)


def run_compositions(maker: MeltQuenchMaker, formulas: list[str], jobs_dir: str) -> list[Outcome]:
    """Run ``formulas`` as one flow (see :meth:`MeltQuenchMaker.make_batch`) in a private store.

    Never raises for a failure of the science. A failed group of several is rerun one composition at a
    time, so that one bad composition does not fail the others (with the maker's ``run_dir``, their
    finished MD runs are reused).
    """
    store = JobStore(MemoryStore(), additional_stores={"data": MemoryStore()})
    try:
        flow = copy.deepcopy(maker).make_batch(formulas)
        run_locally(
            flow,
            store=store,
            root_dir=jobs_dir,
            create_folders=True,
            log=False,
            raise_immediately=True,
        )
        results = {formula: summaries.resolve(store) for formula, summaries in flow.output.items()}
    except Exception as exc:  # noqa: BLE001 - one composition's crash must not stop the campaign
        if len(formulas) > 1:
            return [
                outcome
                for formula in formulas
                for outcome in run_compositions(maker, [formula], jobs_dir)
            ]
        if not isinstance(exc, AmorphError):
            logger.exception("composition %s crashed", formulas[0])
        reason = str(exc) if isinstance(exc, AmorphError) else f"{type(exc).__name__}: {exc}"
        return [Outcome(formulas, "failed", reason)]
    return [
        Outcome(
            formulas,
            "done",
            docs=_without_ids(store.docs_store.query()),
            data={name: _without_ids(s.query()) for name, s in store.additional_stores.items()},
            temperatures_K={
                formula: [s["temperature_K"] for s in summaries]
                for formula, summaries in results.items()
            },
        )
    ]


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

    def run(
        self, formulas: list[str], executor: str = "local", workers: int = 1, batch: int = 1
    ) -> dict[str, dict[str, Any]]:
        """Run the pending formulas, ``batch`` compositions per flow, one flow after another or on a local
        Dask cluster, and record each outcome."""
        todo = self.pending(formulas)
        groups = [todo[i : i + batch] for i in range(0, len(todo), batch)]
        jobs_dir = str((self.outputs / "jobs").resolve())
        outcomes = (
            self._local(groups, jobs_dir)
            if executor == "local"
            else self._dask(groups, jobs_dir, workers)
        )
        with tqdm(total=len(todo), desc="campaign", unit="composition", disable=None) as progress:
            for group_outcomes in outcomes:
                for outcome in group_outcomes:
                    self._record(outcome)
                    progress.update(len(outcome.formulas))
        return {f: self.status[self._key(f)] for f in formulas}

    def _local(self, groups: list[list[str]], jobs_dir: str) -> Iterator[list[Outcome]]:
        return (run_compositions(self.maker, group, jobs_dir) for group in groups)

    def _dask(
        self, groups: list[list[str]], jobs_dir: str, workers: int
    ) -> Iterator[list[Outcome]]:
        from distributed import Client, LocalCluster, as_completed

        with (
            LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
            ) as cluster,
            Client(cluster) as client,
        ):
            futures = [
                client.submit(run_compositions, self.maker, group, jobs_dir, pure=False)
                for group in groups
            ]
            for future in as_completed(futures):
                yield future.result()

    def _record(self, outcome: Outcome) -> None:
        if outcome.status == "done":
            self.store.connect()
            self.store.docs_store.update(outcome.docs, key=["uuid", "index"])
            for name, docs in outcome.data.items():
                if docs:
                    self.store.additional_stores[name].update(docs, key="blob_uuid")
        for formula in outcome.formulas:
            self.status[self._key(formula)] = {
                "formula": formula,
                "status": outcome.status,
                "reason": outcome.reason,
                "temperatures_K": outcome.temperatures_K.get(self._key(formula), []),
            }
        write_text_atomic(self.status_path, json.dumps(self.status, indent=1))

    @staticmethod
    def _key(formula: str) -> str:
        """The status key: the reduced formula where the formula parses, else the text itself."""
        try:
            return parse_composition(formula).reduced_formula
        except AmorphError:
            return formula
