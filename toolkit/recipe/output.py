"""The build directory: what may be written where, and how a finished build replaces the previous one.

Rules (checked by `prepare_output` before anything is trained, without importing torch):
- `--out` is refused when it holds anything the toolkit did not write. A build is recognised by
  its marker file (`MARKER`, schema name + version, written first into every staging folder), or,
  for builds of toolkit 0.1, by holding nothing but the files such a build writes.
- `--out` is refused when replacing it would take something else with it: a filesystem root, the
  current directory or one of its parents, the data file, the profile file, the cache or the
  toolkit itself.
- A build is written into a staging folder next to `--out` (`.NAME.staging-PID-XXXX`, normal
  permissions) and swapped in with one atomic `renameat2(RENAME_EXCHANGE)`: at every instant
  either the old or the new build is at `--out`. Where the filesystem cannot exchange, two renames
  are used and the next run recovers `.NAME.old` if it was interrupted between them.
- Leftovers of a killed run (a staging folder whose process is gone, `.NAME.old`) are recovered or
  removed by the next run, which says so in its log. A lock file (`.NAME.lock`) keeps two builds
  from writing the same `--out` at once.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from toolkit.core.errors import ToolkitError

MARKER = ".edge-rec-build.json"  # only the toolkit writes this file: it marks a folder as a build
SCHEMA = "edge-rec-toolkit/build"
SCHEMA_VERSION = 2
# what a build of toolkit 0.1 (no marker) held: such a folder is recognised as a previous build
_LEGACY_FILES = {"manifest.json", "items.json", "reference.npz", "report.json", "report.md", "latency.png",
                 "budget.png", "candidates.png"}
_LEGACY_MODEL = ("model.", (".pte", ".onnx"))
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class OutputDir:
    """A checked `--out` and the lock that keeps it ours while the build runs."""

    path: Path  # absolute
    lock_fd: int

    @property
    def parent(self) -> Path:
        return self.path.parent

    def staging(self, toolkit_version: str, profile: str) -> Path:
        """A fresh staging folder next to `path`, marked as a build, with normal permissions."""
        name = f".{self.path.name}.staging-{os.getpid()}-{secrets.token_hex(4)}"
        folder = self.parent / name
        folder.mkdir(mode=0o777)  # the umask applies: 0755 by default, unlike mkdtemp's 0700
        write_marker(folder, toolkit_version, profile)
        return folder

    def install(self, staging: Path) -> None:
        """Put the finished build at `path`; the previous one is removed only once the new one is there."""
        if not self.path.exists():
            os.rename(staging, self.path)
            return
        if _exchange(staging, self.path):  # staging now holds the previous build
            shutil.rmtree(staging, ignore_errors=True)
            return
        old = self.parent / f".{self.path.name}.old"
        if old.exists():
            shutil.rmtree(old)
        os.rename(self.path, old)  # a crash here leaves .NAME.old: the next run puts it back
        os.rename(staging, self.path)
        shutil.rmtree(old, ignore_errors=True)

    def release(self) -> None:
        try:
            os.close(self.lock_fd)
        except OSError:
            pass


def write_marker(folder: Path, toolkit_version: str, profile: str) -> None:
    (folder / MARKER).write_text(json.dumps({"schema": SCHEMA, "version": SCHEMA_VERSION,
                                             "toolkit_version": toolkit_version, "profile": profile,
                                             "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}) + "\n")


def is_build(folder: Path) -> bool:
    """True when `folder` was written by the toolkit (marker, or a 0.1 build's files and nothing else)."""
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
        return isinstance(marker, dict) and marker.get("schema") == SCHEMA
    except (OSError, ValueError):
        pass
    try:
        names = [p.name for p in folder.iterdir()]
        if not (folder / "manifest.json").is_file():
            return False
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    legacy = all(n in _LEGACY_FILES or (n.startswith(_LEGACY_MODEL[0]) and n.endswith(_LEGACY_MODEL[1])
                                        and (folder / n).is_file()) for n in names)
    return legacy and isinstance(manifest, dict) and "toolkit_version" in manifest


def prepare_output(out: Path, protected: list[Path], log=print) -> OutputDir:
    """Check `--out`, take its lock and clean what a killed run left; see the module docstring.

    Args:
        out: the build directory asked for.
        protected: paths that must survive the build (the data file, the profile file, the cache).
    Raises:
        ToolkitError: `--out` is not a place a build may be written (exit 2), before any work.
    """
    path = Path(os.path.abspath(out))
    flag = f"--out {out}"
    if path.parent == path or not path.name or path.name in (".", ".."):
        raise ToolkitError(f"{flag}: a filesystem root cannot be a build directory; name a folder, e.g. builds/phone")
    cwd = Path.cwd().resolve()
    real = path.resolve()
    keep = [(cwd, "the current directory"), (_ROOT, "the toolkit itself"), (Path.home().resolve(), "your home directory")]
    keep += [(Path(p).resolve(), str(p)) for p in protected]
    for other, what in keep:
        if other == real or real in other.parents:
            raise ToolkitError(f"{flag}: replacing it would remove {what}; choose a folder of its own, e.g. builds/phone")
    if path.exists() and not path.is_dir():
        raise ToolkitError(f"{flag}: exists and is not a directory")
    if path.is_dir() and any(path.iterdir()) and not is_build(path):
        sample = ", ".join(sorted(p.name for p in path.iterdir())[:3])
        raise ToolkitError(f"{flag}: holds files the toolkit did not write ({sample}, ...); choose an empty or new "
                           "folder (a previous build's folder is replaced)")
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ToolkitError(f"{flag}: cannot create {parent} ({e.strerror})") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ToolkitError(f"{flag}: {parent} is not writable")
    lock_path = parent / f".{path.name}.lock"
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        raise ToolkitError(f"{flag}: cannot write in {parent} ({e.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise ToolkitError(f"{flag}: another build is writing it now (lock {lock_path}); wait for it to finish") from None
    output = OutputDir(path=path, lock_fd=fd)
    _clean_leftovers(output, log)
    return output


def _clean_leftovers(output: OutputDir, log) -> None:
    """Recover `.NAME.old` (a swap interrupted between its renames) and remove dead staging folders."""
    name, parent = output.path.name, output.parent
    old = parent / f".{name}.old"
    if old.is_dir() and is_build(old):
        if not output.path.exists():
            os.rename(old, output.path)
            log(f"recovered the previous build from {old} (a build was interrupted while swapping it)")
        else:
            shutil.rmtree(old, ignore_errors=True)
            log(f"removed {old}, left by an interrupted build")
    for folder in parent.glob(f".{name}.staging-*"):
        # we hold the lock: no other build is writing; the folder is removed only if the toolkit made it
        if folder.is_dir() and is_build(folder):
            shutil.rmtree(folder, ignore_errors=True)
            log(f"removed {folder.name}, the staging folder of an interrupted build")


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two directories (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EXDEV):
        return False
    raise OSError(err, os.strerror(err), str(b))
