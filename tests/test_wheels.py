"""toolkit/core/wheels.py: a pinned wheel downloaded with pip (the real RecBole wheel), checked, unpacked atomically."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from toolkit.data import ML100K_ZIP_DIR, RECBOLE_WHEEL, RECBOLE_WHEEL_SHA256
from toolkit.core.wheels import WheelError, unpack_wheel


def take_inter(zf: zipfile.ZipFile, staging: Path) -> None:
    (staging / "ml-100k.inter").write_bytes(zf.read(ML100K_ZIP_DIR + "ml-100k.inter"))


def test_a_pinned_wheel_replaces_an_incomplete_folder(tmp_path):
    target = tmp_path / "cache" / "ml"
    target.mkdir(parents=True)
    (target / "half-written").write_text("")
    assert unpack_wheel(RECBOLE_WHEEL, target, take_inter, sha256=RECBOLE_WHEEL_SHA256) == target
    assert [p.name for p in target.iterdir()] == ["ml-100k.inter"]
    assert (target / "ml-100k.inter").read_text().startswith("user_id:token")
    assert [p.name for p in target.parent.iterdir()] == ["ml"], "no staging folder left behind"


def test_a_wrong_sha256_is_named_and_nothing_is_written(tmp_path):
    target = tmp_path / "cache" / "ml"
    with pytest.raises(WheelError, match=r"recbole-1\.2\.1-py3-none-any\.whl has sha256 [0-9a-f]{64}, expected 0{64}"):
        unpack_wheel(RECBOLE_WHEEL, target, take_inter, sha256="0" * 64)
    assert not target.parent.exists() or list(target.parent.iterdir()) == []


def test_a_failed_download_names_the_requirement_and_the_command(tmp_path):
    with pytest.raises(WheelError, match=r"could not download recbole==0\.0\.0\.1 from PyPI \(") as e:
        unpack_wheel("recbole==0.0.0.1", tmp_path / "t", take_inter)
    assert e.value.command.startswith("pip download recbole==0.0.0.1") and e.value.reason
    assert not (tmp_path / "t").exists()
