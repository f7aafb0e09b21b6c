"""toolkit/errors.py: the one-line answer the command lines give to bad input and to Ctrl-C."""

from __future__ import annotations

import pytest

from toolkit.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, ToolkitError, one_line_errors


def raising(error: BaseException):
    def body() -> int:
        raise error
    return body


def test_bad_input_is_one_line_and_exit_2(capsys):
    assert one_line_errors(raising(ToolkitError("--model x.pte: no such file"))) == EXIT_BAD_INPUT == 2
    assert capsys.readouterr().err == "error: --model x.pte: no such file\n"


def test_ctrl_c_is_interrupted_and_exit_130(capsys):
    assert one_line_errors(raising(KeyboardInterrupt())) == EXIT_INTERRUPTED == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_the_body_s_exit_code_is_returned_and_a_bug_propagates(capsys):
    assert one_line_errors(lambda: 1) == 1
    with pytest.raises(ZeroDivisionError):
        one_line_errors(lambda: 1 // 0)
    assert capsys.readouterr().err == ""
