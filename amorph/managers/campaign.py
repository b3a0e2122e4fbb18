"""Campaigns: the melt-quench flow over many compositions, resumable, with failures recorded.

Every composition, or group of ``batch`` compositions sharing one flow (and, with a batched engine,
its engine calls), runs in a private in-memory store (locally, or on a Dask worker: a local cluster,
or workers started as SLURM jobs by dask-jobqueue); the campaign process writes a composition's
documents into the campaign's store only once all of them exist, so a failed composition leaves
nothing half-written. MD files go to the maker's ``run_dir``: a composition interrupted part-way
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
from tqdm.auto import tqdm

from amorph.errors import AmorphError, InputError
from amorph.files import write_text_atomic
from amorph.flows.melt_quench import MeltQuenchMaker
from amorph.managers.local import (
    add_contents,
    check_engine,
    check_size,
    contents,
    job_folders,
    private_store,
)
from amorph.results.outputs import Outputs
from amorph.results.store import open_store
from amorph.structure.composition import parse_composition

logger = logging.getLogger(__name__)


def read_compositions(path: str | Path) -> dict[str, list[str]]:
    """Formulas of a campaign file: one per line; blank lines and text after ``#`` are ignored.

    Returns each composition's first spelling with every spelling of it in the file (``Li2O``,
    ``OLi2`` and ``Li4O2`` are one composition), in the file's order.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"cannot read campaign file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise InputError(
            f"campaign file {path} is not UTF-8 text (byte {exc.start}): one formula per line"
        ) from None
    spellings: dict[str, list[str]] = {}
    for line in lines:
        if formula := line.split("#", 1)[0].strip():
            spellings.setdefault(composition_key(formula), []).append(formula)
    if not spellings:
        raise InputError(f"campaign file {path} lists no compositions")
    return {found[0]: list(dict.fromkeys(found)) for found in spellings.values()}


def composition_key(formula: str) -> str:
    """The reduced formula where the formula parses, else the text itself."""
    try:
        return parse_composition(formula).reduced_formula
    except AmorphError:
        return formula


@dataclass
class Outcome:
    """What running some compositions as one flow produced: its documents, or why it failed."""

    formulas: list[str]
    status: str  # "done" or "failed"
    reason: str = ""
    docs: list[dict[str, Any]] = field(default_factory=list)
    data: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    temperatures_K: dict[str, list[float]] = field(default_factory=dict)


def run_compositions(maker: MeltQuenchMaker, formulas: list[str], jobs_dir: str) -> list[Outcome]:
    """Run ``formulas`` as one flow (see :meth:`MeltQuenchMaker.make_batch`) in a private store.

    Never raises for a failure of the science. A failed group of several is rerun one composition
    at a time, so that one bad composition does not fail the others (with the maker's ``run_dir``,
    their finished MD runs are reused).

    Parameters
    ----------
    maker
        The protocol; it is copied, not changed.
    formulas
        Compositions run together as one flow.
    jobs_dir
        Absolute folder under which jobflow makes the job folders.
    """
    store = private_store()
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
        results = {formula: output.resolve(store) for formula, output in flow.output.items()}
    except Exception as exc:  # one composition's crash must not stop the campaign
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
    docs, data = contents(store)
    return [
        Outcome(
            formulas,
            "done",
            docs=docs,
            data=data,
            temperatures_K={formula: doc.temperatures_K for formula, doc in results.items()},
        )
    ]


def _cluster(executor: str, workers: int, slurm: dict[str, Any]):
    """A Dask cluster of ``workers`` single-threaded workers: local processes, or SLURM jobs.

    SLURM workers take their network settings from dask's ``jobqueue.slurm`` configuration, as
    dask-jobqueue documents: the scheduler's ``scheduler-options`` (``host``, ``interface``), the
    workers' ``interface`` and ``worker-extra-args`` (e.g. ``["--host", "127.0.0.1"]`` on a
    single node), set in ``~/.config/dask/jobqueue.yaml`` or ``DASK_JOBQUEUE__SLURM__...``
    variables; the dashboard is off unless ``scheduler-options`` asks for it.
    """
    if executor == "dask":
        from distributed import LocalCluster

        return LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        )
    if executor != "slurm":
        raise InputError(f"unknown executor {executor!r}: choose local, dask or slurm")
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise InputError(
            "--executor slurm needs dask-jobqueue: pip install 'amorph[hpc]'"
        ) from None
    import dask

    options = {"cores": 1, "processes": 1, "memory": "4GB", "walltime": "24:00:00", **slurm}
    configured = dask.config.get("jobqueue.slurm.scheduler-options", None) or {}
    cluster = SLURMCluster(scheduler_options={"dashboard_address": None, **configured}, **options)
    cluster.scale(jobs=workers)
    return cluster


