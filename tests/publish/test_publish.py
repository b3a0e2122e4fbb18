"""``amorph publish``: the real mpcontribs-client over HTTP against the loopback server of
``tests/mpcontribs_server.py``, on a small fake results tree (random-walk trajectories, no MD)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import logging
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

from amorph.analysis.synthetic import random_walk
from amorph.cli import main
from amorph.publish.contributions import ATTACHMENT_TARGET_BYTES, build_groups, identifier, quantity
from amorph.publish.rules import MAX_ATTACHMENT_BYTES, column_problem, data_problems
from amorph.results.outputs import Outputs
from amorph.results.reader import Database
from amorph.results.schemas import StageDoc
from amorph.results.store import open_store

pytest.importorskip(
    "mpcontribs.client", reason="mpcontribs-client (amorph[publish]) is not installed"
)
from mpcontribs_server import SPEC, RunningServer, ServerState, free_whitelisted_port
from results_factory import add_composition, stage_doc

KEY = "0123456789abcdef0123456789abcdef"  # the owner's API key on the test server
OWNER = "google:owner@example.com"
PROJECT = "amorph_test"
COMPOSITIONS = {  # formula -> atoms per species; S and Si exercise the client's column-prefix check
    "Li2S": {"Li": 8, "S": 4},
    "Li4SiO4": {"Li": 8, "Si": 2, "O": 8},
    "LiCl": {"Li": 6, "Cl": 6},
}
TEMPERATURES = (1000.0, 1500.0)
IDENTIFIERS = sorted(f"{f}-{t:.0f}K-chgnet" for f in COMPOSITIONS for t in TEMPERATURES)


def write_entry(
    root: Path,
    formula: str,
    counts: dict[str, int],
    temperature: float,
    *,
    n_frames: int = 120,
    reported: bool = False,
    species_names: dict[str, str] | None = None,
    engine: str = "chgnet",
) -> StageDoc:
    """One stage of ``formula`` as the pipeline stores it, around a random-walk trajectory file."""
    d_true = {s: (1e-5 if s == "Li" else 1e-6) * (temperature / 1000) ** 3 for s in counts}
    traj = random_walk(
        counts,
        d_true,
        n_frames,
        frame_interval_fs=10.0,
        seed=int(temperature) + len(counts),
        temperature_K=temperature,
    )
    path = root / "trajectories" / f"{formula}-{temperature:.0f}K-{engine}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    traj.save(path)
    names = species_names or {}
    diffusivity = {names.get(s, s): (d, d / 20) for s, d in d_true.items()} if reported else None
    structure = traj.structure(-1)
    return stage_doc(
        structure,
        temperature,
        trajectory=path,
        diffusivity=diffusivity,
        engine=engine,
        formula=formula,
    )


def store_results(root: Path, stages: list[StageDoc], arrhenius: dict | None = None) -> Path:
    """``stages`` in the embedded store under ``root/outputs``, one composition per formula and
    engine; return the outputs folder."""
    outputs = root / "outputs"
    store = open_store(None, outputs)
    groups: dict[tuple[str, str], list[StageDoc]] = {}
    for stage in stages:
        groups.setdefault((stage.formula, stage.engine), []).append(stage)
    for group in groups.values():
        add_composition(store, group, root / "jobs", arrhenius=arrhenius)
    return outputs


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("results")
    stages = [
        write_entry(root, formula, counts, temperature, reported=formula == "Li2S")
        for formula, counts in COMPOSITIONS.items()
        for temperature in TEMPERATURES
    ]
    return store_results(root, stages)


def read_results(outputs: Path):
    return Database.open(Outputs(outputs)).stages()


@pytest.fixture
def client_tmpdir(tmp_path, monkeypatch) -> Path:
    """A fresh temp dir for the client's spec cache, and its in-process caches emptied."""
    import mpcontribs.client as mpc

    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    # keyed by URL, so they would hold what an earlier test's server said
    for cached in (mpc._load, mpc._raw_specs, mpc._version):
        cached.cache_clear()
    mpc._expand_params.cache.clear()
    return folder


