"""Clients benchmark: every client against its reference on one build, and what a request costs in each.

    python bench/clients.py --build builds/mobile-arm [--qemu PATH ...] [--requests 2000]

Writes bench/clients.json and bench/CLIENTS.md:
- agreement, per artifact, on the build's reference histories (real test users): the C++ client
  against the Python demo (.pte; also under torch's BLAS, see runtime_demo/README.md), arm64 under
  each qemu and CPU model against the host C++ client (SME included, without verify's fallback, so
  the qemu 7.2 finding shows), the web page in headless Chromium against Python ONNX Runtime (.onnx);
- per-request time: the Python demo's and the node demo's `--bench` (whole path: ids -> model ->
  filtered ids), the C++ client's `--bench` (the model call alone) and the page's own timing of a
  request in Chromium (whole path, 0.1 ms resolution); 1 thread; host timings on a shared machine;
- memory: the C++ process's peak RSS (runtime included) next to the Python figure in the manifest.

Not a test: the arm64 matrix over two qemu versions and every CPU model, and the timings, are
reported, not judged (CI runs the judged checks: tests/test_native_client.py, test_verify.py,
test_web_client.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runtime_demo.recommend import Recommender, format_json  # noqa: E402
from toolkit.profiler.native import NativeClient, Target, build_client, indices_to_ids, native_client, write_histories  # noqa: E402
from toolkit.profiler.qemu import hwcaps, probe_qemu, qemu_runner  # noqa: E402
from toolkit.profiler.verify import TOOLCHAIN, aarch64_executorch, compare  # noqa: E402

CPUS = ("cortex-a53", "cortex-a55", "cortex-a76", "neoverse-v1", "max", "max,sme=off")
WEB_DIR = ROOT / "runtime_demo" / "web"
NODE_DIR = ROOT / "runtime_demo" / "node"


def percentiles(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples, dtype=float)
    return {"p50_ms": float(np.percentile(a, 50)), "p95_ms": float(np.percentile(a, 95)), "n": int(a.size)}


def artifacts(build: Path) -> list[dict]:
    return json.loads((build / "manifest.json").read_text())["artifacts"]


def cpp_vs_python(host: NativeClient, build: Path, histories: list[list[str]]) -> list[dict]:
    import torch

    blas = {"LD_PRELOAD": str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so")}
    same_blas = NativeClient(binary=host.binary, target=host.target, executorch_version=host.executorch_version, env=blas)
    rows = []
    for a in (a for a in artifacts(build) if a["format"] == "executorch"):
        model = build / a["path"]
        python = Recommender(model)
        expected = [format_json(python.recommend(h)) for h in histories]
        rows.append({"artifact": a["path"], "precision": a["precision"], **compare(expected, host.recommend(model, histories)),
                     "bytes_identical_same_blas": compare(expected, same_blas.recommend(model, histories))["bytes_identical"]})
    return rows


def arm64_matrix(host: NativeClient, build: Path, histories: list[list[str]], qemus: list[Path]) -> list[dict]:
    arm = build_client(Target(arch="arm64", executorch_dir=aarch64_executorch(host.executorch_version, print),
                              toolchain=TOOLCHAIN), log=print)
    rows = []
    for a in (a for a in artifacts(build) if a["format"] == "executorch"):
        model = build / a["path"]
        expected = host.recommend(model, histories)
        for emulator in filter(None, map(probe_qemu, qemus)):
            for cpu in (c for c in CPUS if c.split(",")[0] in emulator.cpus):
                runner = NativeClient(binary=arm.binary, executorch_version=arm.executorch_version,
                                      target=Target(arch="arm64", executorch_dir=arm.target.executorch_dir,
                                                    toolchain=TOOLCHAIN, runner=qemu_runner(emulator, cpu)))
                row = {"artifact": a["path"], "precision": a["precision"], "qemu": emulator.version_text, "cpu": cpu,
                       "features": hwcaps(emulator, cpu, arm)}
                try:
                    row.update(compare(expected, runner.recommend(model, histories)))
                except Exception as e:  # a crash is a result here
                    row["error"] = str(e)
                rows.append(row)
                print(f"  arm64 {a['path']} qemu {emulator.version_text} {cpu}: {row.get('top10_agreement', row.get('error'))}")
    return rows


def web(build: Path, histories: list[list[str]]) -> tuple[list[dict], list[dict]]:
    server = subprocess.Popen([sys.executable, str(WEB_DIR / "serve.py"), "--build", str(build), "--port", "0"],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    url = server.stdout.readline().split()[1].split("?")[0]
    agreement, timing = [], []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            requests = write_histories(Path(tmp) / "h.jsonl", histories)
            for a in (a for a in artifacts(build) if a["format"] == "onnx"):
                out = Path(tmp) / "out.json"
                shot = WEB_DIR / "screenshot.png" if a["precision"] == "int8" and "compressed" not in a["path"] else None
                subprocess.run(["node", str(WEB_DIR / "drive.mjs"), "--url", url, "--model", f"build/{a['path']}",
                                "--histories", str(requests), "--out", str(out)] + (["--screenshot", str(shot)] if shot else []),
                               check=True, timeout=900)
                page = json.loads(out.read_text())
                python = Recommender(build / a["path"])
                expected = [format_json(python.recommend(h)) for h in histories]
                agreement.append({"artifact": a["path"], "precision": a["precision"], **compare(expected, page["answers"])})
                timing.append({"client": "web page (onnxruntime-web wasm, Chromium)", "artifact": a["path"],
                               "what": "whole request, in the page", **percentiles(page["page_ms"]),
                               "load_ms": page["load_ms"]})
    finally:
        server.terminate()
        server.wait(timeout=30)
    return agreement, timing


def timings(host: NativeClient, build: Path, reference: np.ndarray, requests: int) -> tuple[list[dict], list[dict]]:
    rows, memory = [], []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for a in artifacts(build):
        model = build / a["path"]
        out = subprocess.run([sys.executable, "-m", "runtime_demo", "--model", str(model), "--bench", str(requests), "--json"],
                             capture_output=True, text=True, env=env, cwd=ROOT, check=True)
        figures = json.loads(out.stdout)
        runtime = "ExecuTorch" if a["format"] == "executorch" else "ONNX Runtime"
        rows.append({"client": f"Python demo ({runtime})", "artifact": a["path"], "what": "whole request",
                     "p50_ms": figures["p50_ms"], "p95_ms": figures["p95_ms"], "n": requests})
        if a["format"] == "onnx":
            out = subprocess.run(["node", str(NODE_DIR / "recommend.js"), "--model", str(model), "--bench", str(requests),
                                  "--json"], capture_output=True, text=True, check=True)
            figures = json.loads(out.stdout)
            rows.append({"client": "node demo (onnxruntime-node)", "artifact": a["path"], "what": "whole request",
                         "p50_ms": figures["p50_ms"], "p95_ms": figures["p95_ms"], "n": requests})
        else:
            bench = host.bench(model, reference, threads=1, runs=requests, warmup=200)
            rows.append({"client": "C++ client (ExecuTorch runtime)", "artifact": a["path"], "what": "model call",
                         **percentiles(bench.samples_ms)})
            python_memory = a.get("profile", {}).get("memory", {})
            memory.append({"artifact": a["path"], "bytes": a["bytes"], "native_peak_rss_bytes": bench.peak_rss_bytes,
                           "native_rss_before_load_bytes": bench.rss_before_load_bytes,
                           "native_rss_after_load_bytes": bench.rss_after_load_bytes,
                           "python_measured_bytes": python_memory.get("python_model_bytes"),
                           "python_process_peak_bytes": python_memory.get("python_bytes")})
    return rows, memory


def markdown(r: dict) -> str:
    mb = lambda b: f"{b / 2**20:.1f} MiB" if b else "-"  # noqa: E731
    lines = ["# Clients: agreement and per-request time", "",
             f"Build: `{r['build']}`, {r.get('made_by', '')} ({r['histories']} reference histories of real test "
             f"users); {r['machine']}; {r['date']}. Written by `python bench/clients.py`.", "",
             "## C++ client (x86-64) against the Python demo", "",
             "| artifact | precision | items identical | JSON bytes identical | max score diff | bytes identical, torch's BLAS preloaded |",
             "|---|---|---:|---:|---:|---:|"]
    lines += [f"| {x['artifact']} | {x['precision']} | {x['items_identical']:.3f} | {x['bytes_identical']:.3f} | "
              f"{x['max_score_diff']:.1e} | {x['bytes_identical_same_blas']:.3f} |" for x in r["cpp_vs_python"]]
    lines += ["", "## arm64 (qemu-user) against the x86-64 C++ client", "",
              "| artifact | precision | qemu | -cpu | features | items identical | top-10 agreement | max score diff |",
              "|---|---|---|---|---|---:|---:|---:|"]
    for x in r["arm64"]:
        figures = (f"{x['items_identical']:.3f} | {x['top10_agreement']:.3f} | {x['max_score_diff']:.2e}" if "error" not in x
                   else f"crash | | {x['error'][:60]}")
        lines.append(f"| {x['artifact']} | {x['precision']} | {x['qemu']} | {x['cpu']} | {' '.join(x['features'])} | {figures} |")
    lines += ["", "## Web page (Chromium, onnxruntime-web) against Python ONNX Runtime", "",
              "| artifact | precision | items identical | JSON bytes identical | top-10 agreement | max score diff |",
              "|---|---|---:|---:|---:|---:|"]
    lines += [f"| {x['artifact']} | {x['precision']} | {x['items_identical']:.3f} | {x['bytes_identical']:.3f} | "
              f"{x['top10_agreement']:.3f} | {x['max_score_diff']:.2e} |" for x in r["web"]]
    lines += ["", "## Per-request time, 1 thread, this host", "",
              "| client | artifact | timed | p50 ms | p95 ms | requests |", "|---|---|---|---:|---:|---:|"]
    lines += [f"| {x['client']} | {x['artifact']} | {x['what']} | {x['p50_ms']:.3f} | {x['p95_ms']:.3f} | {x['n']} |"
              for x in r["timing"]]
    lines += ["", "## Memory of a .pte in the C++ client (whole process) and in Python", "",
              "| artifact | bytes | C++ peak RSS | C++ RSS before load | C++ after load | Python, the model's share (profiler) | Python process peak |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {x['artifact']} | {x['bytes']:,} | {mb(x['native_peak_rss_bytes'])} | {mb(x['native_rss_before_load_bytes'])} | "
              f"{mb(x['native_rss_after_load_bytes'])} | {mb(x['python_measured_bytes'])} | {mb(x['python_process_peak_bytes'])} |"
              for x in r["memory"]]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", required=True, type=Path)
    parser.add_argument("--qemu", action="append", type=Path, default=[], help="qemu-aarch64 binaries to compare (repeat)")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "clients.json")
    parser.add_argument("--md", type=Path, default=ROOT / "bench" / "CLIENTS.md")
    parser.add_argument("--md-only", action="store_true", help="rewrite --md from an existing --out")
    args = parser.parse_args()
    if args.md_only:
        args.md.write_text(markdown(json.loads(args.out.read_text())))
        return 0
    host = native_client(log=print)
    assert host is not None, "the C++ client could not be built"
    reference = np.load(args.build / "reference.npz")["history"]
    histories = indices_to_ids(reference, json.loads((args.build / "items.json").read_text()))
    manifest = json.loads((args.build / "manifest.json").read_text())
    result = {"build": str(args.build), "histories": len(histories), "date": time.strftime("%Y-%m-%d"),
              "made_by": f"profile {manifest['profile']['name']}, {manifest['dataset']['users']} users, "
                         f"build seconds {manifest.get('build_seconds', 0):.0f}",
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, executorch {host.executorch_version}"}
    print("C++ against Python ...")
    result["cpp_vs_python"] = cpp_vs_python(host, args.build, histories)
    print("arm64 ...")
    result["arm64"] = arm64_matrix(host, args.build, histories, args.qemu or [Path("qemu-aarch64")])
    print("web ...")
    result["web"], web_timing = web(args.build, histories)
    print("timings ...")
    result["timing"], result["memory"] = timings(host, args.build, reference, args.requests)
    result["timing"] += web_timing
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    args.md.write_text(markdown(result))
    print(f"wrote {args.out} and {args.md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
