"""qemu-user for aarch64, as `python -m toolkit verify` runs it: finding the newest working qemu, the
CPU models it offers, the -cpu value a requested CPU runs with (SME switched off on a qemu whose
SMOPA is wrong, QEMU #2083) and the hardware features the emulated CPU advertises.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.core.errors import ToolkitError

if TYPE_CHECKING:
    from toolkit.profiler.native import NativeClient

SYSROOT = Path("/usr/aarch64-linux-gnu")  # Debian's cross C library (libc6-arm64-cross, with g++-aarch64-linux-gnu)
SME_CPU = "max"  # qemu's model with every feature it emulates: SVE2, SME (the core with SVE/SME)
SMOPA_FIXED = (8, 2, 3)  # QEMU #2083 "Fix 32-bit SMOPA": in 9.0 and backported to 8.2.3
MAX_SVL_BYTES = 64  # XNNPACK's SME kernels crashed at 128 and 256 (qemu 7.2 and 10.0); shipping cores: <= 64
QEMU_NAMES = ("qemu-aarch64", "qemu-aarch64-static")
QEMU_ENV = "TOOLKIT_QEMU_AARCH64"

# Linux arm64 hwcap bits (arch/arm64/include/uapi/asm/hwcap.h) that decide XNNPACK's kernels.
HWCAP_NAMES = {0: "fp", 1: "asimd", 8: "atomics", 9: "fphp", 10: "asimdhp", 20: "asimddp", 22: "sve", 23: "asimdfhm"}
HWCAP2_NAMES = {1: "sve2", 13: "i8mm", 14: "bf16", 23: "sme", 26: "sme_i8i32", 29: "sme_f32f32", 30: "sme_fa64",
                36: "sve2p1", 37: "sme2", 38: "sme2p1"}


@dataclass(frozen=True)
class Emulator:
    """A qemu-user for aarch64 and what it offers."""

    path: Path
    version: tuple[int, int, int]
    cpus: tuple[str, ...]

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))

    @property
    def smopa_ok(self) -> bool:
        return self.version >= SMOPA_FIXED


@dataclass(frozen=True)
class CpuModel:
    """The qemu -cpu value a requested CPU runs with, and why it differs when it does."""

    requested: str
    model: str
    note: str = ""


def default_cpus(profile_cpu: str) -> list[str]:
    """The profile's core (when it names one) and the core with SVE2 + SME."""
    return [c for c in (profile_cpu, SME_CPU) if c]


def cpu_model(requested: str, emulator: Emulator) -> CpuModel:
    """The -cpu value to run `requested` with on this emulator (falls back on a known-bad path)."""
    name, _, options = requested.partition(",")
    if name not in emulator.cpus:
        raise ToolkitError(f"--cpu {requested}: qemu-aarch64 {emulator.version_text} has no CPU model {name!r}; "
                           f"valid: {', '.join(emulator.cpus)} (a newer qemu has more: {setup_steps(qemu_only=True)})")
    svl = re.search(r"sme-default-vector-length=(\d+)", options)
    if svl and int(svl.group(1)) > MAX_SVL_BYTES:
        return CpuModel(requested, requested, f"{requested}: XNNPACK's SME kernels crashed with a streaming vector "
                                              f"length above {MAX_SVL_BYTES} bytes in every qemu tried (no shipping "
                                              f"core has one); expect a failure")
    if has_sme(name, options) and not emulator.smopa_ok:
        kept = [o for o in options.split(",") if o and not o.startswith("sme=")]
        return CpuModel(requested, ",".join([name, *kept, "sme=off"]),
                        f"qemu-aarch64 {emulator.version_text} computes SMOPA wrongly (QEMU #2083, fixed in 8.2.3/9.0), "
                        f"which XNNPACK's int8 SME kernels use: running {name} with SME off, so SME kernels are NOT "
                        f"verified; install qemu >= 9 ({setup_steps(qemu_only=True)})")
    return CpuModel(requested, requested)


def has_sme(name: str, options: str) -> bool:
    """Whether a qemu CPU model runs with SME (of qemu's models, only `max` has it)."""
    return name == SME_CPU and "sme=off" not in options


def find_qemu(path: Path | None = None) -> Emulator:
    """The qemu-aarch64 to use: `path`, $TOOLKIT_QEMU_AARCH64, else the newest on PATH."""
    candidates = [Path(path)] if path else ([Path(os.environ[QEMU_ENV])] if os.environ.get(QEMU_ENV) else
                                            [Path(p) for p in map(shutil.which, QEMU_NAMES) if p])
    found = [e for e in map(probe_qemu, candidates) if e is not None]
    if not found:
        where = f"{candidates[0]} is not a working qemu-aarch64" if candidates else "no qemu-aarch64 found"
        raise ToolkitError(f"{where}; {setup_steps(qemu_only=True)}")
    return max(found, key=lambda e: e.version)


def probe_qemu(path: Path) -> Emulator | None:
    try:
        version = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30).stdout
        listing = subprocess.run([str(path), "-cpu", "help"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"version (\d+)\.(\d+)\.(\d+)", version)
    if not match:
        return None
    cpus = tuple(line.strip() for line in listing.splitlines()[1:] if line.strip())
    return Emulator(path=path, version=tuple(int(x) for x in match.groups()), cpus=cpus)


def qemu_runner(emulator: Emulator, model: str) -> tuple[str, ...]:
    return (str(emulator.path), "-cpu", model, "-L", str(SYSROOT))


def hwcaps(emulator: Emulator, model: str, arm: NativeClient) -> list[str]:
    """The features the emulated CPU advertises to a program (glibc's LD_SHOW_AUXV, no extra binary)."""
    out = subprocess.run([*qemu_runner(emulator, model), "-E", "LD_SHOW_AUXV=1", str(arm.binary), "--help"],
                         capture_output=True, text=True, timeout=60).stdout
    words = dict(re.findall(r"^(AT_HWCAP2?):\s+(?:0x)?([0-9a-fA-F]+)", out, flags=re.MULTILINE))
    names = []
    for key, table in (("AT_HWCAP", HWCAP_NAMES), ("AT_HWCAP2", HWCAP2_NAMES)):
        bits = int(words.get(key, "0"), 16)
        names += [name for bit, name in sorted(table.items()) if bits >> bit & 1]
    return names


def setup_steps(qemu_only: bool = False) -> str:
    qemu = ("python3 -m toolkit.core.backports --write && apt-get update && "
            "apt-get install -t bookworm-backports qemu-user (or set $TOOLKIT_QEMU_AARCH64)")
    return qemu if qemu_only else f"one-time setup: apt-get install cmake g++ g++-aarch64-linux-gnu; {qemu}"
