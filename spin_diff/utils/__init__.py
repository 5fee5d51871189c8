"""Small helpers shared across spin_diff."""
