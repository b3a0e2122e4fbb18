"""CHGNet (weights in its wheel) and M3GNet (a small model saved here) behind the engine API."""

import numpy as np
import pytest
from builders import antifluorite, untrained_m3gnet
from pymatgen.io.ase import AseAtomsAdaptor

from amorph.constants import EV_A3_TO_GPA as GPA
from amorph.errors import EngineError, InputError
from amorph.md.engine import EngineSpec, MDSettings, MDState, MDTask
from amorph.trajectory import Trajectory


@pytest.fixture(scope="module")
def small_m3gnet(tmp_path_factory):
    """An untrained two-element M3GNet saved with ``Potential.save`` (no hub, no network)."""
    pytest.importorskip("torch")
    from matgl.apps.pes import Potential

    model = untrained_m3gnet(blocks=1, width=16, cutoff=4.0)
    path = tmp_path_factory.mktemp("m3gnet") / "Li-O-tiny"
    Potential(model=model, calc_stresses=True).save(str(path))
    return EngineSpec("m3gnet-ase", model=str(path))


def _virial_and_finite_difference_pressure(engine, structure, delta=3e-3):
    atoms = AseAtomsAdaptor.get_atoms(structure)
    atoms.rattle(0.1, seed=2)
    atoms.calc = engine.calculator
    virial = -np.trace(atoms.get_stress(voigt=False)) / 3 * GPA
    energies, volumes = [], []
    for factor in (1 - delta, 1 + delta):
        strained = atoms.copy()
        strained.set_cell(atoms.cell * factor, scale_atoms=True)
        strained.calc = engine.calculator
        energies.append(strained.get_potential_energy())
        volumes.append(strained.get_volume())
    return virial, -(energies[1] - energies[0]) / (volumes[1] - volumes[0]) * GPA


@pytest.mark.parametrize("kind", ["chgnet", "m3gnet"])
def test_virial_pressure_is_minus_dE_dV(kind, small_m3gnet):
    engine = (small_m3gnet if kind == "m3gnet" else EngineSpec("chgnet-ase")).load()
    virial, finite_difference = _virial_and_finite_difference_pressure(engine, antifluorite(4.3))
    assert virial == pytest.approx(finite_difference, rel=0.02, abs=1e-3)


def test_chgnet_compressed_li2o_is_under_positive_pressure(chgnet):
    dense, _ = _virial_and_finite_difference_pressure(
        chgnet, antifluorite(4.3)
    )  # crystal: a = 4.61 Å
    loose, _ = _virial_and_finite_difference_pressure(chgnet, antifluorite(5.2))
    assert dense > 5 > loose


def test_m3gnet_from_a_local_directory_runs_md(small_m3gnet, tmp_path):
    engine = small_m3gnet.load()
    result = engine.run_one(
        MDTask(MDState(antifluorite(4.61)), 300.0, 20, MDSettings(), tmp_path, seed=1)
    )
    traj = Trajectory.load(result.trajectory_path)
    assert traj.n_frames == 20 and np.isfinite(traj.energies).all()
    assert traj.metadata["engine"] == "m3gnet-ase"


def test_model_is_loaded_once_per_process(small_m3gnet):
    assert small_m3gnet.load() is EngineSpec("m3gnet-ase", model=small_m3gnet.model).load()


def test_m3gnet_elements_outside_the_model_are_rejected(small_m3gnet):
    with pytest.raises(InputError, match=r"no parameters for element.* Si"):
        small_m3gnet.load().check_elements(["Li", "Si", "O"])


def test_missing_m3gnet_model_names_both_ways_to_load(tmp_path):
    with pytest.raises(EngineError, match=r"local directory .* pretrained model name"):
        EngineSpec("m3gnet-ase", model=str(tmp_path / "absent")).load()
