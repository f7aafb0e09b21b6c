"""Benchmark: your own student against the toolkit's own, at the same profile budget (issue 22, point 2).

    python bench/students.py                    # MovieLens-100K, 3 seeds, mobile-arm: students.json + STUDENTS.md
    python bench/students.py --quick            # smoke run: 150 users, 2 epochs, 1 seed (figures not for committing)
    python bench/students.py --render           # only rewrite STUDENTS.md from students.json

Per seed, two real builds (`toolkit.recipe.build.build`, the same teacher, loaded from the cache the
second time): the toolkit's planned SASRec student, and the GRU4Rec student of
bench/students/gru4rec.py (`--student bench/students/gru4rec.py:build`). Each build distils,
compresses, exports, checks and profiles its student against the profile; what is compared is the
artifact it ships (`manifest.recommended`, per format): test NDCG@10 / HR@10 through the runtime
(ExecuTorch for the .pte, ONNX Runtime for the .onnx) and its file bytes, mean and std over seeds.
A format where nothing fits ships nothing: it is counted as such, with its best artifact shown.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GRU4REC = "bench/students/gru4rec.py:build"
STUDENTS = {"toolkit (planned SASRec)": None, "GRU4Rec (bench/students/gru4rec.py)": GRU4REC}
OUT_JSON, OUT_MD = ROOT / "bench" / "students.json", ROOT / "bench" / "STUDENTS.md"


def shipped(manifest: dict, fmt: str) -> dict:
    """The artifact the build ships in `fmt` (recommended), or its best-NDCG artifact marked as not fitting."""
    mine = [a for a in manifest["artifacts"] if a["format"] == fmt]
    pick = (manifest.get("recommended") or {}).get(fmt, {}).get("path")
    chosen = next((a for a in mine if a["path"] == pick), None)
    fits = chosen is not None
    chosen = chosen or max(mine, key=lambda a: a["metrics"]["ndcg"])
    return {"path": chosen["path"], "fits": fits, "bytes": chosen["bytes"], "ndcg10": chosen["metrics"]["ndcg"],
            "hr10": chosen["metrics"]["hr"], "parity": chosen["parity"]["top10_agreement"]}


def run_one(profile: str, seed: int, module: str | None, max_users: int, epochs: int | None, work: Path) -> dict:
    """One real build; its shipped artifact per format, its float student and the techniques applied."""
    from toolkit.recipe.build import BuildConfig, build

    cfg = BuildConfig(profile=profile, seed=seed, max_users=max_users, out=work / f"{seed}-{bool(module)}")
    if epochs:
        cfg = cfg.with_epochs(epochs)
    cfg = replace(cfg, student=replace(cfg.student, module=module))
    start = time.perf_counter()
    result = build(cfg, log=lambda *_: None)
    m = result.manifest.to_dict()
    return {"seed": seed, "seconds": time.perf_counter() - start, "parameters": m["student"]["parameters"],
            "float_test_ndcg10": m["student"]["metrics"]["test"]["ndcg"],
            "shipped": {fmt: shipped(m, fmt) for fmt in m["profile"]["serving"]["formats"]},
            "techniques": m["plan"].get("techniques") or [s["technique"] for s in m["plan"].get("steps", [])]}


def summary(runs: list[dict]) -> dict:
    out = {}
    for fmt in runs[0]["shipped"]:
        rows = [r["shipped"][fmt] for r in runs]
        out[fmt] = {k: {"mean": float(np.mean([x[k] for x in rows])), "std": float(np.std([x[k] for x in rows]))}
                    for k in ("ndcg10", "hr10", "bytes")}
        out[fmt]["fits"] = sum(x["fits"] for x in rows)
    return out


def render(data: dict) -> str:
    lines = ["# Your own student against the toolkit's", "",
             f"{data['data']}, profile {data['profile']}, {len(data['seeds'])} seed(s) ({data['command']}). Per seed "
             "each student is built by the real line (distilled from the same teacher, compressed where it "
             "applies, exported, checked, profiled); the figures are the artifact the build ships per format "
             "(manifest `recommended`), through its runtime on test.", "",
             "| student | format | test NDCG@10 | test HR@10 | bytes | fits (seeds) |", "|---|---|---:|---:|---:|---:|"]
    for name, s in data["students"].items():
        for fmt, f in s["summary"].items():
            lines.append(f"| {name} | {fmt} | {f['ndcg10']['mean']:.4f} ± {f['ndcg10']['std']:.4f} | "
                         f"{f['hr10']['mean']:.4f} ± {f['hr10']['std']:.4f} | {f['bytes']['mean']:,.0f} | "
                         f"{f['fits']} of {len(data['seeds'])} |")
    lines += ["", "Compression applied to the GRU4Rec student (the item-table techniques need the toolkit's ItemTable):", ""]
    own = next((s for s in data["students"].values() if s["module"]), None)
    if own:
        for t in own["runs"][0]["techniques"]:
            lines.append(f"- {'applied' if t['applied'] else 'not applied'}: {t['technique']}: {t['why']}")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--profile", default="mobile-arm")
    p.add_argument("--quick", action="store_true", help="150 users, 2 epochs, 1 seed: a smoke run")
    p.add_argument("--render", action="store_true")
    p.add_argument("--out", type=Path, default=OUT_JSON)
    args = p.parse_args()
    if args.render:
        OUT_MD.write_text(render(json.loads(args.out.read_text())))
        return
    max_users, epochs, seeds = (150, 2, 1) if args.quick else (0, None, args.seeds)
    command = "python bench/students.py" + (" --quick" if args.quick else f" --seeds {seeds}")
    data = {"data": "MovieLens-100K" + (f", first {max_users} users" if max_users else ""), "profile": args.profile,
            "seeds": list(range(seeds)), "command": command, "students": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, module in STUDENTS.items():
            runs = []
            for seed in range(seeds):
                runs.append(run_one(args.profile, seed, module, max_users, epochs, Path(tmp)))
                print(f"{name} seed {seed}: " + ", ".join(f"{f} {s['path']} NDCG@10 {s['ndcg10']:.4f} {s['bytes']:,} B"
                                                          for f, s in runs[-1]["shipped"].items()), flush=True)
            data["students"][name] = {"module": module, "runs": runs, "summary": summary(runs)}
    args.out.write_text(json.dumps(data, indent=2))
    if args.out == OUT_JSON:
        OUT_MD.write_text(render(data))
    print(render(data))


if __name__ == "__main__":
    main()
