"""Evaluation: 3D joint errors as the field reports them."""
