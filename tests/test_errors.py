"""toolkit/core/errors.py: the one-line answer both command lines give to bad input and to Ctrl-C."""

from __future__ import annotations

from toolkit.core.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, ToolkitError, one_line_exit


def test_bad_input_is_one_line_and_exit_2(capsys):
    assert one_line_exit(ToolkitError("--model x.pte: no such file")) == EXIT_BAD_INPUT == 2
    assert capsys.readouterr().err == "error: --model x.pte: no such file\n"


def test_ctrl_c_is_interrupted_and_exit_130(capsys):
    assert one_line_exit(KeyboardInterrupt()) == EXIT_INTERRUPTED == 130
    assert capsys.readouterr().err == "interrupted\n"
