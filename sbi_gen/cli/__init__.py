"""The ``sbi-gen`` command: one module per sub-command, each with its parser beside its handler.

The modules only parse, check and print; the work is done by the library
(:mod:`sbi_gen.pipeline`, :mod:`sbi_gen.estimator`, :mod:`sbi_gen.executors`, ...).
Exit status: 0 success; 2 a bad argument or input file (one line on stderr that
names it, no traceback, checked before any work where it can be); 3 a result that
cannot be trusted (non-finite samples, diverged training, failed refinement
diagnostics, an incomplete store); 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sbi_gen.cli import benchmark, calibrate, plot, plugins, refine, run, sample, simulate, train
from sbi_gen.errors import SbiGenError, UntrustworthyResultError

__all__ = ["main", "build_parser"]

#: sub-command name -> its module (each has add_parser(commands) and command(args))
COMMANDS = {"plugins": plugins, "simulate": simulate, "train": train, "sample": sample, "run": run,
            "calibrate": calibrate, "refine": refine, "plot": plot, "benchmark": benchmark}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``sbi-gen`` (one sub-command per job)."""
    parser = argparse.ArgumentParser(
        prog="sbi-gen",
        description="Amortized simulation-based inference: train a neural posterior q(theta | x) on simulations "
        "and check that it is calibrated.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS.values():
        module.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sbi-gen`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    handler = COMMANDS[args.command].command
    try:
        return handler(args)
    except UntrustworthyResultError as error:
        print(f"sbi-gen {args.command}: not trustworthy: {error}", file=sys.stderr)
        return 3
    except (SbiGenError, FileExistsError, ValueError) as error:
        print(f"sbi-gen {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # unreadable input, unwritable output, full disk: name the file, no traceback
        where = f" ({error.filename})" if getattr(error, "filename", None) else ""
        print(f"sbi-gen {args.command}: error: {error.strerror or error}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sbi-gen {args.command}: interrupted", file=sys.stderr)
        return 130
