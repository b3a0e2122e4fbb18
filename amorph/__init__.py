"""amorph: amorphous structures and their ionic diffusivities from melt-quench MD."""

__version__ = "0.1.0"