@pytest.fixture
def server(client_tmpdir, monkeypatch):
    if not SPEC.is_file():
        pytest.skip(f"the MPContribs API spec {SPEC} is absent")
    state = ServerState(users={KEY: OWNER})
    # the real server always lists some public projects, which the client needs to start
    state.add_project("sandbox", "google:someone@example.com", is_public=True)
    running = RunningServer(state)
    monkeypatch.setenv("MPCONTRIBS_API_KEY", KEY)
    yield running
    running.stop()


def amorph_publish(results: Path, *options: str) -> int:
    return main(["publish", "--project", PROJECT, "--outputs", str(results), *options])


def publish(host: str, results: Path, *options: str) -> int:
    """A real publish to ``host`` that may create the project."""
    creating = ("--authors", "A. Author", "--url", "https://example.org/paper")
    return amorph_publish(results, "--host", host, *creating, *options)


def posts(state: ServerState) -> int:
    return state.requests.count("POST /contributions/")


def tree_digest(root: Path) -> dict[str, tuple[str, int]]:
    return {
        str(p): (hashlib.md5(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def assert_key_absent(*texts: str, folders: tuple[Path, ...] = ()) -> None:
    for text in texts:
        assert KEY not in text
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file():
                assert KEY.encode() not in path.read_bytes(), path


# ---------------------------------------------------------------- building and validating offline


def test_identifier_is_deterministic_and_server_safe():
    summary = {"formula": "Li6P2O8", "temperature_K": 1499.6, "engine": "my_pkg.calc:build"}
    assert identifier(summary) == "Li3PO4-1500K-my-pkg.calc-build"


def test_dry_run_of_valid_results_uploads_nothing(results, capsys, monkeypatch):
    monkeypatch.delenv("MPCONTRIBS_API_KEY", raising=False)
    rc = amorph_publish(results, "--dry-run", "--host", f"localhost:{free_whitelisted_port()}")
    out = capsys.readouterr().out
    assert rc == 0  # with no key and nothing listening at the host
    assert "6 valid, 0 invalid; nothing uploaded" in out


def test_contributions_carry_units_tables_structure_and_arrhenius(results):
    groups = list(build_groups(read_results(results)))
    contributions = {c.identifier: c.contribution for group in groups for c in group}
    assert sorted(contributions) == IDENTIFIERS
    li2s = contributions["Li2S-1000K-chgnet"]
    assert li2s.data["T"] == "1000 K"
    assert li2s.data["D"]["Li"] == "1e-05±5e-07 cm²/s"  # the pipeline's value from summary.json
    # one Arrhenius fit per composition, carried by each of its temperatures
    assert li2s.data["Ea"] == contributions["Li2S-1500K-chgnet"].data["Ea"]
    expected_ea = math.log(1.5**3) / (1 / 1000 - 1 / 1500) * 8.617333262e-5
    assert float(li2s.data["Ea"]["Li"].split("±")[0]) == pytest.approx(expected_ea, rel=1e-5)
    fitted = contributions["LiCl-1500K-chgnet"].data["D"]["Li"]  # fitted from the trajectory
    assert float(fitted.split("±")[0]) == pytest.approx(3.375e-5, rel=0.5)
    rdf, msd = contributions["Li4SiO4-1000K-chgnet"].tables
    assert set(rdf.columns) == {"Li-Li", "Li-Si", "Li-O", "Si-Si", "Si-O", "O-O"}
    assert list(msd.columns) == ["Li", "Si", "O"] and len(msd) <= 200
    assert len(li2s.structures[0]) == 12


def test_attachment_is_sampled_to_fit_the_limit(tmp_path):
    stage = write_entry(tmp_path, "Li3PO4", {"Li": 150, "P": 50, "O": 100}, 1200.0, n_frames=1500)
    outputs = store_results(tmp_path, [stage])
    (group,) = build_groups(read_results(outputs))
    (candidate,) = group
    assert candidate.valid, candidate.problems
    content = base64.b64decode(candidate.contribution.attachments[0]["content"])
    assert ATTACHMENT_TARGET_BYTES * 0.6 < len(content) <= ATTACHMENT_TARGET_BYTES  # not starved
    sample = json.loads(gzip.decompress(content))
    traj = read_results(outputs)[0].trajectory()
    assert sample["stride"] > 1 and len(sample["time_fs"]) == math.ceil(1500 / sample["stride"])
    np.testing.assert_allclose(sample["positions"], traj.positions[:: sample["stride"]], atol=5e-4)


def test_dry_run_reports_invalid_key_and_oversize_attachment(tmp_path, capsys):
    # a pipeline that names a species with its charge, at one of two temperatures
    licl = COMPOSITIONS["LiCl"]
    stages = [
        write_entry(tmp_path, "LiCl", licl, 1000.0, reported=True, species_names={"Li": "Li+"}),
        write_entry(tmp_path, "LiCl", licl, 1500.0),
        write_entry(tmp_path, "Li3PO4", {"Li": 150, "P": 50, "O": 100}, 1200.0, n_frames=1500),
        write_entry(tmp_path, "Li2S", COMPOSITIONS["Li2S"], 1000.0),
    ]
    outputs = store_results(tmp_path, stages)
    rc = amorph_publish(outputs, "--dry-run", "--attachment-frames", "1500")
    lines = capsys.readouterr().out.splitlines()
    invalid = {line.split()[1]: line for line in lines if line.startswith("invalid ")}
    assert rc == 1
    assert set(invalid) == {"LiCl-1000K-chgnet", "LiCl-1500K-chgnet", "Li3PO4-1200K-chgnet"}
    bad_key = "data key 'D.Li+' has characters other than ASCII letters and digits"
    assert bad_key in invalid["LiCl-1000K-chgnet"]
    withheld = "withheld: LiCl-1000K-chgnet of the same composition is invalid"
    assert withheld in invalid["LiCl-1500K-chgnet"]
    oversize = invalid["Li3PO4-1200K-chgnet"]
    assert "attachment trajectory.json.gz is" in oversize
    assert f"over the {MAX_ATTACHMENT_BYTES / 2**20:.1f} MiB limit" in oversize
    assert lines[-1] == "1 valid, 3 invalid; nothing uploaded"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"D": {"Li_1": "1e-5 cm²/s"}}, "characters other than ASCII letters and digits"),
        ({"a": {"b": {"c": {"d": {"e": 1}}}}}, "nested more than 4 levels deep"),
        ({"T": "1000 blorbs"}, "is not understood"),
        ({"T": "nan K"}, "not a finite number"),
        ({"species": ["Li", "O"]}, "values are strings or numbers"),
    ],
)
def test_offline_rules_agree_with_the_server(server, data, reason):
    from mpcontribs.client import Client, MPContribsClientError

    assert any(reason in p for p in data_problems(data))
    client = Client(apikey=KEY, host=server.host)
    server.state.add_project(PROJECT, OWNER)
    refusal = None
    try:
        client.submit_contributions(
            [{"project": PROJECT, "identifier": "x-1000K-chgnet", "data": data}],
            skip_dupe_check=True,
        )
    except MPContribsClientError as exc:  # the client itself refuses some payloads before sending
        refusal = str(exc)
    assert refusal is None or "not supported" in refusal
    assert server.state.contributions == {}


