"""`python -m toolkit verify`: run a build's .pte artifacts on arm64, as the phone's CPU runs them.

The C++ client (runtime_demo/cpp) is cross-compiled for aarch64 against the aarch64 `executorch`
wheel of the installed version and run under qemu-user on the build's reference histories, once
per CPU model; its answers are compared with the same client on this host.

What this proves: the artifact loads and gives the host's answers with the arm64 instruction set
and the arm64 kernels XNNPACK picks for that CPU's features (NEON, dot product, i8mm, SVE, SME).
What it does not: device timing or memory (an emulator's speed says nothing about a phone's), or
a vendor's CPU errata; qemu implements the architecture, not a particular core's
microarchitecture.

Known-bad path: qemu before 8.2.3/9.0 computes the 8-bit SMOPA instruction wrongly (QEMU issue
#2083), which XNNPACK's int8 SME kernels use, so an int8 program looks broken on an SME CPU model
although it is right on hardware and on a fixed qemu. With such a qemu, SME is switched off for the
run (`<cpu>,sme=off`, NEON/SVE kernels) and the report says SME was not verified.

One-time setup (Debian 12), printed again when something is missing:
    apt-get install cmake g++ g++-aarch64-linux-gnu
    python3 -m toolkit.core.backports --write    # <codename>-backports on the machine's own archive
    apt-get update && apt-get install -t bookworm-backports qemu-user     # qemu 10 (Debian 12's 7.2: see above)
The aarch64 wheel is fetched by the toolkit into its cache (`pip download executorch==VERSION
--platform manylinux_2_28_aarch64 --only-binary=:all: --no-deps`). The emulator itself (finding qemu, CPU
models, features) is toolkit/profiler/qemu.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.core.errors import ToolkitError
from toolkit.core.contract import ITEMS_FILE, read_items
from toolkit.core.wheels import WheelError, unpack_wheel
from toolkit.profiler.native import Log, NativeClient, Target, build_client, indices_to_ids, native_client
from toolkit.profiler.qemu import CpuModel, cpu_model, default_cpus, find_qemu, hwcaps, qemu_runner, setup_steps

if TYPE_CHECKING:
    import numpy as np

ARCHES = ("arm64",)
TOOLCHAIN = Path(__file__).resolve().parents[2] / "runtime_demo" / "cpp" / "aarch64-linux-gnu.cmake"
WHEEL_PLATFORM = "manylinux_2_28_aarch64"

# Agreement with the host, per history, on the build's reference histories:
FLOAT_MUST_MATCH = "identical top-K items"  # fp32: the same float kernels up to rounding; no tie is that close
INT8_MIN_TOP10 = 0.95  # int8: mean top-10 overlap with the host
INT8_MAX_SCORE_DIFF = 0.01  # int8: largest |score difference| of an item both answered
# Why these int8 bounds: both CPUs do the same integer arithmetic; only the float steps around it
# (dequantize, layer norm, softmax, FMA or not) can move a requantized activation by one int8 step,
# about 0.004 in these scores. 0.01 allows two or three such steps and the overlap bound one swap
# at rank 10 in one history of twenty; both are well inside what int8 quantization itself costs
# against fp32 (the manifest's parity: top-10 agreement ~0.97, score error ~0.025). A broken
# kernel is far outside (qemu 7.2's SMOPA: overlap 0.25, score difference 0.17).


@dataclass
class ArtifactCheck:
    """One artifact on one emulated CPU against the host, over the build's reference histories."""

    artifact: str
    precision: str
    cpu: str  # the qemu -cpu value it ran with
    features: list[str]  # hwcaps the emulated CPU advertised (what XNNPACK chose its kernels from)
    histories: int
    items_identical: float  # share of histories with the same items in the same order
    bytes_identical: float  # share of histories with byte-identical JSON (scores to 6 decimals)
    top10_agreement: float  # mean overlap of the top-10 sets
    max_score_diff: float | None  # None: no answers to compare (error)
    bound: str
    agrees: bool
    error: str = ""  # the client failed (crash, load error): does not agree
    note: str = ""


@dataclass
class Verification:
    arch: str
    emulator: str
    executorch: str
    host: str
    checks: list[ArtifactCheck] = field(default_factory=list)

    @property
    def agrees(self) -> bool:
        return bool(self.checks) and all(c.agrees for c in self.checks)

    def to_dict(self) -> dict:
        return {**asdict(self), "agrees": self.agrees}

    def manifest_entries(self) -> dict[str, list[dict]]:
        """Per artifact file name: where it was verified, for a manifest's `artifacts[i]["verified"]`."""
        out: dict[str, list[dict]] = {}
        for c in self.checks:
            out.setdefault(c.artifact, []).append({"arch": self.arch, "cpu": c.cpu, "features": c.features,
                                                   "emulator": self.emulator, "agrees": c.agrees,
                                                   "top10_agreement": c.top10_agreement,
                                                   "max_score_diff": c.max_score_diff, "note": c.note})
        return out


