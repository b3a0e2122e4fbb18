"""Random cells packed with packmol: counts, volume and minimum distance, seeds, refusals, and the
temporary folders of killed packers."""

import numpy as np
import pytest
from pymatgen.core import Composition

from amorph.errors import PackingError
from amorph.structure.packing import random_packed_structure


def _min_periodic_distance(structure):
    distances = structure.distance_matrix + np.eye(len(structure)) * 1e9
    return distances.min()


def test_packing_respects_counts_volume_and_minimum_distance():
    structure = random_packed_structure(Composition("Li2SiO3"), 5, 12.0, min_distance=1.8, seed=7)
    assert structure.composition == Composition("Li10Si5O15")
    assert structure.volume == pytest.approx(12.0 * 30, rel=1e-6)
    assert structure.lattice.is_orthogonal and np.allclose(
        structure.lattice.abc, structure.lattice.a
    )
    # distance_matrix is minimum-image: packmol's pbc keeps the tolerance across cell faces too
    assert _min_periodic_distance(structure) > 1.8 - 0.05


def test_packing_is_reproducible_by_seed():
    a = random_packed_structure(Composition("LiCl"), 4, 20.0, seed=3)
    b = random_packed_structure(Composition("LiCl"), 4, 20.0, seed=3)
    c = random_packed_structure(Composition("LiCl"), 4, 20.0, seed=4)
    assert np.allclose(a.cart_coords, b.cart_coords)
    assert not np.allclose(a.cart_coords, c.cart_coords)


def test_impossible_packing_fails_with_reason():
    with pytest.raises(
        PackingError, match=r"packmol failed .* could not place atoms without overlap"
    ):
        random_packed_structure(Composition("Li2O"), 1, 2.0, min_distance=3.0, timeout=20)


def test_packmol_timeout_is_reported():
    with pytest.raises(PackingError, match=r"did not finish within 0.5 s"):
        random_packed_structure(Composition("Li2O"), 30, 4.0, min_distance=2.5, timeout=0.5)


def test_packing_removes_the_temp_folders_of_killed_packers(tmp_path, monkeypatch):
    import subprocess
    import sys
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    leftover = tmp_path / f"amorph-packmol-{dead.pid}-x1y2"
    leftover.mkdir()
    (leftover / "pack.inp").write_text("killed here")
    running = tmp_path / "amorph-packmol-1-x1y2"  # pid 1 is alive
    running.mkdir()
    random_packed_structure(Composition("LiCl"), 4, 20.0, seed=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == [running.name]
