"""spin_diff: SPIN-style 3D human mesh recovery with a diffusion pose prior in the fitting loop."""

__version__ = "0.1.0"
