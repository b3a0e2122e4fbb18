"""Batched ML-potential MD: many replicas (own cell, temperature, time step) advanced with one model call.

- :mod:`.graph`: periodic neighbour lists and bond-angle triplets with torch operations, on any device;
- :mod:`.potential`: energies, forces and stresses of a batch from one backward pass;
- :mod:`.chgnet`, :mod:`.m3gnet`: CHGNet and M3GNet as batched potentials, and their engines;
- :mod:`.integrators`: ASE's Langevin and Nosé–Hoover chain integrators over a batch, in torch;
- :mod:`.engine`: :class:`~.engine.BatchedEngine`, the :class:`amorph.engine.Engine` that runs them.
"""
