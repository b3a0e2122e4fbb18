"""SevenNet-0 (weights in the sevenn wheel): the batched engine and SevenNet's ASE calculator."""

import socket

import numpy as np
import pytest
from ase.build import bulk
from builders import assert_matches_stock
from pymatgen.io.ase import AseAtomsAdaptor

from amorph.constants import EV_A3_TO_GPA as GPA
from amorph.errors import EngineError, InputError
from amorph.md.batched import BatchedEngine
from amorph.md.engine import EngineSpec, MDSettings, MDState, MDTask
from amorph.md.potential import Systems
from amorph.trajectory import Trajectory


def li2o(repeat=(1, 1, 1), a=4.61, shear=0.0, rattle=0.1, seed=0):
    """Fluorite Li2O from its 3-atom primitive cell (4.61 Å: zero pressure), sheared and rattled."""
    atoms = bulk("Li2O", "fluorite", a=a).repeat(repeat)
    cell = atoms.cell.array
    atoms.set_cell(cell + shear * np.roll(cell, 1, axis=1), scale_atoms=True)
    atoms.rattle(rattle, seed=seed)
    return atoms


def cells():
    return [
        li2o(rattle=0.15),  # 3 atoms in 25 Å³: each atom sees dozens of its own images
        li2o((2, 1, 1), a=4.3, shear=0.06, rattle=0.2, seed=1),  # compressed and sheared
    ]


@pytest.fixture(scope="module")
def engine():
    """The batched engine, loaded with every network connection refused."""

    def refuse(*args, **kwargs):
        raise OSError("no network in this test")

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setattr(socket.socket, "connect", refuse)
        return EngineSpec("sevennet").load()


@pytest.fixture(scope="module")
def calculator():
    return EngineSpec("sevennet-ase").load().calculator


def test_weights_ship_in_the_wheel_and_load_offline(engine):
    import sevenn
    from sevenn.util import pretrained_name_to_path

    assert pretrained_name_to_path("7net-0").startswith(sevenn.__path__[0])
    assert isinstance(engine, BatchedEngine) and engine.name == "sevennet"
    assert engine.potential.cutoff == 5.0


def test_batched_evaluation_equals_the_stock_calculator(engine, calculator):
    atoms_list = cells()
    evaluation = engine.potential(Systems.from_atoms(atoms_list))
    assert_matches_stock(evaluation, calculator, atoms_list)
    assert np.abs(evaluation.forces.numpy()).max() > 0.5  # not a comparison of vanishing numbers


def test_stress_is_the_strain_derivative_of_the_energy(engine):
    """Stress in eV/Å³, ASE sign: (1/V) dE/dε; the virial pressure -tr(stress)/3 is -dE/dV."""
    atoms = li2o(a=4.3, shear=0.06, rattle=0.15)  # compressed by 7 %
    h = 5e-3
    strains = [h * np.eye(3), h / 2 * np.array([[0, 1, 0], [1, 0, 0], [0, 0, 0]])]  # dilation, xy
    strained = []
    for strain in strains:
        for sign in (1, -1):
            copy = atoms.copy()
            copy.set_cell(atoms.cell.array @ (np.eye(3) + sign * strain), scale_atoms=True)
            strained.append(copy)
    evaluation = engine.potential(Systems.from_atoms([atoms, *strained]))
    energies = evaluation.energies.double().numpy()
    stress = evaluation.stresses[0].double().numpy()
    derivatives = (energies[1::2] - energies[2::2]) / (2 * h) / atoms.get_volume()
    assert abs(derivatives[0] - np.trace(stress)) * GPA < 0.05
    assert abs(derivatives[1] - stress[0, 1]) * GPA < 0.05
    assert -np.trace(stress) / 3 * GPA > 5  # a pressure of several GPa
    assert abs(stress[0, 1]) * GPA > 0.2  # and a shear stress


def test_short_nvt_run_stays_finite(engine, tmp_path):
    structure = AseAtomsAdaptor.get_structure(li2o((2, 2, 1)))  # 12 atoms
    task = MDTask(MDState(structure), 1500.0, 3, MDSettings(time_step_fs=2.0), tmp_path, seed=3)
    (result,) = engine.run([task])
    trajectory = Trajectory.load(result.trajectory_path)
    assert trajectory.n_frames == 3 and result.n_force_calls == 4
    assert np.isfinite(trajectory.energies).all() and np.isfinite(trajectory.temperatures).all()
    assert 300 < trajectory.temperatures.mean() < 3000
    assert -5.5 < result.stats.energy_eV_per_atom < -4.0  # Li2O: about -4.8 eV/atom in PBE


def test_unsupported_element_is_an_input_error(engine):
    engine.check_elements(["Li", "O", "Pu"])
    with pytest.raises(InputError, match="Rn"):
        engine.check_elements(["Li", "O", "Rn"])


@pytest.mark.parametrize("kind", ["sevennet", "sevennet-ase"])
def test_bad_model_file_is_one_engine_error_line(kind, tmp_path):
    corrupt = tmp_path / "model.pth"
    corrupt.write_text("not a checkpoint")
    for model in (str(tmp_path / "missing.pth"), str(corrupt)):
        with pytest.raises(EngineError, match="cannot load SevenNet model") as error:
            EngineSpec(kind, model=model).load()
        assert "\n" not in str(error.value) and model in str(error.value)
