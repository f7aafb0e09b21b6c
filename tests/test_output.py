"""The build directory (toolkit/recipe/output.py): a user's folder is never moved or deleted, a build is
swapped in atomically with normal permissions, and a killed run's leftovers are recovered."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli
from toolkit.core.errors import ToolkitError
from toolkit.recipe.output import MARKER, is_build, prepare_output, write_marker


def _web_app(folder: Path) -> dict[str, bytes]:
    """A web app's public/ folder, with a PWA manifest.json: what a new user gave as --out."""
    files = {"index.html": b"<html>app</html>", "img/logo.png": b"\x89PNG...", "manifest.json": b'{"name": "My PWA"}'}
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return files


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_users_folder_is_refused_and_untouched(tmp_path):
    public = tmp_path / "public"
    _web_app(public)
    before = _snapshot(public)
    with pytest.raises(ToolkitError, match="holds files the toolkit did not write"):
        prepare_output(public, [], log=lambda *_: None)
    assert _snapshot(public) == before and not is_build(public)


def test_the_cli_refuses_it_before_anything_is_trained(tmp_path):
    """Exit 2 in the first second: torch is never imported (a sitecustomize makes importing it fail)."""
    public = tmp_path / "public"
    _web_app(public)
    before = _snapshot(public)
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text("import sys\nsys.modules['torch'] = None  # importing torch now fails\n")
    env = {**os.environ, "PYTHONPATH": f"{blocker}{os.pathsep}{ROOT}"}
    data = tmp_path / "d.csv"
    data.write_text("user,item,timestamp\n1,2,3\n")
    for out in (str(public), "/", ".", str(tmp_path)):  # a user's folder, the root, the cwd, the data's parent
        done = subprocess.run([sys.executable, "-m", "toolkit", "build", "--out", out, "--data", str(data)],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, (out, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: --out {out}:"), done.stderr
    assert _snapshot(public) == before and data.read_text() == "user,item,timestamp\n1,2,3\n"
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "../x"\n')
    done = subprocess.run([sys.executable, "-m", "toolkit", "build", "--profile", str(bad), "--out", str(tmp_path / "b")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "invalid profile" in done.stderr and not (tmp_path / "b").exists(), done.stderr


def test_out_may_not_contain_the_data_or_the_current_directory(tmp_path, monkeypatch):
    data = tmp_path / "logs" / "events.csv"
    data.parent.mkdir()
    data.write_text("user,item,ts\n")
    for out in (tmp_path / "logs", tmp_path):
        with pytest.raises(ToolkitError, match="replacing it would remove"):
            prepare_output(out, [data], log=lambda *_: None)
    monkeypatch.chdir(tmp_path / "logs")
    with pytest.raises(ToolkitError, match="the current directory"):
        prepare_output(Path("."), [], log=lambda *_: None)
    with pytest.raises(ToolkitError, match="filesystem root"):
        prepare_output(Path("/"), [], log=lambda *_: None)
    # inside the data's folder is fine: the build goes into its own subfolder
    out = prepare_output(tmp_path / "logs" / "build", [data], log=lambda *_: None)
    out.release()
    assert data.read_text() == "user,item,ts\n"


def test_install_swaps_atomically_with_normal_permissions(tmp_path):
    target = tmp_path / "builds" / "phone"
    out = prepare_output(target, [], log=lambda *_: None)
    first = out.staging("test", "phone")
    (first / "model.pte").write_bytes(b"old")
    out.install(first)
    mode = stat.S_IMODE(target.stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o777 & ~umask, oct(mode)  # not mkdtemp's 0700: a web server can read the artifacts
    second = out.staging("test", "phone")
    (second / "model.pte").write_bytes(b"new")
    out.install(second)
    out.release()
    assert (target / "model.pte").read_bytes() == b"new" and is_build(target)
    assert sorted(p.name for p in target.parent.iterdir()) == [".phone.lock", "phone"]  # nothing left behind


def test_a_killed_runs_leftovers_are_recovered_and_logged(tmp_path):
    target = tmp_path / "phone"
    old = tmp_path / ".phone.old"  # killed between the two renames of a non-atomic swap
    old.mkdir()
    write_marker(old, "test", "phone")
    (old / "model.pte").write_bytes(b"previous")
    dead = tmp_path / ".phone.staging-999999-abcd"
    dead.mkdir()
    write_marker(dead, "test", "phone")
    foreign = tmp_path / ".phone.staging-not-ours"  # not written by the toolkit: never removed
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    lines = []
    out = prepare_output(target, [], log=lines.append)
    out.release()
    assert (target / "model.pte").read_bytes() == b"previous" and not old.exists() and not dead.exists()
    assert (foreign / "notes.txt").read_text() == "mine"
    assert any("recovered the previous build" in x for x in lines) and any("staging folder" in x for x in lines)


def test_two_builds_never_write_one_folder_at_once(tmp_path):
    first = prepare_output(tmp_path / "phone", [], log=lambda *_: None)
    with pytest.raises(ToolkitError, match="another build is writing it"):
        prepare_output(tmp_path / "phone", [], log=lambda *_: None)
    first.release()
    prepare_output(tmp_path / "phone", [], log=lambda *_: None).release()


def test_a_build_of_the_previous_release_is_still_recognised(tmp_path):
    legacy = tmp_path / "mobile-arm"
    legacy.mkdir()
    (legacy / "manifest.json").write_text(json.dumps({"toolkit_version": "0.1.0", "artifacts": []}))
    for name in ("model.fp32.pte", "items.json", "report.md"):
        (legacy / name).write_text("x")
    assert is_build(legacy)
    (legacy / "index.html").write_text("<html>")
    assert not is_build(legacy)
    assert MARKER.startswith(".")


def test_unwritable_out_fails_at_once(tmp_path):
    if os.geteuid() == 0:
        locked = Path("/proc/edge-rec-build")  # root may write anywhere else
    else:
        locked = tmp_path / "ro" / "build"
        locked.parent.mkdir()
        locked.parent.chmod(0o500)
    result = run_cli("build", "--out", str(locked), timeout=60)
    assert result.returncode == 2 and "--out" in result.stderr and "Traceback" not in result.stderr, result.stderr
