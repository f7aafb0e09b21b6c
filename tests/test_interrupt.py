"""A build interrupted at any point (SIGINT, SIGTERM, SIGKILL) leaves the previous build exactly as it
was, and the next build succeeds, reusing what the interrupted ones cached."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT, TINY_BUILD_ARGS, run_cli
from toolkit.recipe.output import is_build

# (signal, the log line to send it at, the exit status it must give)
KILLS = [
    (signal.SIGINT, "teacher 1/1 epoch 1", 130),  # while the teacher trains
    (signal.SIGTERM, "plan: ", 143),  # while the student is planned (the teacher is cached by then)
    (signal.SIGKILL, "profiling model.", -signal.SIGKILL),  # while the artifacts are profiled: staging left behind
]
SEED = ["--seed", "1"]  # a teacher the tiny build did not cache: the first kill lands in its training


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _kill_at(out: Path, line_start: str, sig: int, timeout: float = 600) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "toolkit", "build", "--out", str(out), "--verbose", *TINY_BUILD_ARGS,
                             *SEED],  # --verbose: each epoch on the terminal, to interrupt at
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    seen, deadline = [], time.monotonic() + timeout
    for line in proc.stdout:
        seen.append(line)
        if line.strip().startswith(line_start.strip()) or line_start in line:
            proc.send_signal(sig)
            break
        assert time.monotonic() < deadline, "".join(seen[-20:])
    else:
        raise AssertionError(f"the build ended before {line_start!r}:\n" + "".join(seen[-30:]))
    rest, _ = proc.communicate(timeout=120)
    return proc.returncode, "".join(seen) + rest


def test_interrupted_builds_keep_the_previous_build(tiny_build, tmp_path):
    out = tmp_path / "mobile-arm"
    shutil.copytree(tiny_build, out)
    before = _snapshot(out)
    for sig, at, status in KILLS:
        code, log = _kill_at(out, at, sig)
        assert code == status, f"{sig!r} at {at!r}: exit {code}\n{log[-3000:]}"
        assert _snapshot(out) == before, f"the previous build changed after {sig!r} at {at!r}"
        leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".mobile-arm.staging")]
        if sig != signal.SIGKILL:
            assert not leftovers, f"{sig!r}: the staging folder was not cleaned: {leftovers}"
            assert ("interrupted" if sig == signal.SIGINT else "terminated") in log.splitlines()[-1]
        else:
            assert leftovers, "a SIGKILL cannot clean up: its staging folder stays for the next run"
    # the next build succeeds, reusing the caches; it serves 5 items, so every metric is @5
    five = tmp_path / "five.toml"
    five.write_text((ROOT / "device_profiles" / "mobile-arm.toml").read_text().replace("top_k       = 20", "top_k       = 5"))
    final = run_cli("build", "--out", str(out), "--profile", str(five), *TINY_BUILD_ARGS, *SEED)
    assert final.returncode in (0, 1), final.stdout[-3000:] + final.stderr[-3000:]
    assert "staging folder of an interrupted build" in final.stdout  # the SIGKILL's leftover, said in the log
    assert "loaded from cache" in final.stdout  # the teacher trained by the interrupted runs is reused
    assert is_build(out) and _snapshot(out) != before and (out / "manifest.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".mobile-arm.lock", "five.toml", "mobile-arm"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["serving"]["k"] == 5 and manifest["popularity"]["test"]["k"] == 5
    assert all(a["metrics"]["k"] == 5 and a["profile"]["quality"]["k"] == 5 for a in manifest["artifacts"])
    assert "NDCG@5" in final.stdout and "NDCG@10 " not in final.stdout.split("serving:")[1]
