"""Entry point of the ``spin-diff`` command."""

from __future__ import annotations

import argparse
import sys

from spin_diff import __version__
from spin_diff.cli import body, cache, checkpoint, demo, detect, fit, prior, synth, train
from spin_diff.cli import eval as evaluate
from spin_diff.cli.common import run_command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spin-diff",
        description="SPIN-style 3D human mesh recovery with a diffusion pose prior in the fitting loop.",
    )
    parser.add_argument("--version", action="version", version=f"spin_diff {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in (body, demo, synth, detect, fit, prior, cache, evaluate, train, checkpoint):
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``spin-diff``; returns the exit status (0 ok, 1 failed items, 2 bad input)."""
    return run_command(build_parser(), argv)


def main_entry() -> None:
    """Console-script entry: exit with :func:`main`'s status."""
    sys.exit(main())


if __name__ == "__main__":
    main_entry()
