"""amorph's batched CHGNet and M3GNet as torch-sim models (``torchsim`` extra; Python ≥ 3.12)."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from builders import antifluorite, stock, untrained_m3gnet
from pymatgen.io.ase import AseAtomsAdaptor

ts = pytest.importorskip(
    "torch_sim", reason="torch-sim-atomistic (amorph[torchsim]) is not installed"
)
# The imports below need torch_sim, so they follow the importorskip above.
from torch_sim.models.interface import validate_model_outputs  # noqa: E402
from torch_sim.units import MetalUnits  # noqa: E402

from amorph.constants import EV_A3_TO_GPA as GPA  # noqa: E402
from amorph.errors import InputError  # noqa: E402
from amorph.md.potential import Systems  # noqa: E402
from amorph.potentials.torchsim import chgnet_model, m3gnet_model  # noqa: E402

CPU = torch.device("cpu")


def li2o(a=4.61, shear=0.0, rattle=0.1, seed=0) -> Atoms:
    """Antifluorite Li2O (12 atoms), optionally sheared, with rattled positions."""
    atoms = AseAtomsAdaptor.get_atoms(antifluorite(a, shear=shear))
    atoms.rattle(rattle, seed=seed)
    return atoms


def rattled_silicon() -> Atoms:
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    atoms.rattle(0.1, seed=4)
    return atoms


def assert_matches(model, calculator, atoms_list: list[Atoms]) -> None:
    """One batched torch-sim call equals amorph's potential (to float32 round-off, which depends on
    the thread count) and the stock calculator closely."""
    output = model(ts.io.atoms_to_state(atoms_list, CPU, torch.float64))
    evaluation = model.potential(Systems.from_atoms(atoms_list))
    for key, value in (
        ("energy", evaluation.energies),
        ("forces", evaluation.forces),
        ("stress", evaluation.stresses),
    ):
        torch.testing.assert_close(output[key], value.double(), rtol=1e-6, atol=1e-6)
    forces = torch.split(output["forces"], [len(a) for a in atoms_list])
    worst = np.zeros(3)
    for b, atoms in enumerate(atoms_list):
        energy, stock_forces, stress = stock(calculator, atoms)
        worst = np.maximum(
            worst,
            [
                abs(output["energy"][b].item() - energy) / len(atoms),
                np.abs(forces[b].numpy() - stock_forces).max(),
                np.abs(output["stress"][b].numpy() - stress).max() * GPA,
            ],
        )
    print(
        f"max |torch-sim - stock|: {worst[0]:.1e} eV/atom, {worst[1]:.1e} eV/Å, {worst[2]:.1e} GPa"
    )
    assert worst[0] < 1e-5 and worst[1] < 1e-4 and worst[2] < 1e-3


@pytest.fixture(scope="module")
def chgnet():
    with contextlib.redirect_stdout(io.StringIO()):
        return chgnet_model()


@pytest.fixture(scope="module")
def small_m3gnet(tmp_path_factory):
    """An untrained Li–O M3GNet with a large output scale (forces of order eV/Å), saved locally."""
    from matgl.apps.pes import Potential

    model = untrained_m3gnet()
    path = tmp_path_factory.mktemp("m3gnet") / "Li-O-small"
    Potential(
        model=model,
        calc_stresses=True,
        data_mean=-0.3,
        data_std=1000.0,
        element_refs=torch.tensor([-1.9, -4.9]),
    ).save(str(path))
    return str(path)


def test_chgnet_matches_amorph_and_the_stock_calculator(chgnet):
    from chgnet.model.dynamics import CHGNetCalculator

    with contextlib.redirect_stdout(io.StringIO()):
        calculator = CHGNetCalculator(model=chgnet.potential.model, use_device="cpu")
    assert_matches(
        chgnet,
        calculator,
        [
            li2o(4.61, rattle=0.15),
            li2o(4.3, shear=0.08, seed=1).repeat((2, 1, 1)),
            rattled_silicon(),
        ],
    )


def test_m3gnet_from_a_local_directory_matches_the_stock_calculator(small_m3gnet):
    from matgl import load_model
    from matgl.ext.ase import PESCalculator

    model = m3gnet_model(small_m3gnet)
    calculator = PESCalculator(load_model(small_m3gnet), stress_unit="eV/A3")
    assert_matches(
        model,
        calculator,
        [li2o(4.61, rattle=0.15), li2o(4.3, shear=0.08, seed=1).repeat((2, 1, 1))],
    )
    with pytest.raises(InputError, match=r"no parameters for atomic number.* 14"):
        model(ts.io.atoms_to_state([rattled_silicon()], CPU, torch.float64))


def test_chgnet_passes_torch_sim_validation(chgnet):
    validate_model_outputs(
        chgnet, CPU, torch.float64
    )  # batched, single, shifted and non-periodic systems


def test_langevin_holds_two_replicas_near_their_temperatures(chgnet):
    state = ts.io.atoms_to_state(
        [li2o(seed=2).repeat((2, 1, 1)), li2o(seed=3).repeat((2, 1, 1))], CPU, torch.float64
    )
    state.rng = 7
    targets = torch.tensor([300.0, 1200.0], dtype=torch.float64)
    kT, dt, gamma = (
        targets * MetalUnits.temperature,
        0.002 * MetalUnits.time,
        1 / (0.02 * MetalUnits.time),
    )
    md = ts.nvt_langevin_init(state, chgnet, kT=kT)
    temperatures, energies = [], []
    for _ in range(120):  # 2 fs steps, 20 fs friction time
        md = ts.nvt_langevin_step(md, chgnet, dt=dt, kT=kT, gamma=gamma)
        temperatures.append(
            ts.calc_temperature(masses=md.masses, momenta=md.momenta, system_idx=md.system_idx)
        )
        energies.append(md.energy)
    temperatures, energies = torch.stack(temperatures[40:]), torch.stack(energies)
    assert torch.isfinite(energies).all()
    mean = temperatures.mean(0)
    assert ((mean > 0.6 * targets) & (mean < 1.4 * targets)).all(), mean
    assert (
        energies[40:, 1].mean() > energies[40:, 0].mean()
    )  # the hot replica sits higher on the surface


def test_the_rest_of_amorph_does_not_import_torch_sim():
    code = (
        "import sys, amorph.md.engine, amorph.md.batched, amorph.potentials.chgnet, "
        "amorph.potentials.m3gnet; assert 'torch_sim' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
