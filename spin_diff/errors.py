"""The exceptions that mean "the input is wrong", as opposed to a bug.

Every error about what a user gave (a missing or malformed file, a bad config value, a
damaged store, wrong shapes at an API boundary that a file or option produced) derives from
:class:`InputError`. The command line prints those as one line naming the input and the fix
(exit status 2); anything else is a bug and keeps its traceback. Each subclass also derives
from the builtin a Python caller would expect (``ValueError``, ``FileNotFoundError``), so
``except ValueError`` keeps working.
"""

from __future__ import annotations

__all__ = ["InputError", "BadInputError", "MissingInputError"]


class InputError(Exception):
    """Base of every expected input error; the message says what is wrong and what to do."""


class BadInputError(InputError, ValueError):
    """An input exists but is wrong: malformed, of the wrong shape, out of range."""


class MissingInputError(InputError, FileNotFoundError):
    """An input file or folder does not exist."""
