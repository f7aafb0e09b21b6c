"""The one error type for bad user input; the CLI turns it into one line and exit code 2.

`one_line_exit` is that turn (and Ctrl-C's), shared by `python -m toolkit` and `python -m runtime_demo`;
the toolkit's CLI adds its own answers (does not fit, SIGTERM, internal errors).
"""

from __future__ import annotations

import sys

EXIT_BAD_INPUT = 2  # shared/DESIGN.md's exit codes: bad input or usage
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C)


class ToolkitError(Exception):
    """Bad input or usage: the message names the file, field or flag and what is valid."""


class DoesNotFitError(Exception):
    """The build finished but an artifact misses its profile's budget (exit code 1)."""


def one_line_exit(error: ToolkitError | KeyboardInterrupt) -> int:
    """What a command line answers to bad input or Ctrl-C: one line on stderr (`error: ...` or
    `interrupted`), and the exit code to return (EXIT_BAD_INPUT or EXIT_INTERRUPTED)."""
    if isinstance(error, KeyboardInterrupt):
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"error: {error}", file=sys.stderr)
    return EXIT_BAD_INPUT