def test_column_limit_counts_every_data_path_and_the_components():
    def species(n):
        return [{"D": {f"X{i}": "1 cm²/s"}, "T": "1 K"} for i in range(n)]

    assert column_problem(species(156)) is None  # 156 + T + 3 components = 160
    assert "would have 161 columns (158 data columns" in column_problem(species(157))


# ---------------------------------------------------------------- publishing to the loopback server


def test_publish_is_complete_verifiable_and_idempotent(
    server, results, client_tmpdir, capfd, caplog
):
    from mpcontribs.client import Client

    caplog.set_level(logging.DEBUG)
    state = server.state
    assert publish(server.host, results, "--batch-size", "2") == 0
    first = capfd.readouterr()
    assert (
        f"project {PROJECT}: 6 contributions uploaded, 0 already there; 6 on the server"
        in first.out
    )
    assert state.projects[PROJECT]["owner"] == OWNER and posts(state) == 3
    stored = {c["identifier"]: c for c in state.contributions.values()}
    assert sorted(stored) == IDENTIFIERS
    for contribution in stored.values():  # declared units survive every batch: nothing rescaled
        assert contribution["data"]["T"]["unit"] == "kelvin"
        assert {d["unit"] for d in contribution["data"]["D"].values()} == {
            "centimeter ** 2 / second"
        }
    assert stored["Li2S-1000K-chgnet"]["data"]["D"]["Li"]["value"] == pytest.approx(1e-5)
    assert stored["Li2S-1000K-chgnet"]["formula"] == "Li2S"

    client = Client(apikey=KEY, host=server.host)  # read back through the client's own API
    ids = client.get_all_ids({"project": PROJECT}, include=["structures", "tables"])[PROJECT]
    assert len(ids["structures"]["ids"]) == 6 and len(ids["tables"]["ids"]) == 12
    cid = stored["Li4SiO4-1500K-chgnet"]["id"]
    record = client.get_contribution(cid)
    structure = client.get_structure(record["structures"][0]["id"])
    assert structure.composition.reduced_formula == "Li4SiO4" and len(structure) == 18
    table = client.get_table(next(t["id"] for t in record["tables"] if t["name"] == "RDF"))
    assert "Si-O" in table.columns and len(table) == 160
    attachment = client.get_attachment(record["attachments"][0]["id"])
    sample = json.loads(attachment.unpack())
    entry = next(
        e
        for e in read_results(results)
        if (e.doc.formula, e.doc.temperature_K) == ("Li4SiO4", 1500.0)
    )
    traj = entry.trajectory()
    np.testing.assert_allclose(sample["positions"][-1], traj.positions[-1], atol=5e-4)

    assert publish(server.host, results) == 0  # a re-run publishes nothing twice
    second = capfd.readouterr()
    assert "0 contributions uploaded, 6 already there; 6 on the server" in second.out
    assert posts(state) == 3 and len(state.contributions) == 6

    licl = ["LiCl-1000K-chgnet", "LiCl-1500K-chgnet"]
    client.delete_contributions({"project": PROJECT, "identifier__in": licl})
    assert len(state.contributions) == 4
    assert publish(server.host, results) == 0  # only what is missing goes up again
    third = capfd.readouterr()
    assert "2 contributions uploaded, 4 already there; 6 on the server" in third.out
    assert sorted(c["identifier"] for c in state.contributions.values()) == IDENTIFIERS
    outputs = [text for captured in (first, second, third) for text in captured]
    assert_key_absent(caplog.text, *outputs, folders=(results, client_tmpdir))


