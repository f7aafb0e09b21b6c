"""The teacher kinds are listed once (`toolkit.teachers.KINDS`): each is a `Teacher`, an unknown kind is
a one-line error naming them all, the CLI's help and choices are read from the registry, and the
teachers' room imports neither the recipe nor (on import) numpy or torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from toolkit import teachers
from toolkit.core.errors import ToolkitError
from toolkit.teachers.ensemble import TeacherConfig

ROOT = Path(__file__).resolve().parents[1]


def test_every_kind_satisfies_the_protocol_and_an_incomplete_one_does_not():
    assert list(teachers.KINDS) == ["ensemble", "kg", "external", "scores"]
    for name, kind in teachers.KINDS.items():
        assert isinstance(kind, teachers.Teacher), name
        assert kind.flag in ("--teacher", "--teacher-scores") and kind.phases[0] == "valid"

    class NoObtain:
        flag, value, summary, trainable, plain_members, phases = "--teacher", "x", "x", False, False, ("valid",)

        def check(self, cfg, data_path):
            pass

        def inputs(self, cfg):
            return []

    assert not isinstance(NoObtain(), teachers.Teacher)


def test_an_unknown_kind_is_one_line_listing_the_registry():
    with pytest.raises(ToolkitError) as e:
        teachers.check(TeacherConfig(kind="transformer"), None)
    message = str(e.value)
    assert "\n" not in message and message.startswith("TeacherConfig.kind 'transformer': not valid; valid: ")
    assert all(f"{name} ({k.flag} {k.value})" in message for name, k in teachers.KINDS.items())
    for call in (teachers.phases, teachers.inputs):
        with pytest.raises(ToolkitError, match="not valid; valid: ensemble"):
            call(TeacherConfig(kind="transformer"))


def test_an_unknown_kind_stops_the_build_before_anything_loads(tmp_path):
    from toolkit.recipe.build import BuildConfig, prepare

    with pytest.raises(ToolkitError, match="TeacherConfig.kind 'gbdt': not valid"):
        prepare(BuildConfig(out=tmp_path / "out", teacher=TeacherConfig(kind="gbdt")), log=lambda *_: None)
    assert not (tmp_path / "out").exists()


def test_what_each_kind_is_measured_on_and_reads(tmp_path):
    scores = tmp_path / "s.parquet"
    assert teachers.phases(TeacherConfig(kind="scores", scores=str(scores))) == ("valid",)
    assert teachers.phases(TeacherConfig()) == ("valid", "test") == teachers.phases(TeacherConfig(kind="kg"))
    assert teachers.inputs(TeacherConfig(kind="scores", scores=str(scores))) == [scores]
    kg = TeacherConfig(kind="kg", kg_triples=str(tmp_path / "t"), kg_links=str(tmp_path / "l"))
    assert teachers.inputs(kg) == [tmp_path / "t", tmp_path / "l"] and teachers.inputs(TeacherConfig()) == []
    assert teachers.trainable() == ["ensemble", "kg"] and teachers.named() == ["ensemble", "kg"]
    assert teachers.picked_by("--teacher") == "external" and teachers.picked_by("--teacher-scores") == "scores"


def test_the_cli_reads_the_registry(monkeypatch):
    from toolkit.cli.commands import teacher_config
    from toolkit.cli.parser import make_parser

    parser = make_parser()
    help_text = " ".join(parser._subparsers._group_actions[0].choices["build"].format_help().split())
    assert all(f"{k.value} ({k.summary})" in help_text for k in teachers.KINDS.values() if k.flag == "--teacher")
    with pytest.raises(ToolkitError, match="choose from 'ensemble', 'kg'"):  # train-teacher: the trainable kinds
        parser.parse_args(["train-teacher", "--teacher", "MODULE:FACTORY"])
    # a kind added to the registry is picked by its name and trained by train-teacher: no other list
    monkeypatch.setitem(teachers.KINDS, "wide", replace_kind(teachers.KINDS["ensemble"], value="wide"))
    args = make_parser().parse_args(["train-teacher", "--teacher", "wide"])
    assert teacher_config(args, TeacherConfig()).kind == "wide"


def test_train_teacher_refuses_a_kind_it_does_not_train(tmp_path):
    scores = tmp_path / "s.parquet"
    scores.write_bytes(b"PAR1")

    def load():
        raise AssertionError("nothing is loaded for a kind train-teacher does not train")

    with pytest.raises(ToolkitError) as e:
        teachers.train_only(TeacherConfig(kind="scores", scores=str(scores)), None, load, 50, 0)
    assert "\n" not in str(e.value) and "(ensemble, kg)" in str(e.value) and "--teacher-scores" in str(e.value)


def test_the_teachers_room_is_light_and_never_imports_upward():
    code = "import sys, toolkit.teachers; print(sorted(m for m in ('numpy', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr
    for path in (ROOT / "toolkit" / "teachers").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.startswith(("toolkit.recipe", "toolkit.cli", "toolkit.api")) for n in names), path


def replace_kind(kind, **changes):
    """A copy of a kind's instance with some attributes changed (a new kind for the registry)."""
    copy = type(kind)()
    for name, value in changes.items():
        setattr(copy, name, value)
    return copy
