"""The C++ client (runtime_demo/cpp) on the tiny real build: built with CMake against the installed
executorch wheel, it gives the Python demo's answers for every .pte, rejects bad input in one line,
serves a benchmark, and the kernel/backend registration it depends on is what the guide says.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from runtime_demo.histories import sample_histories
from runtime_demo.recommend import Recommender, format_json
from toolkit.core.errors import ToolkitError
from toolkit.profiler.native import SOURCE_DIR, NativeClient, Target, build_client, installed_executorch_dir, native_client

AGREEMENT_HISTORIES = 24
PRINT_TOLERANCE = 5e-6  # a few steps of the 6th decimal: the BLAS differs (see the test below)
EM_AARCH64 = 183
MAX_NATIVE_PEAK_RSS = 64 * 2**20  # the whole C++ process serving a ~100 KB model: ~10 MB measured


def pte_artifacts(build: Path) -> list[Path]:
    """Every .pte of the build, from its manifest (file names are not parsed)."""
    manifest = json.loads((build / "manifest.json").read_text())
    found = [build / a["path"] for a in manifest["artifacts"] if a["format"] == "executorch"]
    assert len(found) >= 2, manifest["artifacts"]
    return found


@pytest.fixture(scope="module")
def client(cache_dir) -> NativeClient:
    missing = [tool for tool in ("cmake", "g++") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install cmake g++)")
    messages: list[str] = []
    built = native_client(log=messages.append)
    assert built is not None, messages
    return built


@pytest.fixture(scope="module")
def histories(movielens) -> list[list[str]]:
    real = sample_histories(movielens, AGREEMENT_HISTORIES - 3, seed=3)
    longest = max(([movielens.item_ids[i] for i in s] for s in movielens.sequences), key=len)
    return real + [[], ["no-such-item", real[0][0], "unicode-\u00e9-\U0001f600"], longest]


def torch_blas() -> dict[str, str]:
    """LD_PRELOAD of torch's CPU library: its MKL `sgemm_` then wins, as it does in a Python process."""
    import torch

    return {"LD_PRELOAD": str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so")}


# --- agreement with the Python demo ------------------------------------------------------------------


def test_every_pte_gives_the_python_demos_answers(client, tiny_build, histories):
    """Item for item on every history; the JSON byte for byte once both use the same BLAS.

    In a Python process ExecuTorch's optimized `aten::mm` binds `sgemm_` to torch's MKL (loaded
    first), while an app (and this client) gets the runtime's own; a program with matmuls outside
    XNNPACK (the compressed one) can then differ in the last printed digit, never in the items.
    """
    for model in pte_artifacts(tiny_build):
        python = Recommender(model)
        expected = [format_json(python.recommend(h)) for h in histories]
        got = client.recommend(model, histories)
        for want, have, history in zip(expected, got, histories):
            w, h = json.loads(want), json.loads(have)
            assert h["items"] == w["items"], (model.name, history)
            assert h["scores"] == pytest.approx(w["scores"], abs=PRINT_TOLERANCE), model.name
        same_blas = NativeClient(binary=client.binary, target=client.target,
                                 executorch_version=client.executorch_version, env=torch_blas())
        assert same_blas.recommend(model, histories) == expected, model.name


def test_single_history_prints_what_the_python_demo_prints(client, tiny_build, histories):
    model = pte_artifacts(tiny_build)[0]
    history = ["zzz-unknown", *histories[1]]
    cpp = subprocess.run(client.command("--model", str(model), "--history", ",".join(history), "--json"),
                         capture_output=True, text=True, timeout=60)
    python = subprocess.run([sys.executable, "-m", "runtime_demo", "--model", str(model), "--history", ",".join(history),
                             "--json"], capture_output=True, text=True, timeout=120, cwd=SOURCE_DIR.parent.parent)
    assert cpp.returncode == python.returncode == 0, (cpp.stderr, python.stderr)
    assert cpp.stdout == python.stdout
    assert cpp.stderr == python.stderr == "warning: skipped 1 unknown item id(s) not in items.json: zzz-unknown\n"
    table = subprocess.run(client.command("--model", str(model), "--history", ",".join(history)),
                           capture_output=True, text=True, timeout=60)
    assert table.returncode == 0 and "rank  item" in table.stdout
    assert all(item in table.stdout for item in json.loads(cpp.stdout)["items"])


def test_keeps_at_most_the_manifests_top_k(client, tiny_build, tmp_path, histories):
    """The model may return more candidates than top_k: the client keeps top_k after filtering."""
    model = pte_artifacts(tiny_build)[0]
    full = [json.loads(line)["items"] for line in client.recommend(model, histories)]
    manifest = json.loads((tiny_build / "manifest.json").read_text())
    manifest["profile"]["serving"]["top_k"] = 5
    capped = tmp_path / "capped"
    capped.mkdir()
    shutil.copy(model, capped / model.name)
    shutil.copy(tiny_build / "items.json", capped / "items.json")
    (capped / "manifest.json").write_text(json.dumps(manifest))
    answers = [json.loads(line)["items"] for line in client.recommend(capped / model.name, histories)]
    assert answers == [items[:5] for items in full]
    (capped / "manifest.json").unlink()  # no manifest: every answer the model gives, filtered
    every = [json.loads(line)["items"] for line in client.recommend(capped / model.name, histories)]
    assert [items[:len(f)] for items, f in zip(every, full)] == full  # the manifest's top_k is their head
    assert sum(len(items) for items in every) > sum(len(f) for f in full)  # more candidates than top_k
    python = Recommender(capped / model.name)
    assert [python.recommend(h).items for h in histories] == every


# --- bad input ---------------------------------------------------------------------------------------


def test_bad_input_exits_2_with_one_line(client, tiny_build, tmp_path):
    model = pte_artifacts(tiny_build)[0]
    (tmp_path / "garbage.pte").write_bytes(b"not a program")
    shutil.copy(tiny_build / "items.json", tmp_path / "items.json")
    (tmp_path / "truncated.pte").write_bytes(model.read_bytes()[:2000])
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    shutil.copy(model, lonely / "model.pte")
    broken_manifest = tmp_path / "broken"
    broken_manifest.mkdir()
    shutil.copy(model, broken_manifest / "model.pte")
    shutil.copy(tiny_build / "items.json", broken_manifest / "items.json")
    (broken_manifest / "manifest.json").write_text('{"profile": {"serving": {"top_k": 0}}}')
    (tmp_path / "bad.jsonl").write_text('["1", "2"]\n{"not": "a list"}\n')
    cases = [
        ["--model", str(tmp_path / "missing.pte"), "--history", "1"],
        ["--model", str(tmp_path / "garbage.pte"), "--history", "1"],
        ["--model", str(tmp_path / "truncated.pte"), "--history", "1"],
        ["--model", str(tiny_build / "model.fp32.onnx"), "--history", "1"],
        ["--model", str(lonely / "model.pte"), "--history", "1"],
        ["--model", str(broken_manifest / "model.pte"), "--history", "1"],
        ["--model", str(model), "--history", "1,,2"],
        ["--model", str(model), "--histories", str(tmp_path / "bad.jsonl")],
        ["--model", str(model), "--bench", "10"],
        ["--model", str(model), "--history", "1", "--threads", "0"],
        ["--model", str(model)],
        ["--history", "1"],
        ["--model", str(model), "--history", "1", "--colour"],
    ]
    for args in cases:
        result = subprocess.run(client.command(*args), capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, result.stderr)
        assert result.stdout == "", args


# --- benchmark mode (the profiler's native figures) ------------------------------------------------


@pytest.mark.parametrize("threads", [1, 2])
def test_bench_reports_the_whole_process(client, tiny_build, threads):
    reference = np.load(tiny_build / "reference.npz")["history"][:16]
    for model in pte_artifacts(tiny_build):
        bench = client.bench(model, reference, threads=threads, runs=50, warmup=5)
        assert bench.threads == threads and bench.runs == 50 and len(bench.samples_ms) == 50
        assert all(s > 0 for s in bench.samples_ms)
        assert 0 < bench.rss_before_load_bytes <= bench.rss_after_load_bytes <= bench.peak_rss_bytes
        assert bench.peak_rss_bytes < MAX_NATIVE_PEAK_RSS, bench


# --- building ------------------------------------------------------------------------------------------


def test_build_is_cached_and_needs_no_toolchain_to_say_so(client, tmp_path, monkeypatch):
    again = native_client()
    assert again is not None and again.binary == client.binary
    monkeypatch.setenv("PATH", str(tmp_path))  # no cmake, no g++
    monkeypatch.setenv("TOOLKIT_CACHE_DIR", str(tmp_path / "cache"))
    messages: list[str] = []
    assert native_client(log=messages.append) is None
    assert messages and "not found" in messages[0] and "apt-get install cmake" in messages[0]


def test_registration_libraries_are_what_the_guide_says(client, tiny_build, tmp_path):
    """Without the quantized kernels the int8 programs fail to load with the operator's name (fp32
    still runs); linked by bare path under --as-needed, the registration-only libraries are dropped
    and even fp32 fails: the backend never registered. The package's retention wrappers prevent that.
    """
    manifest = json.loads((tiny_build / "manifest.json").read_text())
    fp32 = next(tiny_build / a["path"] for a in manifest["artifacts"] if a["format"] == "executorch" and a["precision"] == "fp32")
    int8 = next(tiny_build / a["path"] for a in manifest["artifacts"] if a["format"] == "executorch" and a["precision"] != "fp32")
    prefix = installed_executorch_dir()

    no_quantized = tmp_path / "no-quantized"
    for step in (["cmake", "-S", str(SOURCE_DIR), "-B", str(no_quantized), f"-DCMAKE_PREFIX_PATH={prefix}",
                  "-DRECOMMEND_WITHOUT_QUANTIZED_KERNELS=ON", "-DCMAKE_EXE_LINKER_FLAGS=-Wl,--as-needed"],
                 ["cmake", "--build", str(no_quantized)]):
        assert subprocess.run(step, capture_output=True, text=True, timeout=600).returncode == 0, step
    run = lambda binary, model: subprocess.run([str(binary), "--model", str(model), "--history", "1", "--json"],  # noqa: E731
                                               capture_output=True, text=True, timeout=60)
    assert run(no_quantized / "recommend", fp32).returncode == 0  # --as-needed is harmless with the wrappers
    failed = run(no_quantized / "recommend", int8)
    assert failed.returncode == 2 and "quantized_decomposed::embedding_byte.out" in failed.stderr, failed.stderr

    lib = prefix / "lib"
    bare = tmp_path / "recommend-bare"
    compile_and_link = [
        "g++", "-std=c++17", "-O1", f"-I{prefix / 'include'}",
        f"-I{prefix / 'include/executorch/runtime/core/portable_type/c10'}", "-DC10_USING_CUSTOM_GENERATED_MACROS",
        "-DET_EVENT_TRACER_ENABLED", "-DET_USE_THREADPOOL", str(SOURCE_DIR / "recommend.cpp"), "-o", str(bare),
        "-Wl,--as-needed", *(str(lib / f"libexecutorch{s}.so") for s in
                              ("", "_threadpool", "_backend_xnnpack", "_kernels_optimized", "_kernels_quantized")),
        f"-Wl,-rpath,{lib}"]
    assert subprocess.run(compile_and_link, capture_output=True, text=True, timeout=600).returncode == 0
    dropped = run(bare, fp32)
    assert dropped.returncode == 2 and "XnnpackBackend is not registered" in dropped.stderr, dropped.stderr


def test_cross_build_for_arm64_runs_under_qemu(client, tiny_build, histories):
    """The same source cross-compiles against the aarch64 wheel (toolkit verify does the rest)."""
    from toolkit.profiler.qemu import find_qemu, qemu_runner
    from toolkit.profiler.verify import TOOLCHAIN, aarch64_executorch

    if shutil.which("aarch64-linux-gnu-g++") is None:
        pytest.skip("aarch64-linux-gnu-g++ not installed (apt-get install g++-aarch64-linux-gnu)")
    try:
        emulator = find_qemu()
    except ToolkitError as e:
        pytest.skip(str(e))
    messages: list[str] = []
    package = aarch64_executorch(client.executorch_version, messages.append)
    arm = build_client(Target(arch="arm64", executorch_dir=package, toolchain=TOOLCHAIN,
                              runner=qemu_runner(emulator, "cortex-a53")), log=messages.append)
    assert arm is not None, messages
    assert arm.binary.read_bytes()[18] == EM_AARCH64  # ELF e_machine
    model = pte_artifacts(tiny_build)[0]
    got = [json.loads(line)["items"] for line in arm.recommend(model, histories[:4])]
    assert got == [json.loads(line)["items"] for line in client.recommend(model, histories[:4])]


# --- the native ONNX Runtime client (runtime_demo/cpp/onnx) ---------------------------------------

@pytest.fixture(scope="module")
def onnx_native(cache_dir):
    """Built against onnxruntime_c_api.h (.ci/run unpacks Debian's libonnxruntime-dev); skipped without it."""
    from toolkit.profiler.onnx_client import onnx_client, onnx_header_dir

    missing = [tool for tool in ("cmake", "g++") if shutil.which(tool) is None]
    if missing or onnx_header_dir() is None:
        pytest.skip(f"{', '.join(missing) or 'onnxruntime_c_api.h'} not installed (.ci/run installs it)")
    messages: list[str] = []
    built = onnx_client(log=messages.append)
    assert built is not None, messages
    return built


def test_onnx_client_answers_as_the_python_runtime_and_reports_its_memory(onnx_native, tmp_path):
    """The same wheel's runtime through its C API: the same items for every history; the whole
    process's RSS before/after load and its peak, which holds the runtime library and the model."""
    from export.runtime import Predictor
    from tests.test_profiler import foreign_onnx

    model = foreign_onnx(tmp_path / "theirs.onnx", num_items=500, candidates=30)
    rng = np.random.default_rng(1)
    rows = np.zeros((16, 50), dtype=np.int64)
    for r, n in enumerate(rng.integers(1, 51, len(rows))):
        rows[r, 50 - n:] = rng.integers(1, 500, n)
    bench = onnx_native.bench(model, rows, threads=1, runs=200, warmup=10)
    predictor = Predictor(model)
    assert bench.items == [predictor.predict(row[None])[1][0].tolist() for row in rows]
    assert len(bench.samples_ms) == bench.runs == 200 and all(t > 0 for t in bench.samples_ms)
    assert 0 < bench.rss_before_load_bytes < bench.rss_after_load_bytes <= bench.peak_rss_bytes
    assert bench.peak_rss_bytes < MAX_NATIVE_PEAK_RSS


def test_onnx_client_bad_input_is_one_line(onnx_native, tmp_path):
    from tests.test_profiler import foreign_onnx

    model = foreign_onnx(tmp_path / "theirs.onnx")
    with pytest.raises(ToolkitError, match=r"line 1: 3 indices, the model's input holds 50"):
        onnx_native.bench(model, np.ones((1, 3), dtype=np.int64), threads=1, runs=1, warmup=0)
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    with pytest.raises(ToolkitError, match=r"--model .*bad.onnx"):
        onnx_native.bench(tmp_path / "bad.onnx", np.ones((1, 50), dtype=np.int64), threads=1, runs=1, warmup=0)


def test_profile_judges_an_onnx_on_the_native_client(onnx_native, tmp_path):
    """`profile` of an .onnx: memory and latency from the native process, the Python figure beside it,
    each saying where it was measured (before: the Python process's growth judged the .onnx)."""
    from tests.conftest import run_cli
    from tests.test_profiler import foreign_onnx

    model = foreign_onnx(tmp_path / "theirs.onnx")
    result = run_cli("profile", str(model), "--profile", "mobile-arm", "--json", timeout=300)
    assert result.returncode == 0, result.stderr
    a = json.loads(result.stdout)["artifacts"][0]
    memory, latency = a["memory"], a["latency"]
    assert memory["basis"] == "native" and memory["verdict_bytes"] == memory["native_bytes"] > 0
    assert memory["python_bytes"] > 0 and "native ONNX Runtime client" in memory["how"]
    assert "Python process measured" in memory["how"]
    assert {"native/1", "native/2"} <= set(latency["timings"]) and "native" in latency["how"]
    chosen = latency["timings"][f"native/{latency['threads']}"]
    assert latency["device_p95_ms"] == pytest.approx(chosen["quiet_p95_ms"] * latency["scale"])
