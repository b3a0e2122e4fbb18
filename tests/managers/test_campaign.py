"""Campaigns over several compositions, the database commands, and flows for workflow managers."""

import json

import pytest
from builders import REPOSITORY, campaign, exported_rows, lj_options

from amorph.cli import main

LJ = lj_options()


def store_digest(outputs):
    """Bytes of every file of the embedded store."""
    return {p.name: p.read_bytes() for p in sorted((outputs / "store").iterdir()) if p.is_file()}


def test_campaign_records_failures_skips_finished_work_and_feeds_the_database(
    tmp_path, capsys, lj_on_path
):
    formulas = "Ar   # liquid argon\n\nXx2O\nKr\n"
    code, outputs = campaign(tmp_path, formulas, *LJ)
    assert code == 1  # one composition failed, the others ran
    status = json.loads((outputs / "campaign.json").read_text())
    assert status["Ar"]["status"] == status["Kr"]["status"] == "done"
    assert status["Ar"]["temperatures_K"] == [100.0, 80.0]
    assert (
        status["Xx2O"]["status"] == "failed" and "unknown element 'Xx'" in status["Xx2O"]["reason"]
    )
    out = capsys.readouterr().out
    assert "2 of 3 compositions done" in out and "failed Xx2O: unknown element 'Xx'" in out

    before = store_digest(outputs)
    assert campaign(tmp_path, formulas, *LJ)[0] == 1  # rerun: finished compositions are not rerun
    assert store_digest(outputs) == before

    rows = exported_rows(outputs, capsys)
    runs = sorted((r["formula"], r["temperature_K"]) for r in rows)
    assert runs == [(f, t) for f in ("Ar", "Kr") for t in (80.0, 100.0)]
    assert all(r["D_Ar_cm2_s"] > 0 for r in rows if r["formula"] == "Ar")
    assert main(["db", "show", "Kr", "--outputs", str(outputs)]) == 0
    assert "80" in capsys.readouterr().out
    assert main(["db", "show", "Ne", "--outputs", str(outputs)]) == 1
    assert "no results for Ne" in capsys.readouterr().err


def test_campaign_on_a_local_dask_cluster(tmp_path, capsys, lj_on_path):
    pytest.importorskip("distributed")
    code, outputs = campaign(tmp_path, "Ar\nKr\n", *LJ, "--executor", "dask", "--workers", "2")
    assert code == 0
    capsys.readouterr()
    assert main(["db", "export", "--format", "csv", "--outputs", str(outputs)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("formula,engine,temperature_K") and len(lines) == 5


def test_missing_campaign_file_is_one_error_line(tmp_path, capsys):
    assert main(["campaign", str(tmp_path / "absent.txt"), "--outputs", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot read campaign file" in err[0]
    assert not (tmp_path / "o").exists()


def test_campaign_files_are_read_by_composition(tmp_path):
    from amorph.managers.campaign import read_compositions

    compositions = tmp_path / "compositions.txt"
    compositions.write_text("Li2O\nOLi2  # the same\nKr\nLi4O2\nXx2O\nLi2O\n")
    assert read_compositions(compositions) == {
        "Li2O": ["Li2O", "OLi2", "Li4O2"],
        "Kr": ["Kr"],
        "Xx2O": ["Xx2O"],
    }


@pytest.mark.parametrize(
    ("content", "options", "message"),
    [
        (b"Li2O\n\xff\xfeKr\n", [], "is not UTF-8 text (byte 5): one formula per line"),
        (b"Li2O\n", ["--seed", "-1"], "seed must lie between 0 and 4294967295, got -1"),
        (b"Li2O\n", ["--temperatures", "nan"], "temperature must lie between 1 and 20000 K"),
        (b"Li2O\n", ["--atoms", "100000"], "need about 2000 GB of memory"),
    ],
)
def test_bad_campaign_input_is_one_error_line_and_writes_nothing(
    tmp_path, capsys, content, options, message
):
    compositions = tmp_path / "compositions.txt"
    compositions.write_bytes(content)
    outputs = tmp_path / "o"
    assert main(["campaign", str(compositions), *options, "--outputs", str(outputs)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("amorph: error:") and message in err[0], err
    assert not outputs.exists()


def test_building_a_flow_loads_no_model(monkeypatch):
    from amorph.flows import demo_maker
    from amorph.md.engine import EngineSpec

    def refuse(self):
        raise AssertionError(f"{self.kind} loaded while building a flow")

    monkeypatch.setattr(EngineSpec, "load", refuse)
    flow = demo_maker().with_engine(EngineSpec("vasp")).make_batch(["Li2O", "LiCuSi2"])
    assert len(flow.jobs) == 8  # per composition: a cell, a melt, a quench stage and a collect


def test_flows_serialise_and_convert_to_fireworks():
    from jobflow import Flow
    from monty.json import MontyDecoder, MontyEncoder

    from amorph.flows import demo_maker

    flow = demo_maker().make("Li2O")
    again = json.loads(json.dumps(flow, cls=MontyEncoder), cls=MontyDecoder)
    assert isinstance(again, Flow) and again.job_uuids == flow.job_uuids
    eos = next(job for job, _ in again.iterflow() if job.name == "eos Li2O 5000 K")
    assert eos.function_args[0].duration_ps == pytest.approx(0.3)  # the maker travels with its job

    pytest.importorskip("fireworks")
    from jobflow.managers.fireworks import flow_to_workflow

    workflow = flow_to_workflow(flow)
    assert len(workflow.fws) == len(flow.job_uuids)


def test_example_mongodb_store_configuration_loads():
    from jobflow import JobStore

    store = JobStore.from_file(str(REPOSITORY / "inputs" / "mongodb_store.yaml"))
    assert type(store.docs_store).__name__ == "MongoStore"
    assert type(store.additional_stores["data"]).__name__ == "GridFSStore"
