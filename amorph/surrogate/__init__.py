"""ML-potential engines (CHGNet, M3GNet, any ASE calculator) implementing :class:`amorph.engine.Engine`."""