def run_campaign(
    maker: MeltQuenchMaker,
    formulas: list[str],
    outputs: Outputs,
    force: bool = False,
    **options: Any,
) -> dict[str, dict[str, Any]]:
    """``amorph campaign``: check, then run the pending ``formulas`` into the store of ``outputs``.

    What would fail for every composition fails once, before anything is written: the settings,
    the sizes (unless ``force``), the outputs folder (before any model loads), the engine, and a
    list none of whose formulas can run (their reasons in one line). A composition that cannot
    run among others that can is recorded as failed. ``options`` go to :meth:`Campaign.run`.

    Returns
    -------
    dict
        The status of each formula (see :meth:`Campaign.run`).
    """
    maker.validate()
    compositions, invalid = [], {}
    for formula in formulas:
        try:
            composition = parse_composition(formula, whole=True)
            maker.validate(composition)
        except InputError as exc:
            invalid[formula] = str(exc)
            continue
        compositions.append(composition)
    if not compositions:
        reasons = "; ".join(f"{formula}: {reason}" for formula, reason in invalid.items())
        raise InputError(f"no composition of the campaign can run ({reasons})")
    check_size(maker, compositions, force)
    outputs.check(c.reduced_formula for c in compositions)
    check_engine(maker, [])  # a wrong engine or model fails once, here, not per composition
    runner = Campaign(maker, open_store(outputs.store, outputs.root), outputs)
    outputs.folder(outputs.runs)
    return runner.run(formulas, **options)


@dataclass
class Campaign:
    """A set of compositions run with one maker into one store, with a status file for resuming.

    Parameters
    ----------
    maker
        The protocol run for every composition.
    store
        Where the documents of finished compositions go.
    outputs
        Where the job folders and the status file go.
    status
        Outcome per composition; read from the status file when there is one.
    """

    maker: MeltQuenchMaker
    store: JobStore
    outputs: Outputs
    status: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Read ``status`` from the campaign's status file, if there is one."""
        self.status_path = self.outputs.campaign_status
        if self.status_path.exists():
            self.status = json.loads(self.status_path.read_text())

    def pending(self, formulas: Iterable[str]) -> list[str]:
        """Formulas not finished yet: never run, failed, or interrupted."""
        return [
            f for f in formulas if self.status.get(composition_key(f), {}).get("status") != "done"
        ]

    def run(
        self,
        formulas: list[str],
        executor: str = "local",
        workers: int = 1,
        batch: int = 1,
        slurm: dict[str, Any] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Run the pending formulas and record each outcome.

        Parameters
        ----------
        formulas
            Compositions; those already done are skipped.
        executor
            ``"local"`` (one flow after another, here), ``"dask"`` (a local Dask cluster of
            ``workers`` processes) or ``"slurm"`` (``workers`` Dask workers, each a SLURM job
            submitted by dask-jobqueue's ``SLURMCluster``).
        batch
            Compositions per flow.
        slurm
            Keyword arguments of ``SLURMCluster`` (e.g. ``queue``, ``walltime``, ``memory``).
        """
        todo = self.pending(formulas)
        groups = [todo[i : i + batch] for i in range(0, len(todo), batch)]
        with job_folders(self.outputs) as root:
            jobs_dir = str(root)
            outcomes = (
                self._local(groups, jobs_dir)
                if executor == "local"
                else self._dask(groups, jobs_dir, _cluster(executor, workers, slurm or {}))
            )
            with tqdm(total=len(todo), desc="campaign", unit="composition", disable=None) as bar:
                for group_outcomes in outcomes:
                    for outcome in group_outcomes:
                        self._record(outcome)
                        bar.update(len(outcome.formulas))
        return {f: self.status[composition_key(f)] for f in formulas}

    def _local(self, groups: list[list[str]], jobs_dir: str) -> Iterator[list[Outcome]]:
        return (run_compositions(self.maker, group, jobs_dir) for group in groups)

    def _dask(self, groups: list[list[str]], jobs_dir: str, cluster) -> Iterator[list[Outcome]]:
        from distributed import Client, as_completed

        with cluster, Client(cluster) as client:
            futures = [
                client.submit(run_compositions, self.maker, group, jobs_dir, pure=False)
                for group in groups
            ]
            for future in as_completed(futures):
                yield future.result()

    def _record(self, outcome: Outcome) -> None:
        if outcome.status == "done":
            add_contents(self.store, outcome.docs, outcome.data)
        for formula in outcome.formulas:
            self.status[composition_key(formula)] = {
                "formula": formula,
                "status": outcome.status,
                "reason": outcome.reason,
                "temperatures_K": outcome.temperatures_K.get(composition_key(formula), []),
            }
        write_text_atomic(self.status_path, json.dumps(self.status, indent=1))
