"""Code run to completion in a fresh process: `run_fresh` (a function by name, its JSON result back; the
profiler's worker) and `run_timed` (a command's process tree, its wall time and peak RSS).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from toolkit.core.errors import ToolkitError

_ROOT = Path(__file__).resolve().parents[2]


class MeasurementError(Exception):
    """A measurement could not be taken (a runtime crashed, a counter is missing): the figure is unknown."""


@dataclass
class TimedRun:
    """A command run to completion in a fresh process tree: its exit code, wall time and peak memory."""

    exit_code: int
    seconds: float
    peak_rss_bytes: int  # the largest resident set of any process of the tree (ru_maxrss of the children)
    stdout: str
    stderr: str


def run_timed(command: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> TimedRun:
    """Run `command` under a small wrapper process, so that the peak RSS is that command's tree's
    alone (RUSAGE_CHILDREN of the wrapper), never this process's or its other children's."""
    wrapper = ("import json, resource, subprocess, sys, time\n"
               "t = time.perf_counter()\n"
               "r = subprocess.run(sys.argv[1:])\n"
               "print('TIMED_RUN ' + json.dumps([r.returncode, time.perf_counter() - t,"
               " resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024]))\n")
    done = subprocess.run([sys.executable, "-c", wrapper, *command], env={**os.environ, **(env or {})}, cwd=cwd,
                          capture_output=True, text=True)
    lines = [x for x in done.stdout.splitlines() if x.startswith("TIMED_RUN ")]
    if not lines:
        raise MeasurementError(f"{command[0]}: the timing wrapper failed ({done.stderr.strip()[-300:]})")
    code, seconds, rss = json.loads(lines[-1].split(" ", 1)[1])
    out = "\n".join(x for x in done.stdout.splitlines() if not x.startswith("TIMED_RUN "))
    return TimedRun(exit_code=code, seconds=seconds, peak_rss_bytes=rss, stdout=out, stderr=done.stderr)


def run_fresh(target: str, request: dict, timeout: float, env: dict[str, str] | None = None) -> dict:
    """Run `target` ("package.module:function", taking the request dict and returning a JSON-able
    dict) in a fresh interpreter (with `env` added to its environment) and return its result.

    A fresh process per measurement: one artifact's allocations never count against another's,
    thread pools start from scratch, and the parent's imports (torch after training) are not in
    its memory. The child dies with its parent (Linux), so an interrupted build leaves no worker.

    Raises:
        ToolkitError: the child reported bad input (its message).
        MeasurementError: the child crashed, timed out or wrote no result.
    """
    module, function = target.split(":")
    with tempfile.TemporaryDirectory(prefix="toolkit-measure-") as tmp:
        result_path = Path(tmp) / "result.json"
        env = {**os.environ, **(env or {}),
               "PYTHONPATH": os.pathsep.join(p for p in (str(_ROOT), os.environ.get("PYTHONPATH", "")) if p)}
        code = "import sys; from toolkit.profiler.fresh import fresh_main; sys.exit(fresh_main(sys.argv[1:]))"
        try:
            done = subprocess.run([sys.executable, "-c", code, target, json.dumps(request), str(result_path)],
                                  env=env, capture_output=True, text=True, timeout=timeout,
                                  preexec_fn=_die_with_parent)
        except subprocess.TimeoutExpired:
            raise MeasurementError(f"{function} did not finish within {timeout:.0f} s") from None
        if result_path.is_file():
            result = json.loads(result_path.read_text())
            if "toolkit_error" in result:
                raise ToolkitError(result["toolkit_error"])
            if "measurement_error" in result:
                raise MeasurementError(result["measurement_error"])
            if done.returncode == 0:
                return result
        how = f"signal {-done.returncode}" if done.returncode < 0 else f"exit {done.returncode}"
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise MeasurementError(f"{function} failed in its fresh process ({how}: {last})")


def fresh_main(argv: list[str]) -> int:
    """Entry point of the fresh process: argv = [target, request JSON, result path]."""
    import importlib

    target, request, result_path = argv[0], json.loads(argv[1]), Path(argv[2])
    module, function = target.split(":")
    try:
        result, code = getattr(importlib.import_module(module), function)(request), 0
    except ToolkitError as e:
        result, code = {"toolkit_error": str(e)}, 2
    except MeasurementError as e:
        result, code = {"measurement_error": str(e)}, 1
    result_path.write_text(json.dumps(result))
    return code


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGKILL it when the parent dies (prctl PR_SET_PDEATHSIG)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass
