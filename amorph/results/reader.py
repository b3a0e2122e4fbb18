"""The one reader of the database: compositions and their stages from any jobflow JobStore.

Results are found by the class of their documents (:mod:`amorph.results.schemas`), not by job names
or folders, so a store filled by ``amorph run``, a campaign, jobflow-remote or FireWorks reads the
same. The newest :class:`~amorph.results.schemas.CompositionDoc` of each formula and engine is the
database entry; its stages are the :class:`~amorph.results.schemas.StageDoc` of the jobs it names,
each with the newest :class:`~amorph.results.schemas.AuditDoc` that audits it, if any.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from amorph.errors import EmptyStoreError, InputError, StoreError
from amorph.results.outputs import Outputs
from amorph.results.schemas import SCHEMA_VERSION, AuditDoc, CompositionDoc, StageDoc, TuningDoc
from amorph.results.sqlite_store import no_results
from amorph.results.store import open_store

if TYPE_CHECKING:
    from jobflow import JobStore
    from pymatgen.core import Structure

    from amorph.trajectory import Trajectory

SCHEMA_MODULE = "amorph.results.schemas"


@dataclass
class StageEntry:
    """One composition at one temperature, as stored; ``arrhenius`` comes from its composition."""

    doc: StageDoc
    uuid: str
    database: Database = field(repr=False)
    arrhenius: dict[str, Any] = field(default_factory=dict)
    audit: AuditDoc | None = None

    @property
    def source(self) -> str:
        """A label for messages: ``<formula> <T> K (<engine>)``."""
        return f"{self.doc.formula} {self.doc.temperature_K:.0f} K ({self.doc.engine})"

    @property
    def summary(self) -> dict[str, Any]:
        """The document as JSON-ready data, with the composition's Arrhenius fits and its DFT
        audit."""
        audit = None if self.audit is None else self.audit.model_dump(mode="json")
        return {**self.doc.model_dump(mode="json"), "arrhenius": self.arrhenius, "audit": audit}

    def structure(self) -> Structure:
        """The last production frame."""
        return self.doc.structure

    def trajectory(self) -> Trajectory:
        """The production trajectory, from the store's data store or from its file."""
        return self.database.trajectory(self.doc)

    @property
    def has_trajectory(self) -> bool:
        """Whether :meth:`trajectory` can find the production trajectory."""
        ref = self.doc.trajectory
        return ref.in_data_store or (ref.path is not None and Path(ref.path).is_file())


@dataclass
class CompositionEntry:
    """A composition's newest result with one engine: its document and stages, hottest first."""

    doc: CompositionDoc
    uuid: str
    completed_at: str
    stages: list[StageEntry]

    @property
    def formula(self) -> str:
        """The composition's formula, from its document."""
        return self.doc.formula


