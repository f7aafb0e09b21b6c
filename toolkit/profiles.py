"""Device profiles: one TOML file per target device in `device_profiles/` (format in DESIGN.md).

`load_profile` takes a name from that folder or a path to a .toml file, validates it once and
reports every problem at once, naming the file and the field.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

from toolkit.errors import ToolkitError

PROFILES_DIR = Path(__file__).resolve().parent.parent / "device_profiles"
FORMATS = ("executorch", "onnx")


@dataclass(frozen=True)
class Budget:
    model_bytes: int  # artifact size on disk
    memory_bytes: int  # peak runtime memory while serving
    latency_ms: float  # p95 of one request on the device


@dataclass(frozen=True)
class Hardware:
    int8: bool  # fast int8 kernels available
    threads: int
    gflops: float  # sustained fp32 GFLOP/s at `threads`


@dataclass(frozen=True)
class Serving:
    max_history: int
    top_k: int
    formats: tuple[str, ...]


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    description: str
    budget: Budget
    hardware: Hardware
    serving: Serving
    path: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["serving"]["formats"] = list(self.serving.formats)
        return d


# field name -> (python types accepted, must be positive)
_SCHEMA: dict[str, dict[str, tuple[tuple[type, ...], bool]]] = {
    "budget": {"model_bytes": ((int,), True), "memory_bytes": ((int,), True), "latency_ms": ((int, float), True)},
    "hardware": {"int8": ((bool,), False), "threads": ((int,), True), "gflops": ((int, float), True)},
    "serving": {"max_history": ((int,), True), "top_k": ((int,), True), "formats": ((list,), False)},
}


def list_profiles() -> list[str]:
    """Names of the shipped profiles, sorted."""
    return sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))


def resolve_profile_path(name_or_path: str) -> Path:
    """A shipped profile's name, or a path to a .toml file. Names never leave the profiles folder."""
    if name_or_path.endswith(".toml") or "/" in name_or_path or "\\" in name_or_path:
        path = Path(name_or_path)
        if not path.is_file():
            raise ToolkitError(f"--profile {name_or_path}: no such file")
        return path
    if name_or_path not in list_profiles():
        raise ToolkitError(f"--profile {name_or_path!r}: unknown profile; valid: {', '.join(list_profiles())}")
    return PROFILES_DIR / f"{name_or_path}.toml"


def load_profile(name_or_path: str) -> DeviceProfile:
    path = resolve_profile_path(name_or_path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ToolkitError(f"{path}: not valid TOML ({e})") from e
    except OSError as e:
        raise ToolkitError(f"{path}: cannot read ({e.strerror})") from e
    return parse_profile(raw, str(path))


def parse_profile(raw: dict, source: str) -> DeviceProfile:
    """Validate a parsed TOML document; every problem is collected and reported together."""
    errors: list[str] = []
    for key in ("name", "description"):
        if not isinstance(raw.get(key), str) or not raw.get(key):
            errors.append(f"{key}: missing or not a non-empty string")
    values: dict[str, dict] = {}
    for table, fields in _SCHEMA.items():
        section = raw.get(table)
        if not isinstance(section, dict):
            errors.append(f"[{table}]: missing table")
            continue
        values[table] = {}
        for field, (types, positive) in fields.items():
            if field not in section:
                errors.append(f"{table}.{field}: missing")
                continue
            value = section[field]
            ok_type = isinstance(value, types) and not (bool not in types and isinstance(value, bool))
            if not ok_type:
                names = " or ".join(t.__name__ for t in types)
                errors.append(f"{table}.{field}: expected {names}, got {type(value).__name__} {value!r}")
                continue
            if positive and value <= 0:
                errors.append(f"{table}.{field}: must be positive, got {value!r}")
                continue
            values[table][field] = value
        for extra in sorted(set(section) - set(fields)):
            errors.append(f"{table}.{extra}: unknown field; valid: {', '.join(fields)}")
    formats = values.get("serving", {}).get("formats")
    if formats is not None:
        bad = [f for f in formats if f not in FORMATS]
        if bad or not formats:
            errors.append(f"serving.formats: {bad or 'empty'} not valid; valid: {', '.join(FORMATS)}")
    if errors:
        raise ToolkitError(f"{source}: invalid profile: " + "; ".join(errors))
    b, h, s = values["budget"], values["hardware"], values["serving"]
    return DeviceProfile(
        name=raw["name"],
        description=raw["description"],
        budget=Budget(model_bytes=b["model_bytes"], memory_bytes=b["memory_bytes"], latency_ms=float(b["latency_ms"])),
        hardware=Hardware(int8=h["int8"], threads=h["threads"], gflops=float(h["gflops"])),
        serving=Serving(max_history=s["max_history"], top_k=s["top_k"], formats=tuple(s["formats"])),
        path=source,
    )
