"""Lean CHGNet and M3GNet on tensors, against the stock ASE calculators; the batched engines."""

import contextlib
import io

import numpy as np
import pytest
import torch
from ase.units import kB
from builders import (
    antifluorite,
    assert_matches_stock,
    random_cell,
    stock,
    untrained_m3gnet,
)
from pymatgen.core import Lattice, Structure
from pymatgen.io.ase import AseAtomsAdaptor

from amorph.constants import EV_A3_TO_GPA as GPA
from amorph.errors import InputError
from amorph.md.batched import BatchedEngine
from amorph.md.engine import EngineSpec, MDSettings, MDState, MDTask
from amorph.md.potential import Systems
from amorph.potentials.graph import neighbor_list, pairs_sharing_center
from amorph.trajectory import Trajectory


def li2o(a=4.61, rattle=0.1, seed=0, shear=0.0):
    return antifluorite(a, shear=shear).perturb(rattle, seed=seed)


def random_packing(species, volume_per_atom=14.0, seed=0, min_distance=2.0):
    """Atoms at random (none closer than ``min_distance``) in a skewed cell: amorphous stand-in."""
    a = (volume_per_atom * len(species)) ** (1 / 3)
    lattice = Lattice(np.array([[a, 0, 0], [0.15 * a, 0.95 * a, 0], [-0.1 * a, 0.2 * a, 1.05 * a]]))
    return random_cell(lattice, species, min_distance, seed)


def structures():
    return [
        li2o(4.61, rattle=0.15),  # a cell smaller than the 6 Å cutoff: many periodic images
        li2o(4.3, rattle=0.1, shear=0.08).make_supercell([2, 1, 1]),  # compressed and sheared
        random_packing(["Li"] * 14 + ["Si"] * 4 + ["P"] * 2 + ["O"] * 20 + ["S"] * 2, seed=3),
    ]


def systems_of(structures_, dtype=torch.float64):
    return Systems(
        positions=torch.tensor(np.concatenate([s.cart_coords for s in structures_]), dtype=dtype),
        cells=torch.tensor(np.stack([s.lattice.matrix for s in structures_]), dtype=dtype),
        numbers=torch.tensor(np.concatenate([s.atomic_numbers for s in structures_])),
        counts=[len(s) for s in structures_],
    )


def assert_potential_matches_stock(potential, calculator, structures_):
    evaluation = potential(systems_of(structures_))
    assert_matches_stock(
        evaluation, calculator, [AseAtomsAdaptor.get_atoms(s) for s in structures_]
    )


@pytest.fixture(scope="module")
def chgnet_model():
    from chgnet.model import CHGNet

    with contextlib.redirect_stdout(io.StringIO()):
        return CHGNet.load(model_name="0.3.0", use_device="cpu", verbose=False)


def test_neighbor_list_finds_the_pairs_pymatgen_finds():
    structures_ = structures()
    systems = systems_of(structures_)
    edges = neighbor_list(systems, 6.0)
    lengths = edges.vectors(systems.positions, systems.cells, systems.owner).norm(dim=1)
    owner = systems.owner[edges.center]
    for b, structure in enumerate(structures_):
        center, _, _, distances = structure.get_neighbor_list(6.0, numerical_tol=1e-8)
        ours = lengths[owner == b].numpy()
        assert len(ours) == len(center)
        assert np.allclose(np.sort(ours), np.sort(distances), atol=1e-9)
    # each edge's reverse runs between the same atoms, the other way, over the same distance
    assert torch.equal(edges.center[edges.reverse], edges.neighbor)
    assert torch.equal(edges.reverse[edges.reverse], torch.arange(len(edges.center)))
    assert torch.allclose(lengths[edges.reverse], lengths)


def test_tensor_graphs_have_chgnet_edge_and_angle_counts(chgnet_model):
    for structure in structures():
        graph = chgnet_model.graph_converter(structure)
        systems = systems_of([structure])
        edges = neighbor_list(systems, 6.0)
        lengths = edges.vectors(systems.positions, systems.cells, systems.owner).norm(dim=1)
        first, _ = pairs_sharing_center(edges.center, lengths <= 3.0, lengths < 3.0)
        assert len(edges.center) == len(graph.atom_graph)
        assert len(first) == len(graph.bond_graph)


