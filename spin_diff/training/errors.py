"""Input errors of training (bad data, options, environment): the project's input-error
classes (:mod:`spin_diff.errors`, which the command line prints as one line) where that module
exists, else their builtin bases, which the command line of this version prints the same way."""

from __future__ import annotations

try:
    from spin_diff.errors import BadInputError, MissingInputError
except ImportError:  # a spin_diff without the common input-error base

    class BadInputError(ValueError):
        """An input exists but is wrong."""

    class MissingInputError(FileNotFoundError):
        """An input file or folder does not exist."""


__all__ = ["BadInputError", "MissingInputError"]
