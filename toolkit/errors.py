"""The one error type for bad user input; the CLI turns it into one line and exit code 2.

`one_line_errors` is that turn, shared by the command lines (`python -m runtime_demo`; `python -m
toolkit`'s main answers the same errors alike, plus its own: does not fit, SIGTERM, internal errors).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

EXIT_BAD_INPUT = 2  # shared/DESIGN.md's exit codes: bad input or usage
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C)


class ToolkitError(Exception):
    """Bad input or usage: the message names the file, field or flag and what is valid."""


class DoesNotFitError(Exception):
    """The build finished but an artifact misses its profile's budget (exit code 1)."""


def one_line_errors(body: Callable[[], int]) -> int:
    """Run a command line's body and return its exit code; bad input (`ToolkitError`) is one line
    `error: ...` on stderr and EXIT_BAD_INPUT, Ctrl-C is `interrupted` and EXIT_INTERRUPTED. Anything
    else is a bug and propagates."""
    try:
        return body()
    except ToolkitError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