def test_lean_chgnet_matches_the_stock_calculator(chgnet_model):
    from chgnet.model.dynamics import CHGNetCalculator

    from amorph.potentials.chgnet import CHGNetPotential

    with contextlib.redirect_stdout(io.StringIO()):
        calculator = CHGNetCalculator(model=chgnet_model, use_device="cpu")
    bcc_lithium = Structure(
        Lattice.cubic(3.44), ["Li", "Li"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )  # no angles
    assert_potential_matches_stock(
        CHGNetPotential(chgnet_model), calculator, [*structures(), bcc_lithium]
    )  # one batch


@pytest.mark.slow  # compiles for a minute or more
def test_compiled_chgnet_matches_the_eager_one(chgnet_model):
    from amorph.potentials.chgnet import CHGNetPotential

    systems = systems_of(structures())
    eager, compiled = (CHGNetPotential(chgnet_model, compile=c)(systems) for c in (False, True))
    assert torch.allclose(compiled.energies, eager.energies, rtol=0, atol=1e-4)
    assert (compiled.forces - eager.forces).abs().max() < 1e-4
    assert (compiled.stresses - eager.stresses).abs().max() * GPA < 1e-3


@pytest.fixture(scope="module")
def small_m3gnet():
    """An untrained Li–O M3GNet with element references and a large output scale (forces ~ eV/Å)."""
    from matgl.apps.pes import Potential

    model = untrained_m3gnet()
    return Potential(
        model=model,
        calc_stresses=True,
        data_mean=-0.3,
        data_std=1000.0,
        element_refs=torch.tensor([-1.9, -4.9]),
    )


def test_lean_m3gnet_matches_the_stock_calculator(small_m3gnet):
    from matgl.ext.ase import PESCalculator

    from amorph.potentials.m3gnet import M3GNetPotential

    calculator = PESCalculator(small_m3gnet, stress_unit="eV/A3")
    structures_ = [
        li2o(4.61, rattle=0.15),
        li2o(4.3, rattle=0.1, shear=0.08).make_supercell([2, 1, 1]),
        random_packing(["Li"] * 16 + ["O"] * 8, seed=5),
    ]
    _, forces, _ = stock(calculator, AseAtomsAdaptor.get_atoms(structures_[2]))
    assert np.abs(forces).max() > 0.3  # the comparison below is not between vanishing numbers
    assert_potential_matches_stock(M3GNetPotential(small_m3gnet), calculator, structures_)


def md_tasks(root, steps=6):
    settings = MDSettings(time_step_fs=2.0)
    return [
        MDTask(MDState(li2o(4.61, rattle=0.1)), 1500.0, steps, settings, root / "hot", seed=1),
        MDTask(
            MDState(li2o(4.5, rattle=0.1, shear=0.05)),
            600.0,
            steps,
            settings,
            root / "cold",
            seed=2,
        ),
    ]


def test_batched_chgnet_md_equals_single_runs(tmp_path):
    engine = EngineSpec("chgnet").load()
    assert isinstance(engine, BatchedEngine) and engine.name == "chgnet"
    together = engine.run(md_tasks(tmp_path / "together"))
    alone = [engine.run([t])[0] for t in md_tasks(tmp_path / "alone")]
    for a, b in zip(together, alone, strict=True):
        ta, tb = Trajectory.load(a.trajectory_path), Trajectory.load(b.trajectory_path)
        assert np.abs(ta.positions - tb.positions).max() < 1e-5
        assert np.allclose(ta.energies, tb.energies, rtol=0, atol=1e-4)
        assert ta.metadata["engine"] == "chgnet" and ta.metadata["complete"]
        assert a.stats.n_atoms == 12 and a.n_force_calls == 7


def test_batched_chgnet_md_follows_the_ase_chgnet_engine(tmp_path, chgnet):
    (stock,) = chgnet.run(md_tasks(tmp_path / "ase")[:1])
    (batched,) = EngineSpec("chgnet").load().run(md_tasks(tmp_path / "batched")[:1])
    a, b = Trajectory.load(stock.trajectory_path), Trajectory.load(batched.trajectory_path)
    assert np.abs(a.positions - b.positions).max() < 1e-5
    assert np.abs(a.virial_pressures - b.virial_pressures).max() < 1e-3
    assert a.metadata["final_state"]["thermostat"]["p_eta"] == pytest.approx(
        b.metadata["final_state"]["thermostat"]["p_eta"], rel=1e-4
    )


def test_chgnet_batched_rejects_elements_outside_its_embedding():
    with pytest.raises(InputError, match=r"no parameters for element.* Am"):
        EngineSpec("chgnet").load().check_elements(["Li", "Am"])


def test_m3gnet_batched_engine_from_a_local_directory(small_m3gnet, tmp_path):
    small_m3gnet.save(str(tmp_path / "model"))
    engine = EngineSpec("m3gnet", model=str(tmp_path / "model")).load()
    results = engine.run(md_tasks(tmp_path / "runs", steps=4))
    assert [Trajectory.load(r.trajectory_path).n_frames for r in results] == [4, 4]
    with pytest.raises(InputError, match=r"no parameters for element.* Si"):
        engine.check_elements(["Li", "Si"])


@pytest.mark.slow
def test_lean_chgnet_conserves_energy_without_a_thermostat(tmp_path):
    settings = MDSettings(time_step_fs=1.0, thermostat="langevin", thermostat_time_fs=float("inf"))
    task = MDTask(MDState(li2o(4.61, rattle=0.1)), 600.0, 500, settings, tmp_path, seed=1)
    traj = Trajectory.load(EngineSpec("chgnet").load().run([task])[0].trajectory_path)
    total = (traj.energies + 1.5 * traj.n_atoms * kB * traj.temperatures) / traj.n_atoms
    drift = total[-50:].mean() - total[:50].mean()
    print(
        f"NVE drift of CHGNet Li2O (12 atoms, 1 fs, 0.5 ps): {drift:.2e} eV/atom, "
        f"std {total.std():.2e}"
    )
    assert abs(drift) < 2e-4
