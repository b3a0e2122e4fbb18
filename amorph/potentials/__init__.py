"""ML potentials evaluated on batches of replicas with torch, and their engines.

- :mod:`.graph`: periodic neighbour lists and bond-angle triplets with torch operations, on any
  device;
- :mod:`.base`: energies, forces and stresses of a batch from one backward pass;
- :mod:`.chgnet`, :mod:`.m3gnet`, :mod:`.sevennet`: CHGNet, M3GNet and SevenNet as batched
  potentials, and their engines (batched, and through the packages' own ASE calculators);
- :mod:`.torchsim`: the same potentials as torch-sim models.
"""
