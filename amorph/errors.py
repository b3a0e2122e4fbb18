"""Exceptions whose message is meant to be shown to a user as one line, and the range check that
raises them for numbers."""

import math


class AmorphError(Exception):
    """Base class: the command line prints ``amorph: error: <message>`` and exits non-zero."""


class InputError(AmorphError, ValueError):
    """Invalid user input (formula, temperature, step counts, file contents)."""


class PackingError(AmorphError):
    """Packmol could not build the random cell."""


class EngineError(AmorphError):
    """An engine (ML potential or VASP) could not be loaded or run."""


class WalltimeReached(EngineError):
    """A run stopped cleanly before the job's walltime; running it again resumes it."""


class MDInstabilityError(AmorphError):
    """An MD run produced NaN energies or an exploding temperature."""


class VolumeSearchError(AmorphError):
    """The zero-pressure volume could not be bracketed within the allowed attempts."""


class TrajectoryError(AmorphError):
    """A trajectory file is corrupt, truncated or of an unknown format."""


class StoreError(AmorphError):
    """A result store cannot be opened or read: missing, corrupt, foreign, unreachable, too new."""


class EmptyStoreError(StoreError):
    """A store that holds no results yet."""


class PathError(AmorphError):
    """A place amorph should write to is unusable: a file where a folder belongs, a symbolic link
    amorph did not make, or a folder it cannot write in."""


def check_range(what: str, value: float, low: float, high: float, unit: str = "") -> None:
    """Raise ``InputError`` unless ``value`` is a finite number in [``low``, ``high``]."""
    if not (math.isfinite(value) and low <= value <= high):
        low, high, value = (f"{v:g}" if isinstance(v, float) else v for v in (low, high, value))
        raise InputError(f"{what} must lie between {low} and {high}{unit}, got {value}{unit}")