def test_rejected_payload_fails_loudly(server, results, client_tmpdir, capfd, caplog):
    caplog.set_level(logging.DEBUG)
    server.state.max_body_bytes = 20_000  # smaller than one batch: the server refuses every POST
    before = tree_digest(results)
    assert publish(server.host, results) == 1
    err = capfd.readouterr().err
    expected = (
        f"amorph: error: the server did not store 6 of 6 contributions of a batch: "
        f"{', '.join(IDENTIFIERS)}; the server said: request body of"
    )
    assert expected in err
    assert server.state.contributions == {} and posts(server.state) == 1
    assert tree_digest(results) == before
    assert_key_absent(caplog.text, err, folders=(results, client_tmpdir))


def test_invalid_results_are_withheld_and_reported(server, tmp_path, capfd):
    stages = [write_entry(tmp_path, "LiCl", COMPOSITIONS["LiCl"], t) for t in TEMPERATURES]
    broken = write_entry(tmp_path, "Li2S", COMPOSITIONS["Li2S"], 1000.0)
    Path(broken.trajectory.path).write_bytes(b"not a trajectory")
    outputs = store_results(tmp_path, [*stages, broken])
    assert publish(server.host, outputs) == 1
    out, err = capfd.readouterr()
    assert "2 contributions uploaded, 0 already there; 2 on the server" in out
    assert "invalid Li2S-1000K-chgnet (Li2S 1000 K (chgnet)): cannot build: " in out
    assert "amorph: error: 1 invalid results were not published (listed above)" in err
    stored = sorted(c["identifier"] for c in server.state.contributions.values())
    assert stored == ["LiCl-1000K-chgnet", "LiCl-1500K-chgnet"]


