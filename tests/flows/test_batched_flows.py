"""The pipeline on a batched engine: quench temperatures and a campaign's compositions share calls.

Lennard-Jones argon runs once through the ASE engine (one stage per temperature) and once through
the batched engine with the same potential in torch (``lj_calculators.TorchArgon``); the two must
agree.
"""

import json
from pathlib import Path

import pytest
from builders import campaign, exported_rows, lj_options, memory_store

from amorph.flows import RandomCellMaker, demo_maker
from amorph.managers.local import run_flow
from amorph.md.batched import BatchedEngine
from amorph.md.engine import EngineSpec
from amorph.results.outputs import Outputs
from amorph.results.reader import Database
from amorph.results.schemas import StageDoc

ASE_ARGON = EngineSpec("ase", "lj_calculators:argon")
TORCH_ARGON = EngineSpec("batched", "lj_calculators:TorchArgon")


@pytest.fixture
def engine_calls(monkeypatch):
    """Per batched-engine call: the (composition, temperature) of each task, from its folder."""
    calls = []
    run = BatchedEngine.run

    def recording(self, tasks):
        calls.append([(task.work_dir.parent.name, task.temperature) for task in tasks])
        return run(self, tasks)

    monkeypatch.setattr(BatchedEngine, "run", recording)
    return calls


def melt_quench(engine: EngineSpec, outputs: Path) -> list[StageDoc]:
    maker = demo_maker(
        melt_temperature=100.0,
        quench_temperatures=(80.0, 60.0),
        cell=RandomCellMaker(atoms=32, min_distance=3.0),
        run_dir=str(outputs / "runs"),
    ).with_engine(engine)
    store = memory_store()
    run_flow(maker.make("Ar"), store, Outputs(outputs))
    (entry,) = Database(store).compositions()
    return [stage.doc for stage in entry.stages]


def test_quench_temperatures_share_engine_calls_and_match_separate_stages(
    tmp_path, engine_calls, lj_on_path
):
    batched = melt_quench(TORCH_ARGON, tmp_path / "batched")
    melt = [call for call in engine_calls if {t for _, t in call} == {100.0}]
    quench = engine_calls[len(melt) :]
    assert len(melt[0]) == 3  # the three EOS volumes of the melt in one call
    assert all({t for _, t in call} <= {80.0, 60.0} for call in quench)
    assert (
        sorted(quench[0]) == [("Ar", 60.0)] * 3 + [("Ar", 80.0)] * 3
    )  # both temperatures' EOS volumes
    assert sorted(quench[-1]) == [("Ar", 60.0), ("Ar", 80.0)]  # both productions in the last call

    separate = melt_quench(ASE_ARGON, tmp_path / "separate")
    assert (
        [s.temperature_K for s in batched]
        == [s.temperature_K for s in separate]
        == [100.0, 80.0, 60.0]
    )
    for b, s in zip(batched, separate, strict=True):
        assert [p.volume_A3 for p in b.eos.points] == pytest.approx(
            [p.volume_A3 for p in s.eos.points], rel=1e-6
        )
        assert [p.pressure_GPa for p in b.eos.points] == pytest.approx(
            [p.pressure_GPa for p in s.eos.points], abs=1e-4
        )
        assert b.volume_A3 == pytest.approx(s.volume_A3, rel=1e-6)
        assert b.pressure_GPa == pytest.approx(s.pressure_GPa, abs=1e-4)
        assert b.diffusivity["Ar"].D_cm2_s == pytest.approx(s.diffusivity["Ar"].D_cm2_s, rel=1e-3)


def test_campaign_batches_compositions_and_isolates_a_failing_one(
    tmp_path, capsys, engine_calls, lj_on_path
):
    torch_argon = lj_options("batched", model="lj_calculators:TorchArgon")
    code, outputs = campaign(tmp_path, "Ar\nXx2O\nKr\nNe\n", *torch_argon, "--batch", "2")
    assert code == 1
    status = json.loads((outputs / "campaign.json").read_text())
    assert {f: s["status"] for f, s in status.items()} == {
        "Ar": "done",
        "Xx2O": "failed",
        "Kr": "done",
        "Ne": "done",
    }
    assert "unknown element 'Xx'" in status["Xx2O"]["reason"]
    assert "3 of 4 compositions done" in capsys.readouterr().out
    systems = [{formula for formula, _ in call} for call in engine_calls]
    assert {"Ar"} in systems  # the batch with Xx2O fell back to one composition at a time
    assert {"Kr", "Ne"} in systems  # the second batch: both compositions in one engine call
    assert not any("Xx2O" in s for s in systems)
    rows = exported_rows(outputs, capsys)
    runs = sorted((r["formula"], r["temperature_K"]) for r in rows)
    assert runs == [(f, t) for f in ("Ar", "Kr", "Ne") for t in (80.0, 100.0)]