def record_in_manifests(artifacts: list[Path], result: Verification) -> list[Path]:
    """Write where each artifact was verified into its build's manifest.json (`artifacts[i]["verified"]`,
    one entry per CPU model, replacing earlier entries for the same arch and CPU), atomically."""
    from toolkit.core.cache import write_json_atomic

    entries = result.manifest_entries()
    written = []
    for folder in sorted({Path(a).resolve().parent for a in artifacts}):
        path = folder / "manifest.json"
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # an artifact outside a build: nothing to record
        for entry in manifest.get("artifacts", []):
            new = entries.get(entry.get("path"), [])
            if new:
                done = {(e["arch"], e["cpu"]) for e in new}
                entry["verified"] = [e for e in entry.get("verified", []) if (e["arch"], e["cpu"]) not in done] + new
        write_json_atomic(path, manifest)
        written.append(path)
    return written


def verify(artifacts: list[Path], arch: str = "arm64", cpus: list[str] | None = None, qemu: Path | None = None,
           log: Log | None = None) -> Verification:
    """Run each .pte on the build's reference histories on every CPU model and compare with the host.

    Args:
        artifacts: .pte files of one or more builds (reference.npz, items.json, manifest.json next to them).
        cpus: qemu CPU models; default: the build profile's `hardware.cpu` and `max` (SVE2 + SME).
        qemu: the qemu-aarch64 to use (default: $TOOLKIT_QEMU_AARCH64, then the newest on PATH).
    Raises:
        ToolkitError: bad input or a missing tool (the message says what to install).
    """
    say = log or (lambda msg: None)
    if arch not in ARCHES:
        raise ToolkitError(f"--arch {arch}: valid: {', '.join(ARCHES)}")
    builds = [load_artifact(Path(a)) for a in artifacts]
    emulator = find_qemu(qemu)
    plans = [(build, [cpu_model(c, emulator) for c in cpus or default_cpus(build.cpu)]) for build in builds]  # bad --cpu: now
    host = native_client(log=say)
    if host is None:
        raise ToolkitError("the host C++ client could not be built (see above); " + setup_steps())
    arm = build_client(Target(arch="arm64", executorch_dir=aarch64_executorch(host.executorch_version, say),
                              toolchain=TOOLCHAIN), log=say)
    if arm is None:
        raise ToolkitError("the arm64 C++ client could not be built (see above); " + setup_steps())
    result = Verification(arch=arch, emulator=f"qemu-aarch64 {emulator.version_text}",
                          executorch=host.executorch_version, host=f"{os.uname().machine} (this machine)")
    for note in dict.fromkeys(cpu.note for _, models in plans for cpu in models if cpu.note):
        say(f"warning: {note}")
    for build, models in plans:
        histories = indices_to_ids(build.reference, read_items(build.path.parent / ITEMS_FILE))
        expected = host.recommend(build.path, histories)
        for cpu in models:
            runner = NativeClient(binary=arm.binary, executorch_version=arm.executorch_version,
                                  target=Target(arch="arm64", executorch_dir=arm.target.executorch_dir,
                                                toolchain=TOOLCHAIN, runner=qemu_runner(emulator, cpu.model)))
            say(f"{build.path.name} on {cpu.model} ({len(histories)} histories) ...")
            result.checks.append(check(build, runner, histories, expected, cpu, hwcaps(emulator, cpu.model, arm)))
    return result


@dataclass(frozen=True)
class BuildArtifact:
    path: Path
    precision: str
    cpu: str  # the profile's hardware.cpu ("" when it names none)
    reference: np.ndarray  # (R, L) int64 padded index rows of real test users


def load_artifact(path: Path) -> BuildArtifact:
    """A .pte with its build: the manifest entry (precision) and the reference histories."""
    import numpy as np

    if path.suffix.lower() != ".pte":
        raise ToolkitError(f"{path}: verify runs .pte artifacts (the ExecuTorch C++ client); "
                           f"ONNX on arm64 is not covered")
    if not path.is_file():
        raise ToolkitError(f"{path}: no such file")
    build = path.parent
    for name in ("manifest.json", "reference.npz", "items.json"):
        if not (build / name).is_file():
            raise ToolkitError(f"{path}: no {name} next to it (verify needs the build directory)")
    try:
        manifest = json.loads((build / "manifest.json").read_text(encoding="utf-8"))
        entry = next((a for a in manifest.get("artifacts", []) if (build / a["path"]).resolve() == path.resolve()), None)
        cpu = manifest.get("profile", {}).get("hardware", {}).get("cpu", "") or ""
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ToolkitError(f"{build / 'manifest.json'}: not a build manifest ({e})") from e
    if entry is None:
        raise ToolkitError(f"{path}: not listed in {build / 'manifest.json'}")
    try:
        reference = np.load(build / "reference.npz")["history"]
    except (OSError, ValueError, KeyError) as e:
        raise ToolkitError(f"{build / 'reference.npz'}: no `history` array ({e})") from e
    return BuildArtifact(path=path, precision=entry.get("precision", "fp32"), cpu=cpu, reference=reference)


