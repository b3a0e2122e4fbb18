"""Result folders: written whole, with the user's permissions, trajectories copied, JSON valid."""

import json
import os

from results_factory import add_composition, stage_doc

from amorph.analysis.synthetic import random_walk
from amorph.files import json_text
from amorph.results.export import write_folders
from amorph.results.reader import Database
from amorph.results.store import open_store


def test_json_text_writes_null_for_nan_and_infinities():
    text = json_text({"D": float("nan"), "rows": [1.5, float("inf"), (float("-inf"), 2)]})
    assert json.loads(text) == {"D": None, "rows": [1.5, None, [None, 2]]}


def test_result_folders_follow_the_umask_and_copy_the_trajectory(tmp_path):
    mask = os.umask(0)
    os.umask(mask)
    production = tmp_path / "runs" / "production.npz"
    traj = random_walk({"Li": 4, "O": 2}, {"Li": 1e-5, "O": 1e-6}, 8, frame_interval_fs=2.0)
    traj.save(production)
    structure = traj.structure(-1)
    outputs = tmp_path / "outputs"
    store = open_store(None, outputs)
    add_composition(store, [stage_doc(structure, 1000.0, trajectory=production)], tmp_path / "j")
    results = outputs / "results"
    leftover = results / "Li2O" / ".1000K.killed"  # a writer killed half-way
    leftover.mkdir(parents=True)
    (entry,) = Database(store, str(outputs / "store")).compositions("Li2O")
    (folder,) = write_folders([entry], results)
    assert not leftover.exists() and sorted(p.name for p in folder.parent.iterdir()) == ["1000K"]
    assert folder.stat().st_mode & 0o777 == 0o777 & ~mask
    for name in ("summary.json", "trajectory.npz"):
        assert (folder / name).stat().st_mode & 0o777 == 0o666 & ~mask, name
    assert production.stat().st_mode & 0o777 == 0o666 & ~mask
    copy = folder / "trajectory.npz"
    assert not os.path.samefile(copy, production) and copy.read_bytes() == production.read_bytes()
    json.loads((folder / "summary.json").read_text(), parse_constant=lambda c: 1 / 0)