def test_server_down_gives_a_clear_error(results, client_tmpdir, capfd, monkeypatch):
    monkeypatch.setenv("MPCONTRIBS_API_KEY", KEY)
    port = free_whitelisted_port()
    before = tree_digest(results)
    assert publish(f"localhost:{port}", results) == 1
    err = capfd.readouterr().err
    assert f"amorph: error: cannot reach the MPContribs server at http://localhost:{port}" in err
    assert tree_digest(results) == before
    assert_key_absent(err)


def test_invalid_api_keys_are_refused_without_being_shown(server, results, capfd, monkeypatch):
    wrong = "f" * 32
    monkeypatch.setenv("MPCONTRIBS_API_KEY", wrong)
    assert publish(server.host, results) == 1
    err = capfd.readouterr().err
    assert "refused the API key (HTTP 401)" in err and wrong not in err
    assert PROJECT not in server.state.projects

    assert publish(server.host, results, "--api-key", "short-secret") == 1
    err = capfd.readouterr().err
    assert "an MPContribs API key has 32 characters; the one given has 12" in err
    assert "short-secret" not in err

    monkeypatch.delenv("MPCONTRIBS_API_KEY")
    assert publish(server.host, results) == 1
    assert "no API key: set MPCONTRIBS_API_KEY" in capfd.readouterr().err


def test_missing_project_needs_authors_and_url(server, results, capfd):
    assert amorph_publish(results, "--host", server.host) == 1
    err = capfd.readouterr().err
    assert f"project {PROJECT} does not exist; to create it, give --authors and --url" in err
    assert PROJECT not in server.state.projects and server.state.contributions == {}


# ---------------------------------------------------------------- the real server (opt-in)


@pytest.mark.skipif(
    os.environ.get("AMORPH_LIVE_MPCONTRIBS") != "1"
    or not os.environ.get("MPCONTRIBS_API_KEY")
    or not os.environ.get("AMORPH_LIVE_MPCONTRIBS_PROJECT"),
    reason="live test: set AMORPH_LIVE_MPCONTRIBS=1, MPCONTRIBS_API_KEY and "
    "AMORPH_LIVE_MPCONTRIBS_PROJECT (an existing project of yours)",
)
def test_live_publish_and_republish(tmp_path, capfd):
    from mpcontribs.client import Client

    project = os.environ["AMORPH_LIVE_MPCONTRIBS_PROJECT"]
    stages = [  # an engine name of its own keeps these apart from real data
        write_entry(tmp_path, "LiCl", COMPOSITIONS["LiCl"], t, engine="amorph-live-test")
        for t in TEMPERATURES
    ]
    args = ["publish", "--project", project, "--outputs", str(store_results(tmp_path, stages))]
    client = Client(apikey=os.environ["MPCONTRIBS_API_KEY"])
    live_ids = [f"LiCl-{t:.0f}K-amorph-live-test" for t in TEMPERATURES]
    try:
        assert main(args) == 0
        assert "2 contributions uploaded" in capfd.readouterr().out
        assert main(args) == 0
        assert "0 contributions uploaded, 2 already there" in capfd.readouterr().out
    finally:
        client.delete_contributions({"project": project, "identifier__in": live_ids})


def test_the_pipelines_arrhenius_fit_is_published_when_recorded(tmp_path):
    stages = [write_entry(tmp_path, "Li2S", COMPOSITIONS["Li2S"], t) for t in (1000.0, 1500.0)]
    fit = {"Ea_eV": 0.5, "Ea_sigma_eV": 0.01, "D0_cm2_s": 1e-3, "D0_sigma_cm2_s": 1e-4}
    outputs = store_results(tmp_path, stages, arrhenius={"Li": fit})
    contribution, _ = [
        c.contribution for group in build_groups(read_results(outputs)) for c in group
    ]
    assert contribution.data["Ea"]["Li"] == quantity(0.5, "eV", 0.01)
    assert contribution.data["D0"]["Li"] == quantity(1e-3, "cm²/s", 1e-4)
