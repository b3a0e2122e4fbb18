"""The second opinion: a second potential's single points on frames of a production run.

Lennard-Jones argon is asked about itself (no disagreement), and about argon whose energy has an
extra -ΔP V (the same forces, a virial pressure higher by exactly ΔP on every frame).
"""

from __future__ import annotations

import pytest
from builders import memory_store

from amorph.flows.presets import protocol_maker
from amorph.flows.second_opinion import second_engine
from amorph.managers.local import run_flow
from amorph.md.engine import EngineSpec
from amorph.results.outputs import Outputs
from amorph.results.reader import Database

ARGON = EngineSpec("ase", "lj_calculators:argon")


def melt(tmp_path, second) -> StageDoc:  # noqa: F821
    maker = protocol_maker(
        "demo",
        engine=ARGON,
        temperatures=[100.0],
        min_distance=3.0,
        eos_ps=1.0,
        check_ps=1.0,
        production_ps=1.0,
        run_dir=str(tmp_path / "runs"),
        second_opinion=second,
    )
    store = memory_store()
    run_flow(maker.make("Ar"), store, Outputs(tmp_path))
    (stage,) = Database(store).stages()
    return stage.doc


def test_a_potential_agrees_with_itself(tmp_path, lj_on_path):
    doc = melt(tmp_path, ARGON)
    opinion = doc.second_opinion
    assert opinion.n_frames == 12 and opinion.engine == "lj_calculators:argon"
    assert opinion.force_rms_difference_eV_A == 0 and opinion.force_rms_eV_A > 0
    assert opinion.pressure_GPa == pytest.approx(opinion.first_pressure_GPa, abs=1e-12)
    assert opinion.volume_shift == pytest.approx(0, abs=1e-9)
    assert doc.surrogate_disagreement is False


@pytest.mark.parametrize("relative_shift", [0.02, 0.08])
def test_a_pressure_offset_gives_its_volume_shift_and_the_flag(
    tmp_path, lj_on_path, relative_shift
):
    first = melt(tmp_path / "first", "none")
    b0 = first.eos.fit.b0_GPa
    assert b0 > 0
    offset = relative_shift * b0  # the ΔP that implies this shift: ΔV/V = ΔP / B0
    higher = EngineSpec("ase", "lj_calculators:argon", options={"pressure_offset_GPa": offset})
    doc = melt(tmp_path / "again", higher)  # the same run (same seeds), asked again
    opinion = doc.second_opinion
    assert opinion.pressure_GPa - opinion.first_pressure_GPa == pytest.approx(offset, rel=1e-6)
    assert opinion.pressure_sem_GPa < 1e-9 and opinion.force_rms_difference_eV_A < 1e-9
    assert opinion.volume_shift == pytest.approx(relative_shift, rel=1e-6)
    assert doc.surrogate_disagreement is (relative_shift > 0.05)


def test_automatic_choice_needs_no_model_and_skips_custom_engines():
    assert second_engine("auto", EngineSpec("chgnet")) == EngineSpec("sevennet")
    assert second_engine("auto", EngineSpec("sevennet", device="cuda")) == EngineSpec(
        "chgnet", device="cuda"
    )
    assert second_engine("auto", ARGON) is None
    assert second_engine("none", EngineSpec("chgnet")) is None
    assert second_engine("m3gnet", EngineSpec("chgnet")) == EngineSpec("m3gnet")
