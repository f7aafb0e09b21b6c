"""The one error type for bad user input; the CLI turns it into one line and exit code 2."""


class ToolkitError(Exception):
    """Bad input or usage: the message names the file, field or flag and what is valid."""


class DoesNotFitError(Exception):
    """The build finished but an artifact misses its profile's budget (exit code 1)."""
