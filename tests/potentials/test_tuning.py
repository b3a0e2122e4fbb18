"""``amorph tune`` as a user runs it: CHGNet fine-tuned on DFT-labelled frames moves towards them,
the model directory it writes loads with ``--model`` and is recorded by hash, and bad input is one
line before any training."""

import json
from pathlib import Path

import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write
from builders import antifluorite
from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor

from amorph.constants import EV_A3_TO_GPA
from amorph.md.engine import EngineSpec

pytest.importorskip("chgnet")

SHIFT_GPA = 2.0  # the "DFT" pressure: CHGNet's + 2 GPa, its energies and forces otherwise
SETTINGS = json.dumps({"code": "test", "xc": "PBE"})


def frames(count: int, seed: int = 1) -> list[Structure]:
    """Rattled antifluorite Li2O cells (12 atoms) at three lattice constants."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        s = antifluorite(4.62 * (1 + 0.02 * (i % 3)), "O")
        shift = rng.normal(scale=0.25, size=(len(s), 3))
        moved = s.cart_coords + shift
        out.append(Structure(s.lattice, s.species, moved, coords_are_cartesian=True))
    return out


def write_frames(path: Path, structures, stress=True, settings=SETTINGS) -> None:
    """``structures`` labelled by stock CHGNet with its pressure raised by :data:`SHIFT_GPA`."""
    engine = EngineSpec("chgnet").load()
    images = []
    for s, point in zip(structures, engine.evaluate(structures), strict=True):
        atoms = AseAtomsAdaptor.get_atoms(s)
        results = {"energy": point.energy_eV - 50.0, "forces": point.forces}  # another zero
        if stress:
            results["stress"] = point.stress - SHIFT_GPA / EV_A3_TO_GPA * np.eye(3)
        atoms.calc = SinglePointCalculator(atoms, **results)
        atoms.info["dft_settings"] = settings
        images.append(atoms)
    write(path, images, format="extxyz")


def test_tuning_moves_the_pressure_to_the_dft_frames(tmp_path, amorph):
    write_frames(tmp_path / "dft.xyz", frames(8))
    provenance = json.loads(
        amorph(tmp_path, "tune", "--frames", "dft.xyz", "--epochs", "8", "--json").stdout
    )
    (folder,) = (tmp_path / "outputs" / "models").iterdir()
    base, tuned = (provenance["metrics_held_out"][k] for k in ("base", "tuned"))
    assert base["pressure_difference_GPa"] == pytest.approx(-SHIFT_GPA, abs=1e-3)
    assert abs(tuned["pressure_difference_GPa"]) < 0.5 * SHIFT_GPA
    assert len(provenance["held_out"]) == 2 and provenance["base_model"] == "0.3.0"
    assert provenance["frames"][0] == {"file": "dft.xyz", "index": 0}
    # frames it never saw: pressures moved towards the labels, the hash recorded by the engine
    unseen = frames(3, seed=5)
    stock = [p.virial_pressure_GPa for p in EngineSpec("chgnet").load().evaluate(unseen)]
    engine = EngineSpec("chgnet", model=str(folder)).load()
    moved = np.subtract([p.virial_pressure_GPa for p in engine.evaluate(unseen)], stock)
    assert np.all(moved > 0.4 * SHIFT_GPA), moved
    assert engine.describe(unseen[0]) == {
        "model_sha256": provenance["sha256"],
        "tuned_from": "0.3.0",
    }
    # anchored to the stock weights (L2-SP), the same tuning moves them less
    listed = amorph(
        tmp_path,
        "tune",
        "--frames",
        "dft.xyz",
        "--out",
        "again",
        "--epochs",
        "8",
        "--anchor",
        "1e4",
    )
    assert "tuned model:" in listed.stdout and (tmp_path / "again" / "tuned.json").is_file()
    anchored = EngineSpec("chgnet", model=str(tmp_path / "again")).load()
    held = np.subtract([p.virial_pressure_GPa for p in anchored.evaluate(unseen)], stock)
    assert np.all(np.abs(held) < 0.5 * moved), (held, moved)
    weights = folder / "model.pth.tar"
    weights.write_bytes(weights.read_bytes()[:-1] + b"x")  # not the weights it describes
    result = amorph(tmp_path, "tune", "--frames", "dft.xyz", "--model", str(folder), check=False)
    assert result.returncode == 1 and "not the weights tuned.json describes" in result.stderr


def test_bad_input_is_one_line_before_any_training(tmp_path, amorph, digest):
    structures = frames(5)
    write_frames(tmp_path / "few.xyz", structures[:3])
    write_frames(tmp_path / "nostress.xyz", structures, stress=False)
    write_frames(tmp_path / "a.xyz", structures[:3])
    write_frames(tmp_path / "b.xyz", structures[3:], settings=json.dumps({"code": "other"}))
    li_sv = {"code": "test", "xc": "PBE", "datasets": {"Li": "sv (3 e)", "O": "paw (6 e)"}}
    li_paw = {**li_sv, "datasets": {"Li": "paw (1 e)"}, "cutoff_eV": 500}  # cutoffs may differ
    write_frames(tmp_path / "sv.xyz", structures[:3], settings=json.dumps(li_sv))
    write_frames(tmp_path / "paw.xyz", structures[3:], settings=json.dumps(li_paw))
    write_frames(tmp_path / "ok.xyz", structures)
    (tmp_path / "corrupt.xyz").write_text("12\nnot a frame\n")
    other = tmp_path / "m3gnet-tuned"
    other.mkdir()
    (other / "tuned.json").write_text(json.dumps({"format": 1, "potential": "m3gnet"}))
    old = tmp_path / "old-tuned"
    old.mkdir()
    (old / "tuned.json").write_text(json.dumps({"format": 0, "amorph_version": "0.0.1"}))
    cases = {
        ("--frames", "few.xyz"): "3 DFT frames are too few to tune on",
        ("--frames", "nostress.xyz"): "nostress.xyz frame 0 has no stress",
        ("--frames", "a.xyz", "b.xyz"): "mixed DFT settings: a.xyz frame 0 (code test, xc PBE)",
        ("--frames", "corrupt.xyz"): "cannot read DFT frames from corrupt.xyz",
        ("--frames", "sv.xyz", "paw.xyz"): "Li has dataset paw (1 e) in paw.xyz frame 0 but sv",
        ("--frames", "ok.xyz", "--model", str(other)): "is a tuned m3gnet model, not a chgnet one",
        ("--frames", "ok.xyz", "--model", str(old)): "was tuned by amorph 0.0.1 in format 0",
        ("--frames", "ok.xyz", "--validation-fraction", "1.5"): "validation fraction must lie",
        ("--frames", "ok.xyz", "--freeze", "all"): "argument --freeze: invalid choice",
        ("Li2O",): "amorph: error: no results in ",
    }
    before = digest(tmp_path)
    for args, message in cases.items():
        result = amorph(tmp_path, "tune", *args, check=False)
        assert result.returncode == 1, (args, result.stderr)
        assert message in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
    assert digest(tmp_path) == before  # no model folder, no store