def check(build: BuildArtifact, client: NativeClient, histories: list[list[str]], expected: list[str],
          cpu: CpuModel, features: list[str]) -> ArtifactCheck:
    """The arm64 answers against the host's, judged by the bound of the artifact's precision."""
    quantized = build.precision != "fp32"
    bound = (f"top-10 agreement >= {INT8_MIN_TOP10}, max score difference <= {INT8_MAX_SCORE_DIFF}" if quantized
             else FLOAT_MUST_MATCH)
    base = dict(artifact=build.path.name, precision=build.precision, cpu=cpu.model, features=features,
                histories=len(histories), bound=bound, note=cpu.note)
    try:
        got = client.recommend(build.path, histories)
    except (ToolkitError, subprocess.TimeoutExpired) as e:
        return ArtifactCheck(**base, items_identical=0.0, bytes_identical=0.0, top10_agreement=0.0,
                             max_score_diff=None, agrees=False, error=str(e))
    figures = compare(expected, got)
    agrees = (figures["items_identical"] == 1.0 if not quantized else
              figures["top10_agreement"] >= INT8_MIN_TOP10 and figures["max_score_diff"] <= INT8_MAX_SCORE_DIFF)
    return ArtifactCheck(**base, **figures, agrees=agrees)


def compare(expected: list[str], got: list[str]) -> dict[str, float]:
    """Agreement of two clients' JSON lines, history by history."""
    same_items = same_bytes = overlap = 0.0
    max_diff = 0.0
    for want_line, got_line in zip(expected, got, strict=True):
        want, have = json.loads(want_line), json.loads(got_line)
        same_bytes += want_line == got_line
        same_items += want["items"] == have["items"]
        top = set(want["items"][:10])
        overlap += len(top & set(have["items"][:10])) / max(len(top), 1)
        scores = dict(zip(have["items"], have["scores"]))
        diffs = [abs(s - scores[i]) for i, s in zip(want["items"], want["scores"]) if i in scores]
        max_diff = max([max_diff, *diffs])
    n = max(len(expected), 1)
    return {"items_identical": same_items / n, "bytes_identical": same_bytes / n, "top10_agreement": overlap / n,
            "max_score_diff": max_diff}


def aarch64_executorch(version: str, log: Log) -> Path:
    """The aarch64 wheel's `executorch` folder (headers, libraries, CMake package), fetched once into the cache."""
    from toolkit.core.cache import cache_dir

    base_version = version.split("+")[0]
    root = cache_dir() / "native" / f"executorch-{base_version}-aarch64"
    package = root / "executorch"
    if (package / "lib" / "libexecutorch.so").is_file():
        return package
    log(f"fetching the aarch64 executorch {base_version} wheel (pip download) ...")

    def extract(wheel: zipfile.ZipFile, staging: Path) -> None:  # only what a C++ build needs
        wheel.extractall(staging, [n for n in wheel.namelist()
                                   if n.startswith(("executorch/lib/", "executorch/include/", "executorch/share/"))])

    pyver = f"{sys.version_info.major}{sys.version_info.minor}"
    try:
        unpack_wheel(f"executorch=={base_version}", root, extract,
                     pip_args=("--platform", WHEEL_PLATFORM, "--python-version", pyver, "--only-binary=:all:"))
    except WheelError as e:
        raise ToolkitError(f"could not fetch the aarch64 executorch wheel ({e.reason}); run: {e.command}") from None
    return package


def format_table(v: Verification) -> str:
    lines = [f"arm64 ({v.emulator}, executorch {v.executorch}) against {v.host}, the build's reference histories:",
             f"{'artifact':<22} {'precision':<15} {'cpu':<16} {'items =':>7} {'bytes =':>7} {'top-10':>6} "
             f"{'max diff':>9}  verdict"]
    for c in v.checks:
        verdict = "agrees" if c.agrees else f"DOES NOT AGREE ({c.error or c.bound})"
        lines.append(f"{c.artifact:<22} {c.precision:<15} {c.cpu:<16} {c.items_identical:>7.3f} {c.bytes_identical:>7.3f} "
                     f"{c.top10_agreement:>6.3f} {'-' if c.max_score_diff is None else format(c.max_score_diff, '.2e'):>9}  {verdict}")
    for cpu, features in {c.cpu: c.features for c in v.checks}.items():
        lines.append(f"  {cpu}: {' '.join(features)}")
    return "\n".join(lines)
