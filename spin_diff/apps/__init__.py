"""Applications built on the library: the spin-diff fit file pipeline and the demo."""
