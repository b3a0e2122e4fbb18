"""Cheap ASE calculators for testing the MD machinery (imported by tests, and by name as engine factories)."""

from ase.calculators.lj import LennardJones

ARGON = {"sigma": 3.4, "epsilon": 0.0104, "rc": 8.0, "smooth": True}


def argon() -> LennardJones:
    """Lennard-Jones argon (Rahman's parameters), smoothly cut at 8 Å."""
    return LennardJones(**ARGON)


class KilledAfter(LennardJones):
    """Argon that raises after ``calls`` evaluations, standing in for a job killed mid-run."""

    def __init__(self, calls: int):
        super().__init__(**ARGON)
        self.remaining = calls

    def calculate(self, *args, **kwargs):
        if self.remaining <= 0:
            raise KeyboardInterrupt("killed")
        self.remaining -= 1
        super().calculate(*args, **kwargs)


class NaNAfter(LennardJones):
    """Argon whose energy turns NaN after ``calls`` evaluations."""

    def __init__(self, calls: int):
        super().__init__(**ARGON)
        self.remaining = calls

    def calculate(self, *args, **kwargs):
        super().calculate(*args, **kwargs)
        self.remaining -= 1
        if self.remaining < 0:
            self.results["energy"] = float("nan")


def exploding_argon() -> LennardJones:
    """Argon with a well 10^4 times too deep: any random packing heats past the blow-up limit."""
    return LennardJones(**{**ARGON, "epsilon": 104.0})
