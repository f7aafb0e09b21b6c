"""Device profiles: one TOML file per target device in `device_profiles/` (format in DESIGN.md).

`load_profile` takes a name from that folder or a path to a .toml file, validates it once and
reports every problem at once, naming the file and the field.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

from toolkit.core.errors import ToolkitError

PROFILES_DIR = Path(__file__).resolve().parents[2] / "device_profiles"
FORMATS = ("executorch", "onnx")
# serving.web_runtime of a browser profile: does the page's download include onnxruntime-web's files?
WEB_RUNTIME = ("counted", "cached")


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
    cpu: str = ""  # the arm64 core the artifacts are verified on under qemu (e.g. "cortex-a76"); "" = none


@dataclass(frozen=True)
class Serving:
    max_history: int
    top_k: int
    formats: tuple[str, ...]
    # a browser profile (onnxruntime-web, measured in headless Chromium): "counted" = the model_bytes check
    # counts the runtime's download with the model's; "cached" = the browser has the runtime already (the
    # profile says why), the model alone is downloaded; "" = an app that ships its runtime inside it
    web_runtime: str = ""


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


NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")  # a plain slug: it names a folder under builds/
CPU_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@dataclass(frozen=True)
class _Field:
    types: tuple[type, ...]
    positive: bool = False  # > 0 (and finite, for floats)
    required: bool = True
    limit: float | None = None  # largest valid value


# table -> field -> how it is checked
_SCHEMA: dict[str, dict[str, _Field]] = {
    "budget": {"model_bytes": _Field((int,), True), "memory_bytes": _Field((int,), True),
               "latency_ms": _Field((int, float), True)},
    "hardware": {"int8": _Field((bool,)), "threads": _Field((int,), True, limit=256),
                 "gflops": _Field((int, float), True), "cpu": _Field((str,), required=False)},
    "serving": {"max_history": _Field((int,), True, limit=4096), "top_k": _Field((int,), True, limit=10_000),
                "formats": _Field((list,)), "web_runtime": _Field((str,), required=False)},
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
        if not isinstance(raw.get(key), str) or not raw.get(key).strip():
            errors.append(f"{key}: missing or not a non-empty string")
    if isinstance(raw.get("name"), str) and raw["name"].strip() and not NAME_PATTERN.match(raw["name"]):
        errors.append(f"name: {raw['name']!r} is not a plain name (lower-case letters, digits, '.', '_', '-'; "
                      "it names the build folder)")
    for extra in sorted(set(raw) - {"name", "description", *_SCHEMA}):
        errors.append(f"{extra}: unknown key; valid: name, description, {', '.join(f'[{t}]' for t in _SCHEMA)}")
    values: dict[str, dict] = {}
    for table, fields in _SCHEMA.items():
        section = raw.get(table)
        if not isinstance(section, dict):
            errors.append(f"[{table}]: missing table")
            continue
        values[table] = {}
        for name, spec in fields.items():
            if name not in section:
                if spec.required:
                    errors.append(f"{table}.{name}: missing")
                continue
            problem = _check_value(section[name], spec)
            if problem:
                errors.append(f"{table}.{name}: {problem}")
            else:
                values[table][name] = section[name]
        for extra in sorted(set(section) - set(fields)):
            errors.append(f"{table}.{extra}: unknown field; valid: {', '.join(fields)}")
    formats = values.get("serving", {}).get("formats")
    if formats is not None:
        bad = [f for f in formats if f not in FORMATS]
        if bad or not formats:
            errors.append(f"serving.formats: {bad or 'empty'} not valid; valid: {', '.join(FORMATS)}")
        elif len(set(formats)) != len(formats):
            errors.append(f"serving.formats: {formats} names a format twice")
    cpu = values.get("hardware", {}).get("cpu")
    if cpu is not None and not CPU_PATTERN.match(cpu):
        errors.append(f"hardware.cpu: {cpu!r} is not a CPU model name such as cortex-a76")
    web_runtime = values.get("serving", {}).get("web_runtime")
    if web_runtime is not None and web_runtime not in WEB_RUNTIME:
        errors.append(f"serving.web_runtime: {web_runtime!r} not valid; valid: {', '.join(WEB_RUNTIME)} (a browser "
                      "profile: the runtime's download counted in model_bytes, or cached by the browser)")
    if web_runtime is not None and formats is not None and list(formats) != ["onnx"]:
        errors.append(f"serving.web_runtime: a browser profile serves only onnx (formats {formats})")
    if errors:
        raise ToolkitError(f"{source}: invalid profile: " + "; ".join(errors))
    b, h, s = values["budget"], values["hardware"], values["serving"]
    return DeviceProfile(
        name=raw["name"],
        description=raw["description"],
        budget=Budget(model_bytes=b["model_bytes"], memory_bytes=b["memory_bytes"], latency_ms=float(b["latency_ms"])),
        hardware=Hardware(int8=h["int8"], threads=h["threads"], gflops=float(h["gflops"]), cpu=h.get("cpu", "")),
        serving=Serving(max_history=s["max_history"], top_k=s["top_k"], formats=tuple(s["formats"]),
                        **({"web_runtime": s["web_runtime"]} if "web_runtime" in s else {})),
        path=source,
    )


def _check_value(value: object, spec: _Field) -> str:
    """What is wrong with one value ("" when it is valid)."""
    if not isinstance(value, spec.types) or (bool not in spec.types and isinstance(value, bool)):
        names = " or ".join(t.__name__ for t in spec.types)
        return f"expected {names}, got {type(value).__name__} {value!r}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, got {value!r}"
    if spec.positive and value <= 0:
        return f"must be positive, got {value!r}"
    if spec.limit is not None and value > spec.limit:
        return f"must be at most {spec.limit:g}, got {value!r}"
    return ""
