"""Entry point of the ``spin-diff`` command."""

from __future__ import annotations

import argparse
import logging
import sys

from spin_diff import __version__


def build_parser() -> argparse.ArgumentParser:
    from spin_diff.cli import body, cache, demo, fit, prior, synth
    from spin_diff.cli import eval as evaluate

    parser = argparse.ArgumentParser(
        prog="spin-diff",
        description="SPIN-style 3D human mesh recovery with a diffusion pose prior in the fitting loop.",
    )
    parser.add_argument("--version", action="version", version=f"spin_diff {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in (body, demo, synth, fit, prior, cache, evaluate):
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``spin-diff``; returns the exit status (0 ok, 1 failed items, 2 bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from spin_diff.body.files import BodyModelNotFoundError
    from spin_diff.body.smpl_format import SMPLFileError
    from spin_diff.config import ConfigError

    try:
        return int(args.handler(args) or 0)
    except (BodyModelNotFoundError, SMPLFileError, ConfigError, FileNotFoundError, ValueError, KeyError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"spin-diff: error: {message}", file=sys.stderr)
        return 2


def main_entry() -> None:
    """Console-script entry: exit with :func:`main`'s status."""
    sys.exit(main())


if __name__ == "__main__":
    main_entry()
