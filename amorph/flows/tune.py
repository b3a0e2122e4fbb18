"""The audit/tune loop (``--tune-with``): run, audit every stage against DFT, tune CHGNet on the
audits' frames, and run again with the tuned model while an audit disagrees.

Each round is the composition's melt-quench flow with its audits (every DFT frame its own job, so
a cluster runs them in parallel). A ``tune`` job follows it: it gathers the round's DFT frames with
the earlier rounds' and either stops, its output the composition's
:class:`~amorph.results.schemas.TuningDoc`, or tunes CHGNet from the stock model on all of them
(one job) and replaces itself by the next round and that round's ``tune`` job. Each round's
documents and audits stay in the store, each model in ``models_dir``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from jobflow import Flow, Response, job
from monty.json import MSONable

from amorph.errors import InputError, check_range
from amorph.md.engine import MDResult
from amorph.potentials.tuning import LabelledFrame, TuneSettings
from amorph.results.schemas import AuditDoc, CompositionDoc, TuningDoc, TuningRoundDoc

if TYPE_CHECKING:
    from amorph.flows.melt_quench import MeltQuenchMaker

ROUNDS = (1, 20)


@dataclass
class TuneLoop(MSONable):
    """How a :class:`~amorph.flows.melt_quench.MeltQuenchMaker` tunes its engine to its audits.

    Parameters
    ----------
    settings
        The fine-tuning's hyper-parameters.
    rounds
        Most tunings: the loop stops earlier once no stage's audit disagrees with DFT.
    models_dir
        Absolute folder the tuned models go to, on a file system every node sees (None: each tune
        job's own folder).
    """

    settings: TuneSettings = field(default_factory=TuneSettings)
    rounds: int = 2
    models_dir: str | None = None

    def validate(self, maker: MeltQuenchMaker) -> None:
        """Raise ``InputError`` unless ``maker`` can run this loop: CHGNet, audited stages."""
        self.settings.validate()
        check_range("tune rounds", self.rounds, *ROUNDS)
        if maker.engine.kind != "chgnet" or maker.stage.audit is None:
            raise InputError(
                "the audit/tune loop (--tune-with) tunes CHGNet (--engine chgnet) on DFT audits "
                f"of its stages; this protocol runs {maker.engine.label}"
                + ("" if maker.stage.audit else " without audits")
            )


@job
def tune_round(
    maker: MeltQuenchMaker,
    formula: str,
    round_: int,
    composition: CompositionDoc,
    composition_uuid: str,
    audits: list[AuditDoc],
    productions: list[MDResult],
    earlier: list[LabelledFrame],
    history: list[TuningRoundDoc],
) -> Response:
    """After round ``round_`` of ``formula`` (its document, the job that wrote it, each stage's
    audit and production): stop, or tune on ``earlier`` and this round's DFT frames and replace
    this job by the next round."""
    from amorph.potentials.tuning import read_provenance, tune_chgnet
    from amorph.results.dft_frames import audit_frames

    audits = [AuditDoc.model_validate(a) for a in audits]
    composition = CompositionDoc.model_validate(composition)
    model = composition.engine_model
    this = TuningRoundDoc(
        round=round_,
        engine_model=model,
        model_sha256=read_provenance(Path(model), "chgnet")["sha256"] if model else None,
        composition_uuid=composition_uuid,
        temperatures_K=[a.temperature_K for a in audits],
        pressure_differences_GPa=[a.pressure_difference_GPa for a in audits],
        pressure_difference_sems_GPa=[a.pressure_difference_sem_GPa for a in audits],
        disagreement=any(a.disagreement for a in audits),
    )
    history = [*history, this]
    if not this.disagreement or round_ >= maker.tune.rounds:
        return Response(
            output=TuningDoc(
                formula=formula,
                engine=composition.engine,
                dft_engine=audits[0].dft_engine,
                rounds=history,
                frames=len(earlier),
                stopped="round limit" if this.disagreement else "agreement",
            )
        )
    frames = earlier + [
        frame
        for audit, production in zip(audits, productions, strict=True)
        for frame in audit_frames(audit, production.load_trajectory())
    ]
    folder = Path(maker.tune.models_dir or Path.cwd())
    folder.mkdir(parents=True, exist_ok=True)
    name = f"chgnet-{formula}-round{round_ + 1}-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    tune_chgnet(frames, maker.tune.settings, folder / name)
    tuned = maker.with_engine(dataclasses.replace(maker.engine, model=str(folder / name)))
    jobs, rounds = tuned.round_jobs([formula])
    next_tune = tuned.tune_job(formula, round_ + 1, *rounds[formula], frames, history)
    return Response(replace=Flow([*jobs, next_tune], output=next_tune.output))
