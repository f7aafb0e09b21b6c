"""The toolkit's cache of trained things (teachers, priors, the native client): keys and atomic writes.

Every cached file is found by a hash of its key, and the key is stored inside it and checked on
load: a key covers the data, every setting and the code (`code_version`) that shaped the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

_TOOLKIT = Path(__file__).resolve().parents[1]


def cache_dir() -> Path:
    """Where downloaded data and trained teachers are kept (override with TOOLKIT_CACHE_DIR)."""
    if os.environ.get("TOOLKIT_CACHE_DIR"):
        return Path(os.environ["TOOLKIT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edge-rec-toolkit"


def code_version(*modules: str) -> str:
    """A hash of toolkit modules and rooms (paths relative to toolkit/; a folder is every .py file
    in it): a change to any of them changes the key."""
    digest = hashlib.sha256()
    for name in modules:
        path = _TOOLKIT / name
        for f in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(f.read_bytes())
    return digest.hexdigest()[:16]


def cache_path(kind: str, key: dict, suffix: str) -> Path:
    """Where the file for `key` lives: <cache>/<kind>/<hash of the key><suffix>."""
    text = json.dumps(key, sort_keys=True)
    return cache_dir() / kind / f"{hashlib.sha256(text.encode()).hexdigest()[:20]}{suffix}"


def temporary_sibling(path: Path) -> Path:
    """A unique temporary name next to `path`: write it, then `replace` it onto `path` (atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.tmp{time.time_ns()}")


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = temporary_sibling(path)
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