class Database:
    """Read-only access to the results in a JobStore (connected on first use)."""

    def __init__(self, store: JobStore, description: str = "the store"):
        self.store = store
        self.description = description
        self._connected = False

    @classmethod
    def open(cls, outputs: Outputs) -> Database:
        """The store of ``outputs`` (its store file, else its embedded store), opened read-only."""
        return cls(open_store(outputs.store, outputs.root, read_only=True), outputs.description)

    def _query(self, criteria: dict[str, Any]) -> list[dict[str, Any]]:
        if not self._connected:
            self.store.connect()
            self._connected = True
        properties = ["uuid", "index", "output", "completed_at"]
        return list(self.store.query(criteria, properties=properties))

    def compositions(
        self, formula: str | None = None, engine: str | None = None
    ) -> list[CompositionEntry]:
        """The newest result of every composition and engine (of ``formula``/``engine`` only, if
        given), sorted by formula then engine.

        Raises ``EmptyStoreError`` when the store holds no results at all.
        """
        criteria = {"output.@module": SCHEMA_MODULE, "output.@class": "CompositionDoc"}
        newest: dict[tuple[str, str], dict[str, Any]] = {}
        for raw in self._query(criteria):
            doc = _validate(CompositionDoc, raw)
            key = (doc.formula, doc.engine)
            if key not in newest or str(raw.get("completed_at")) > newest[key]["completed_at"]:
                newest[key] = {
                    "doc": doc,
                    "uuid": raw["uuid"],
                    "completed_at": str(raw.get("completed_at")),
                }
        if not newest:
            raise EmptyStoreError(no_results(self.description))
        wanted = None if formula is None else _reduced(formula)
        chosen = [
            newest[key]
            for key in sorted(newest)
            if (wanted is None or key[0] == wanted) and (engine is None or key[1] == engine)
        ]
        if not chosen:
            have = ", ".join(f"{f} ({e})" for f, e in sorted(newest))
            what = " ".join(x for x in (wanted, engine and f"with engine {engine}") if x)
            raise InputError(f"no results for {what} in {self.description} (it has: {have})")
        uuids = [uuid for c in chosen for uuid in c["doc"].stage_uuids]
        stages, audits = self._stages(uuids), self._audits(uuids)
        return [
            CompositionEntry(
                c["doc"],
                c["uuid"],
                c["completed_at"],
                [
                    StageEntry(
                        stages[u],
                        u,
                        self,
                        c["doc"].model_dump(mode="json")["arrhenius"],
                        audits.get(u),
                    )
                    for u in c["doc"].stage_uuids
                    if u in stages
                ],
            )
            for c in chosen
        ]

    def stages(self, formula: str | None = None, engine: str | None = None) -> list[StageEntry]:
        """Every stage of :meth:`compositions`, composition by composition, hottest first."""
        return [s for c in self.compositions(formula, engine) for s in c.stages]

    def _stages(self, uuids: list[str]) -> dict[str, StageDoc]:
        """The newest output of each stage job, by uuid."""
        found: dict[str, tuple[int, StageDoc]] = {}
        for raw in self._query({"uuid": {"$in": uuids}}):
            if raw["index"] >= found.get(raw["uuid"], (-1, None))[0]:
                found[raw["uuid"]] = (raw["index"], _validate(StageDoc, raw))
        return {uuid: doc for uuid, (_, doc) in found.items()}

    def _audits(self, uuids: list[str]) -> dict[str, AuditDoc]:
        """The newest audit of each stage, by the uuid of the stage's job."""
        criteria = {
            "output.@module": SCHEMA_MODULE,
            "output.@class": "AuditDoc",
            "output.stage_uuid": {"$in": uuids},
        }
        newest: dict[str, tuple[str, AuditDoc]] = {}
        for raw in self._query(criteria):
            audit, when = _validate(AuditDoc, raw), str(raw.get("completed_at"))
            if audit.stage_uuid not in newest or when > newest[audit.stage_uuid][0]:
                newest[audit.stage_uuid] = (when, audit)
        return {uuid: audit for uuid, (_, audit) in newest.items()}

    def tuning(self, formula: str) -> TuningDoc | None:
        """The newest audit/tune loop of ``formula`` (``--tune-with``), None if it had none."""
        criteria = {
            "output.@module": SCHEMA_MODULE,
            "output.@class": "TuningDoc",
            "output.formula": _reduced(formula),
        }
        found = sorted(self._query(criteria), key=lambda raw: str(raw.get("completed_at")))
        return _validate(TuningDoc, found[-1]) if found else None

    def trajectory(self, doc: StageDoc) -> Trajectory:
        """The production trajectory of a stage: from the data store where it went there, else the
        file the engine wrote."""
        from amorph.trajectory import Trajectory

        ref = doc.trajectory
        if ref.in_data_store and ref.job_uuid:
            from monty.json import MontyDecoder

            output = self.store.get_output(ref.job_uuid, load=True)
            return MontyDecoder().process_decoded(output[ref.index]).trajectory
        if ref.path is None or not Path(ref.path).is_file():
            raise StoreError(
                f"the trajectory of {doc.formula} at {doc.temperature_K:.0f} K is neither in the "
                f"store's data store nor at {ref.path} (run on another machine? store trajectories "
                "with --trajectory-in-store)"
            )
        return Trajectory.load(ref.path)


def _validate(model: type[StageDoc | CompositionDoc | AuditDoc | TuningDoc], raw: dict[str, Any]):
    """The document in ``raw["output"]``, checked against this amorph's schema version."""
    output = raw["output"]
    version = str(output.get("schema_version"))
    if version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        raise StoreError(
            f"job {raw['uuid']} holds a {output.get('@class')} of schema version {version}; this "
            f"amorph reads version {SCHEMA_VERSION.split('.')[0]}.x: use the amorph version that "
            "wrote it"
        )
    try:
        return model.model_validate({k: v for k, v in output.items() if not k.startswith("@")})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise StoreError(
            f"job {raw['uuid']} holds an invalid {model.__name__}: {where}: {first['msg']}"
        ) from None


def _reduced(formula: str) -> str:
    from amorph.structure.composition import parse_composition

    return parse_composition(formula).reduced_formula
