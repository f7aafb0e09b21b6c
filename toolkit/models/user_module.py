"""A user's own torch module (`--teacher MODULE:FACTORY`, `--student MODULE:FACTORY`): imported,
built and probed on real histories before anything is trained, with one clear error for each
problem. Shared by the module teacher (toolkit/teachers/module.py) and the own student
(toolkit/recipe/own_student.py).

Contract. `MODULE` is a dotted module name or a path to a `.py` file; `FACTORY(items, max_history)`
returns a `torch.nn.Module` whose `forward(history)` takes int64 `[B, L]` item indices (left-padded
with 0, oldest first; `items[i]` is the original id of index i, index 0 is padding) and returns
float `[B, L, len(items)]` scores (logits or log-probabilities) for the next item at every
position, causally (position t sees positions <= t only). The probe checks the type, the shape,
finite values at real positions and causality (`check_module`).

`toolkit.models.user_model.UserModel` gives such a module the face the toolkit's loops read.
torch is imported inside the functions: the CLI's checks parse a spec without it.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from toolkit.core.errors import ToolkitError

PROBE_USERS = 4  # real histories a module is checked on
PROBE_TOLERANCE = 1e-4  # causality: earlier positions may move this much when a later item changes


def parse_module_spec(spec: str, flag: str, others: str = "") -> tuple[str, str]:
    """`MODULE:FACTORY` -> (module, factory); MODULE is a dotted name or a path to a .py file.
    `others`: the flag's other accepted values, named in the error (e.g. "kg, ensemble")."""
    module, sep, factory = spec.rpartition(":")
    if not sep or not module or not factory.isidentifier():
        raise ToolkitError(f"{flag} {spec!r}: expected MODULE:FACTORY (a dotted module name or a path to a .py file, "
                           "then the factory function's name)" + (f", or one of {others}" if others else ""))
    return module, factory


def import_factory(spec: str, flag: str = "--teacher", others: str = ""):
    """The factory function named by `spec`, and the path of the file that defines it."""
    module_name, factory_name = parse_module_spec(spec, flag, others)
    if module_name.endswith(".py") or "/" in module_name or "\\" in module_name:
        path = Path(module_name)
        if not path.is_file():
            raise ToolkitError(f"{flag} {spec!r}: no such file {path}")
        name = f"toolkit_user_module_{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]}"
        try:
            loader_spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[name] = module
            loader_spec.loader.exec_module(module)
        except Exception as e:
            sys.modules.pop(name, None)
            raise ToolkitError(f"{flag} {spec!r}: importing {path} failed: {one_line(e)}") from None
    else:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            raise ToolkitError(f"{flag} {spec!r}: no module named {e.name!r} (give a dotted module name importable "
                               "from here, or a path to a .py file)") from None
        except Exception as e:
            raise ToolkitError(f"{flag} {spec!r}: importing {module_name} failed: {one_line(e)}") from None
    factory = getattr(module, factory_name, None)
    if factory is None or not callable(factory):
        found = sorted(n for n in vars(module) if not n.startswith("_") and callable(getattr(module, n)))
        raise ToolkitError(f"{flag} {spec!r}: {module.__name__} has no function {factory_name!r}"
                           + (f"; it has {', '.join(found[:8])}" if found else ""))
    file = getattr(module, "__file__", None)
    return factory, Path(file) if file else None


@dataclass
class LoadedModule:
    """A user's module, built by its factory and probed; its file and weights hashed."""

    module: object  # torch.nn.Module
    spec: str
    path: Path | None  # the file that defines the factory
    file_sha256: str
    weights_sha256: str


def load_user_module(spec: str, items: list[str], histories: list[np.ndarray], max_history: int,
                     flag: str = "--teacher", others: str = "") -> LoadedModule:
    """Import the factory, call it, check the module on `histories` (real training histories) and
    hash it. The module is returned in eval mode."""
    from torch import nn

    factory, path = import_factory(spec, flag, others)
    try:
        module = factory(list(items), max_history)
    except Exception as e:
        raise ToolkitError(f"{flag} {spec!r}: the factory raised {one_line(e)}") from None
    if not isinstance(module, nn.Module):
        raise ToolkitError(f"{flag} {spec!r}: the factory returned {type(module).__name__}, not a torch.nn.Module")
    module.eval()
    check_module(module, histories, len(items), max_history, f"{flag} {spec!r}")
    return LoadedModule(module, spec, path, file_sha256(path), weights_sha256(module))


def probe_histories(train: list[np.ndarray]) -> list[np.ndarray]:
    """The real training histories a module is probed on: the first users with 2 or more items."""
    return [t for t in train if len(t) >= 2][:PROBE_USERS] or train[:1]


def check_module(module, histories: list[np.ndarray], num_items: int, max_history: int, what: str) -> None:
    """forward on real padded histories: a float tensor [B, L, N], finite at real positions, causal."""
    import torch

    history = torch.from_numpy(left_pad(histories, max_history))
    try:
        with torch.no_grad():
            out = module(history)
    except Exception as e:
        raise ToolkitError(f"{what}: forward(history int64 [{len(histories)}, {max_history}]) raised "
                           f"{one_line(e)}") from None
    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        kind = type(out).__name__ if not isinstance(out, torch.Tensor) else f"a {out.dtype} tensor"
        raise ToolkitError(f"{what}: forward returned {kind}; expected float scores [B, L, {num_items}]")
    want = (len(histories), max_history, num_items)
    if tuple(out.shape) != want:
        raise ToolkitError(f"{what}: forward returned shape {list(out.shape)} for history [{want[0]}, {want[1]}]; "
                           f"expected [B, L, len(items)] = {list(want)} (len(items) counts the padding index 0)")
    real = history != 0
    if not torch.isfinite(out[real]).all():
        raise ToolkitError(f"{what}: forward returned NaN or infinite scores at real positions")
    changed = history.clone()
    changed[:, -1] = changed[:, -1] % (num_items - 1) + 1  # another real item at the last position
    with torch.no_grad():
        again = module(changed)
    if (again[:, :-1] - out[:, :-1]).abs().max().item() > PROBE_TOLERANCE * max(1.0, out.abs().max().item()):
        raise ToolkitError(f"{what}: not causal: changing the last item of the history changed the scores at earlier "
                           "positions (position t must see positions <= t only)")


def left_pad(histories: list[np.ndarray], length: int) -> np.ndarray:
    """Left-pad (or cut to the most recent `length`) item sequences with 0: (U, length) int64 (as
    toolkit.training.evaluate.pad_histories, which this layer may not import)."""
    out = np.zeros((len(histories), length), dtype=np.int64)
    for row, h in enumerate(histories):
        h = np.asarray(h)[-length:]
        if len(h):
            out[row, length - len(h):] = h
    return out


def file_sha256(path: Path | None) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path is not None and path.is_file() else ""


def weights_sha256(module) -> str:
    """A hash of every parameter and buffer (names, shapes, values): new weights, a new cache key."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        digest.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200]}" if text else type(e).__name__
