"""What every command shares: --help/--version/-v/-q, logging set-up, and errors -> exit codes.

Exit codes (the same for every command, documented in the README):
  0 success, 1 unexpected internal error, 2 bad input or usage,
  3 missing hardware or backend, 4 some inputs of a batch failed (the others were done),
  130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import math
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence

from .. import package_version
from ..cpus import keep_freed_memory
from ..errors import StylecastError

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_BACKEND = 3
EXIT_PARTIAL = 4
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = (
    "exit codes: 0 success, 1 internal error, 2 bad input or usage, "
    "3 missing hardware or backend, 4 some inputs failed (the others were done), 130 interrupted"
)

log = logging.getLogger("stylecast")


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line ``error:`` message and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"error: {message} (see {self.prog} --help)\n")
        raise SystemExit(EXIT_USAGE)


def make_parser(prog: str, description: str, epilog: str = "") -> argparse.ArgumentParser:
    """A parser with the options every command has: --version, -v, -q."""
    parser = _Parser(
        prog=prog,
        description=description,
        epilog=(epilog + "\n\n" if epilog else "") + EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s (stylecast) {package_version()}")
    noise = parser.add_mutually_exclusive_group()
    noise.add_argument("-v", "--verbose", action="store_true", help="debug logs, and tracebacks on errors")
    noise.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors; no progress bars")
    return parser


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (it may be replaced, e.g. by pytest)."""

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN201
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def whole_number(minimum: int, unit: str = "") -> Callable[[str], int]:
    """An argparse ``type``: a whole number of at least ``minimum`` (``unit`` names what it counts)."""

    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            n = minimum - 1
        if n < minimum:
            raise argparse.ArgumentTypeError(f"must be a whole number{unit} of at least {minimum}, got {text!r}")
        return n

    return parse


def number_between(low: float, high: float, *, include_low: bool = True) -> Callable[[str], float]:
    """An argparse ``type``: a number from ``low`` (or just above it) to ``high``; NaN never passes."""

    def parse(text: str) -> float:
        try:
            x = float(text)
        except ValueError:
            x = math.nan
        ok = (low <= x if include_low else low < x) and x <= high
        if not ok:
            what = f"between {low:g} and {high:g}" if include_low else f"above {low:g} and at most {high:g}"
            raise argparse.ArgumentTypeError(f"must be a number {what}, got {text!r}")
        return x

    return parse


def setup_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s" if not verbose else "%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("stylecast")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def run_command(
    parser: argparse.ArgumentParser,
    body: Callable[[argparse.Namespace], int | None],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse ``argv``, run ``body(args)`` and map what it raises to a message and an exit code."""
    args = parser.parse_args(argv)
    setup_logging(args.verbose, args.quiet)
    try:
        return int(body(args) or EXIT_OK)
    except StylecastError as exc:
        if args.verbose:
            traceback.print_exc()
        sys.stderr.write(f"error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the last line of defence, by design
        if args.verbose:
            traceback.print_exc()
            sys.stderr.write(f"error: internal error: {type(exc).__name__}: {exc}\n")
        else:
            sys.stderr.write(
                f"error: internal error: {type(exc).__name__}: {exc} (run with -v for the traceback)\n"
            )
        return EXIT_INTERNAL


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def entry_point(
    make: Callable[[], argparse.ArgumentParser], body: Callable[[argparse.Namespace], int | None]
) -> Callable[[Sequence[str] | None], int]:
    """Wrap a parser factory and a body into a console-script ``main(argv=None) -> int``."""

    def main(argv: Sequence[str] | None = None) -> int:
        if argv is None and threading.current_thread() is threading.main_thread():
            # A console script: SIGTERM (a service manager, `kill`, a session ending) stops the
            # command the way Ctrl-C does, so temporary outputs are removed and runs checkpoint.
            signal.signal(signal.SIGTERM, _interrupt)
            keep_freed_memory()  # the process is ours: reuse freed frame-sized buffers (see cpus.py)
        code = run_command(make(), body, argv)
        if argv is None:  # called as a console script
            raise SystemExit(code)
        return code

    return main
