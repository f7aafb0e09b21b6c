"""Device profiles: every shipped profile validates (parametrized from the registry), bad profiles
report every problem with file and field (exit 2), and names never leave the profiles folder."""

from __future__ import annotations

import re

import pytest

from tests.conftest import run_cli
from toolkit.core.errors import ToolkitError
from toolkit.core.profiles import FORMATS, PROFILES_DIR, list_profiles, load_profile, resolve_profile_path


@pytest.mark.parametrize("name", list_profiles())
def test_shipped_profile_validates(name):
    profile = load_profile(name)
    assert profile.name == name, "a profile's name must match its file name"
    assert profile.description
    assert set(profile.serving.formats) <= set(FORMATS)
    assert profile.budget.model_bytes > 0 and profile.budget.memory_bytes > 0 and profile.budget.latency_ms > 0
    text = (PROFILES_DIR / f"{name}.toml").read_text()
    basis = [line for line in text.splitlines() if line.startswith("#")]
    assert len(basis) >= 3, f"{name}.toml: the comment citing what its numbers are based on is missing"


def test_the_issue_s_devices_are_shipped():
    names = set(list_profiles())
    assert len(names) >= 6
    assert {"mobile-arm", "mobile-arm-lowend", "mobile-ios", "raspberry-pi-4", "browser-wasm"} <= names
    assert load_profile("browser-wasm").serving.formats == ("onnx",)
    lowend = load_profile("mobile-arm-lowend")
    assert lowend.hardware.threads == 1
    assert lowend.budget.memory_bytes < load_profile("mobile-arm").budget.memory_bytes
    assert any(not load_profile(n).hardware.int8 for n in names), "one profile must lack fast int8"


def test_bad_profile_reports_every_problem_with_file_and_field(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n[budget]\nmodel_bytes = -1\nmemory_bytes = "big"\n'
                   '[hardware]\nint8 = 1\nthreads = 2\ngflops = 3.0\nturbo = true\n'
                   '[serving]\nmax_history = 50\ntop_k = 20\nformats = ["tflite"]\n')
    with pytest.raises(ToolkitError) as e:
        load_profile(str(bad))
    message = str(e.value)
    for fragment in (str(bad), "description", "budget.model_bytes", "budget.memory_bytes", "budget.latency_ms",
                     "hardware.int8", "hardware.turbo", "serving.formats"):
        assert fragment in message


def test_bad_profile_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    for args in (["profile", "x.onnx", "--profile", str(bad)], ["calibrate", "--profile", str(bad)],
                 ["profile", "x.onnx", "--profile", "no-such-device"]):
        result = run_cli(*args, timeout=60)
        assert result.returncode == 2, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert "mobile-arm" in result.stderr, "an unknown name lists the valid ones"


@pytest.mark.parametrize("name", ["..", ".", "../mobile-arm", "mobile-arm/..", "~", "", "MOBILE-ARM", "mobile-arm "])
def test_names_never_escape_the_profiles_folder(name):
    # a bare name must be one of list_profiles(); anything with a "/" is a path and must be a .toml file
    with pytest.raises(ToolkitError):
        resolve_profile_path(name)


def test_a_bare_name_resolves_inside_the_folder():
    for name in list_profiles():
        assert resolve_profile_path(name).resolve().parent == PROFILES_DIR.resolve()


def test_profiles_command_lists_every_profile_with_budgets():
    from toolkit.core.units import format_bytes

    result = run_cli("profiles", timeout=60)
    assert result.returncode == 0, result.stderr
    for name in list_profiles():
        line = next(line for line in result.stdout.splitlines() if line.startswith(name + " "))
        assert format_bytes(load_profile(name).budget.model_bytes) in line  # in the unit that fits (toolkit.core.units)


@pytest.mark.parametrize("field,value,message", [
    ("name", '"../../x"', "not a plain name"),
    ("name", '"Phone 2"', "not a plain name"),
    ("model_bytes", "nan", "expected int"),
    ("latency_ms", "nan", "finite"),
    ("latency_ms", "inf", "finite"),
    ("latency_ms", "0.0", "must be positive"),
    ("gflops", "-inf", "finite"),
    ("gflops", "0", "must be positive"),
    ("threads", "0", "must be positive"),
    ("top_k", "0", "must be positive"),
    ("cpu", '"cortex a76"', "not a CPU model name"),
])
def test_every_bad_value_is_named(tmp_path, field, value, message):
    text = (PROFILES_DIR / "mobile-arm.toml").read_text()
    lines = []
    for line in text.splitlines():
        key = line.split("=")[0].strip()
        lines.append(f"{key} = {value}" if key == field else line)
    bad = tmp_path / "bad.toml"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(ToolkitError, match=message):
        load_profile(str(bad))


def test_every_problem_is_reported_at_once(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "../x"\ndescription = "d"\nextra = 1\n[budget]\nmodel_bytes = 0\nmemory_bytes = 1\n'
                   'latency_ms = nan\n[hardware]\nint8 = true\nthreads = 1\ngflops = inf\n'
                   '[serving]\nmax_history = 50\ntop_k = 20\nformats = ["onnx", "onnx"]\n')
    with pytest.raises(ToolkitError) as e:
        load_profile(str(bad))
    for fragment in ("name:", "extra:", "budget.model_bytes", "budget.latency_ms", "hardware.gflops", "serving.formats"):
        assert fragment in str(e.value), fragment


def test_a_small_top_k_is_allowed():
    from toolkit.core.profiles import parse_profile

    raw = {"name": "widget-5", "description": "five slots",
           "budget": {"model_bytes": 10_000, "memory_bytes": 10_000_000, "latency_ms": 5.0},
           "hardware": {"int8": True, "threads": 1, "gflops": 4.0},
           "serving": {"max_history": 20, "top_k": 5, "formats": ["onnx"]}}
    assert parse_profile(raw, "w.toml").serving.top_k == 5


@pytest.mark.parametrize("value, formats, message", [
    ('"maybe"', '["onnx"]', "serving.web_runtime: 'maybe' not valid; valid: counted, cached"),
    ('"cached"', '["executorch", "onnx"]', "serving.web_runtime: a browser profile serves only onnx"),
    ("true", '["onnx"]', "serving.web_runtime: expected str"),
])
def test_web_runtime_is_validated(tmp_path, value, formats, message):
    text = (PROFILES_DIR / "browser-wasm.toml").read_text()
    text = "\n".join(f"web_runtime = {value}" if line.startswith("web_runtime") else
                     f"formats     = {formats}" if line.startswith("formats") else line for line in text.splitlines())
    bad = tmp_path / "bad.toml"
    bad.write_text(text + "\n")
    with pytest.raises(ToolkitError, match=re.escape(message)):
        load_profile(str(bad))


def test_browser_profiles_say_whether_the_runtime_download_counts():
    """Each browser profile (onnx only, a web page) states where the runtime comes from; app profiles do not."""
    for name in ("browser-wasm", "web-widget"):
        assert load_profile(name).serving.web_runtime in ("counted", "cached"), name
    assert load_profile("mobile-arm").serving.web_runtime == ""
