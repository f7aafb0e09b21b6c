"""`python -m toolkit verify`: the tiny build's .pte artifacts on arm64 under qemu against the host,
the fallback on a qemu with the SMOPA bug, the bounds, and bad input.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import run_cli
from toolkit.core.errors import ToolkitError
from toolkit.profiler.qemu import Emulator, cpu_model, default_cpus, find_qemu
from toolkit.profiler.verify import INT8_MAX_SCORE_DIFF, compare

OLD_QEMU = Emulator(path=Path("qemu-aarch64"), version=(7, 2, 22), cpus=("cortex-a53", "cortex-a76", "max"))
NEW_QEMU = Emulator(path=Path("qemu-aarch64"), version=(10, 0, 2),
                    cpus=("cortex-a53", "cortex-a55", "cortex-a76", "max", "neoverse-v1"))


def pte_artifacts(build: Path) -> list[Path]:
    manifest = json.loads((build / "manifest.json").read_text())
    return [build / a["path"] for a in manifest["artifacts"] if a["format"] == "executorch"]


@pytest.fixture(scope="module")
def emulator() -> Emulator:
    """The toolchain verify needs; a test that cannot have it says which tool is missing."""
    missing = [tool for tool in ("cmake", "g++", "aarch64-linux-gnu-g++") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install cmake g++ g++-aarch64-linux-gnu)")
    try:
        return find_qemu()
    except ToolkitError as e:
        pytest.skip(str(e))


# --- the known-bad path and the bounds (no emulator needed) -------------------------------------------


def test_sme_is_switched_off_on_a_qemu_with_the_smopa_bug():
    old = cpu_model("max", OLD_QEMU)
    assert old.model == "max,sme=off" and "SMOPA" in old.note and "NOT verified" in old.note
    assert cpu_model("max,sme=on", OLD_QEMU).model == "max,sme=off"
    assert cpu_model("cortex-a76", OLD_QEMU).model == "cortex-a76" and not cpu_model("cortex-a76", OLD_QEMU).note
    new = cpu_model("max", NEW_QEMU)
    assert new.model == "max" and not new.note


def test_a_streaming_vector_above_512_bits_is_flagged():
    assert "crashed" in cpu_model("max,sme-default-vector-length=128", NEW_QEMU).note
    assert not cpu_model("max,sme-default-vector-length=64", NEW_QEMU).note


def test_unknown_cpu_lists_the_emulators_models():
    with pytest.raises(ToolkitError, match="cortex-a55.*valid: cortex-a53, cortex-a76, max"):
        cpu_model("cortex-a55", OLD_QEMU)


def test_default_cpus_are_the_profiles_core_and_the_sme_core():
    assert default_cpus("cortex-a55") == ["cortex-a55", "max"]
    assert default_cpus("") == ["max"]


def test_compare_counts_items_overlap_and_score_differences():
    a = '{"items": ["1", "2", "3"], "scores": [0.300000, 0.200000, 0.100000]}'
    b = '{"items": ["1", "3", "2"], "scores": [0.300000, 0.100500, 0.100000]}'
    same = compare([a, a], [a, a])
    assert same == {"items_identical": 1.0, "bytes_identical": 1.0, "top10_agreement": 1.0, "max_score_diff": 0.0}
    figures = compare([a, a], [a, b])
    assert figures["items_identical"] == 0.5 and figures["top10_agreement"] == 1.0
    assert figures["max_score_diff"] == pytest.approx(0.1) and figures["max_score_diff"] > INT8_MAX_SCORE_DIFF


# --- the real thing -----------------------------------------------------------------------------------


def test_every_pte_agrees_with_the_host_on_the_profiles_core_and_the_sme_core(emulator, tiny_build):
    result = run_cli("verify", *map(str, pte_artifacts(tiny_build)), "--json", timeout=900)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["agrees"] and report["emulator"] == f"qemu-aarch64 {emulator.version_text}"
    checks = report["checks"]
    assert {c["artifact"] for c in checks} == {p.name for p in pte_artifacts(tiny_build)}
    cpus = {c["cpu"] for c in checks}
    assert "cortex-a76" in cpus  # mobile-arm's hardware.cpu
    for c in checks:
        assert c["agrees"] and c["histories"] >= 20 and not c["error"], c
        if c["precision"] == "fp32":
            assert c["items_identical"] == 1.0, c
    sme = [c for c in checks if c["cpu"].startswith("max")]
    if emulator.smopa_ok:  # a fixed qemu runs XNNPACK's SME kernels and they agree
        assert all("sme" in c["features"] for c in sme) and all(c["cpu"] == "max" for c in sme)
    else:  # Debian 12's qemu 7.2: SME off, and said so
        assert all("sme" not in c["features"] and "NOT verified" in c["note"] for c in sme)
        assert "SMOPA" in result.stderr


def test_a_crashing_configuration_does_not_agree(emulator, tiny_build):
    """A streaming vector length XNNPACK's SME kernels do not handle: exit 1, the crash reported."""
    if not emulator.smopa_ok:
        pytest.skip(f"qemu {emulator.version_text} switches SME off (the SMOPA bug)")
    model = pte_artifacts(tiny_build)[0]
    result = run_cli("verify", str(model), "--cpu", "max,sme-default-vector-length=128", "--json", timeout=900)
    assert result.returncode == 1, result.stderr
    check = json.loads(result.stdout)["checks"][0]
    assert not check["agrees"] and check["error"]


def test_bad_input_exits_2_with_one_line(emulator, tiny_build, tmp_path):
    model = str(pte_artifacts(tiny_build)[0])
    (tmp_path / "stray.pte").write_bytes(b"x")
    cases = [[str(tiny_build / "model.fp32.onnx")], [str(tmp_path / "missing.pte")], [str(tmp_path / "stray.pte")],
             [model, "--cpu", "no-such-core"], [model, "--arch", "riscv64"], [model, "--qemu", str(tmp_path / "none")]]
    for args in cases:
        result = run_cli("verify", *args, timeout=300)
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and result.stdout == "", (args, result.stderr)


def test_importing_native_and_verify_stays_light():
    """The profiler imports toolkit.profiler.native at module level: no numpy, torch or runtimes on import."""
    import subprocess
    import sys

    code = ("import sys, toolkit.profiler.native, toolkit.profiler.onnx_client, toolkit.profiler.verify; "
            "print([m for m in ('torch', 'executorch', 'onnxruntime', 'numpy') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent.parent, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"
