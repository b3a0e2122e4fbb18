"""ML potentials evaluated on batches of replicas with torch, and their engines.

They implement :mod:`amorph.md.potential`'s contract (energies of a batch, forces and stresses
from one backward pass):

- :mod:`.graph`: periodic neighbour lists and bond-angle triplets with torch operations, on any
  device;
- :mod:`.chgnet`, :mod:`.m3gnet`, :mod:`.sevennet`: CHGNet, M3GNet and SevenNet as batched
  potentials, and their engines (batched, and through the packages' own ASE calculators);
- :mod:`.torchsim`: the same potentials as torch-sim models.
"""
