"""Applications built on the library: the demo, and the file-handling half of ``spin-diff fit``."""
