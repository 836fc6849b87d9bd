"""Entry point of ``peel``: discovers subcommands and maps failures to exit codes."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import pkgutil
import sys
import traceback
from collections.abc import Sequence

from engine import __version__
from engine.cli import commands
from engine.cli.errors import CliError
from engine.errors import InputError
from engine.text import one_line

__all__ = ["CliError", "build_parser", "main"]

# Subcommands appear in --help in this order; new modules not listed here come after, sorted.
_ORDER = ["demo_data", "train", "export_onnx", "segment", "evaluate", "baseline", "compare"]


def _command_modules() -> list[str]:
    names = [m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_")]
    return sorted(names, key=lambda n: (_ORDER.index(n) if n in _ORDER else len(_ORDER), n))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="peel",
        description="Peel: learn to cut objects out of photos with no labels.",
    )
    parser.add_argument("--version", action="version", version=f"peel {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--debug", action="store_true",
        help="print the traceback of every failure, also of expected ones (bad input, a failed run)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _command_modules():
        importlib.import_module(f"{commands.__name__}.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for stream in (sys.stdout, sys.stderr):
        # A file name need not be valid UTF-8 on Linux: printing one must not end the command.
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here when stdout is block-buffered
        return code
    except BrokenPipeError:
        # ``peel evaluate | head``: the reader left. Point stdout at /dev/null so the final flush
        # at exit cannot raise again, and end quietly as other Unix tools do.
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE
    except (CliError, InputError, FileNotFoundError) as exc:
        if args.debug:
            traceback.print_exc()
        print(f"peel {args.command}: error: {one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code if isinstance(exc, CliError) else 2
    except KeyboardInterrupt:
        print(f"peel {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: say so, with what is needed to report it
        traceback.print_exc()
        print(f"peel {args.command}: internal error, please report: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
