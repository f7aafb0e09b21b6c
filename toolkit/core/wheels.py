"""Pinned wheels from PyPI, fetched with `pip download --no-deps` and unpacked atomically into a cache
folder: the RecBole wheel's MovieLens-100K files (toolkit/data/) and the aarch64 executorch wheel's C++
package (toolkit/profiler/verify.py). A wheel is read as a zip; nothing is installed or imported.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

from toolkit.core.errors import ToolkitError

PIP_DOWNLOAD_TIMEOUT_S = 600  # a wheel of ~100 MB on a slow link


class WheelError(ToolkitError):
    """A wheel could not be fetched or is not the pinned one. `reason`: pip's last line or the mismatch;
    `command`: the pip command to run by hand."""

    def __init__(self, message: str, reason: str, command: str):
        super().__init__(message)
        self.reason, self.command = reason, command


def unpack_wheel(requirement: str, target: Path, extract: Callable[[zipfile.ZipFile, Path], None], *,
                 pip_args: Sequence[str] = (), sha256: str | None = None) -> Path:
    """Download `requirement` (e.g. "recbole==1.2.1"), check its sha256 when pinned, let `extract` write what
    is needed from the zip into a staging folder beside `target`, and rename that folder to `target`.

    The caller decides whether `target` is already complete; an incomplete `target` is replaced, and when
    another process renamed its own copy first, that copy is kept. A failed download or a wrong sha256
    raises `WheelError` and leaves `target` as it was.
    """
    command = [sys.executable, "-m", "pip", "download", requirement, *pip_args, "--no-deps", "--quiet"]
    by_hand = " ".join(command[2:])
    with tempfile.TemporaryDirectory(prefix="wheel-") as tmp:
        try:
            result = subprocess.run([*command, "-d", tmp], capture_output=True, text=True,
                                    timeout=PIP_DOWNLOAD_TIMEOUT_S)
            failed, last = result.returncode != 0, (result.stderr.strip().splitlines() or ["no wheel"])[-1]
        except subprocess.TimeoutExpired:
            failed, last = True, f"pip download took more than {PIP_DOWNLOAD_TIMEOUT_S} s"
        wheels = sorted(Path(tmp).glob("*.whl"))
        if failed or len(wheels) != 1:
            raise WheelError(f"could not download {requirement} from PyPI ({last})", last, by_hand)
        wheel = wheels[0]
        if sha256 is not None:
            digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
            if digest != sha256:
                why = f"{wheel.name} has sha256 {digest}, expected {sha256}"
                raise WheelError(why, why, by_hand)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target.parent))
        try:
            with zipfile.ZipFile(wheel) as zf:
                extract(zf, staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    if target.exists():
        shutil.rmtree(target, ignore_errors=True)  # an incomplete earlier unpack
    try:
        staging.rename(target)  # atomic: a half-unpacked cache is never seen
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)  # another process unpacked it first
    return target
