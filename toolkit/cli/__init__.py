"""Command line: `python -m toolkit {build,train-teacher,teacher-scores,profiles,profile,calibrate,verify} ...`.

The CLI only overrides dataclass fields; defaults live in the dataclasses (BuildConfig in
toolkit/recipe/build.py and the configs it holds). Exit codes: 0 success and fits, 1 built but
does not fit, 2 bad input or usage (one line on stderr, no traceback), 3 internal error (one line
naming the step, the traceback written to a log file in the cache), 130 interrupted (SIGINT),
143 terminated (SIGTERM).

The parser is toolkit/cli/parser.py, the commands toolkit/cli/commands.py; `main` runs one.
"""

from __future__ import annotations

import signal
import sys

from toolkit.cli.commands import COMMANDS, EXIT_DOES_NOT_FIT, EXIT_INTERNAL, EXIT_TERMINATED
from toolkit.cli.parser import make_parser
from toolkit.core.errors import DoesNotFitError, ToolkitError, one_line_exit


class Terminated(BaseException):
    """SIGTERM, raised like KeyboardInterrupt so every cleanup runs (staging removed, lock released)."""


def main(argv: list[str] | None = None) -> int:
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
        # Ctrl-C / SIGINT interrupts even when the parent started us with it ignored (a shell's
        # background job): the build must clean its staging folder either way
        previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    except ValueError:  # not the main thread (an embedding app): leave the signals alone
        previous = previous_int = None
    args = None
    try:
        args = make_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except (ToolkitError, KeyboardInterrupt) as e:
        return one_line_exit(e)
    except DoesNotFitError as e:
        print(f"does not fit: {e}", file=sys.stderr)
        return EXIT_DOES_NOT_FIT
    except Terminated:
        print("terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except Exception as e:  # a bug, not bad input: one line, the traceback in a log file
        where = getattr(e, "toolkit_step", None)
        log = _write_traceback(e, args)
        what = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e).strip() else ''}".rstrip(": ")
        print(f"internal error{f' in step {where}' if where else ''}: {what} (traceback: {log})", file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, previous_int)


def _terminate(signum, frame) -> None:
    raise Terminated()


def _write_traceback(error: BaseException, args) -> str:
    """Write the full traceback to <cache>/logs/ and return the file's path (or why it could not be written)."""
    import time
    import traceback

    from toolkit.core.cache import cache_dir

    try:
        folder = cache_dir() / "logs"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{getattr(args, 'command', 'toolkit')}.log"
        path.write_text(f"python -m toolkit {' '.join(sys.argv[1:])}\nstep: {getattr(error, 'toolkit_step', '?')}\n\n"
                        + "".join(traceback.format_exception(error)))
        return str(path)
    except OSError as e:
        return f"not written: {e.strerror}"
