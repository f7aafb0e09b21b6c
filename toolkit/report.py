"""The report of a profiling run: report.json (every figure), report.md (verdict table per artifact,
then details) and PNG plots (latency distribution per artifact; size and memory against the budget).
"""

from __future__ import annotations

import json
from pathlib import Path

from toolkit.profiler import ArtifactProfile
from toolkit.profiles import DeviceProfile

REPORT_JSON, REPORT_MD = "report.json", "report.md"
LATENCY_PNG, BUDGET_PNG, CANDIDATES_PNG = "latency.png", "budget.png", "candidates.png"


def report_dict(profile: DeviceProfile, results: list[ArtifactProfile]) -> dict:
    return {"profile": profile.to_dict(), "fits": all(r.fits for r in results),
            "artifacts": [r.to_dict() for r in results]}


def verdict_table(profile: DeviceProfile, results: list[ArtifactProfile]) -> str:
    """A plain-text table: one row per artifact, one column per budget (used by the CLI)."""
    b = profile.budget
    head = (f"{'artifact':<18} {'verdict':<13} {'model':>9} {'memory (meas.)':>15} {'p95 device (est.)':>18}  "
            f"{'top-10 agree':>12}  failed")
    budget = (f"{'budget: ' + profile.name:<32} {b.model_bytes / 1e6:>7.2f}MB {b.memory_bytes / 1e6:>13.2f}MB "
              f"{b.latency_ms:>16.2f}ms")
    rows = [head, budget]
    for r in results:
        failed = ", ".join(c.budget for c in r.checks if not c.passed) or "-"
        rows.append(f"{r.path:<18} {'fits' if r.fits else 'DOES NOT FIT':<13} {r.bytes / 1e6:>7.2f}MB "
                    f"{r.memory['measured_bytes'] / 1e6:>13.2f}MB {r.device_latency['p95_ms']:>16.3f}ms  "
                    f"{r.parity['top10_agreement']:>12.3f}  {failed}")
    return "\n".join(rows)


def write_report(out: Path, profile: DeviceProfile, results: list[ArtifactProfile], plan: dict | None = None) -> list[Path]:
    """Write report.json, report.md and the plots into `out`; returns the paths written.

    plan: a build's `PlanResult.to_dict()`: adds the candidates the plan considered and their
    Pareto plot (candidates.png)."""
    out = Path(out)
    report = report_dict(profile, results)
    text = markdown(profile, results)
    written = plot(out, profile, results)
    if plan is not None:
        report["plan"] = plan
        text += "\n" + plan_markdown(profile, plan)
        written.append(plot_candidates(out / CANDIDATES_PNG, profile, plan))
    (out / REPORT_JSON).write_text(json.dumps(report, indent=2))
    (out / REPORT_MD).write_text(text)
    return [out / REPORT_JSON, out / REPORT_MD] + written


def plan_markdown(profile: DeviceProfile, plan: dict) -> str:
    """The plan's section: the chosen candidate, its compression steps, every candidate considered."""
    chosen = plan["candidate"]
    records = plan["candidates"]
    tried = [r for r in records if r["tried"]]
    fitting = [r for r in records if r["fits_predicted"]]
    lines = [f"# Plan: the student for {profile.name}", "",
             f"Chosen: dim {chosen['dim']}, {chosen['layers']} block(s), {chosen['heads']} head(s), item-table rank "
             f"{chosen['embedding_rank'] or 'full'}, {chosen['precision']}. {len(records)} candidates estimated, "
             f"{len(fitting)} fit the budgets by estimate, {len(tried)} trained (distilled, compressed, exported, "
             "measured). Validation NDCG@10 is measured on the validation items, never on test.", ""]
    if plan.get("steps"):
        lines += ["Compression of the chosen student (each step measured):", "",
                  "| step | weight bytes before → after | valid NDCG@10 before → untuned → after |", "|---|---|---|"]
        for st in plan["steps"]:
            name = st["technique"] + ("" if st.get("kept", True) else " (tried, not kept: PTQ was better)")
            lines.append(f"| {name} | {st['bytes_before']:,} → {st['bytes_after']:,} | "
                         f"{st['ndcg_before']:.4f} → {st['ndcg_untuned']:.4f} → {st['ndcg_after']:.4f} |")
        lines.append("")
    lines += [f"![candidates]({CANDIDATES_PNG})", "",
              "| candidate | fits (estimate) | file bytes, estimated | file bytes, measured | valid NDCG@10 "
              "(float → compressed) | prior NDCG@10 | seconds |", "|---|---|---|---|---|---|---:|"]
    shown = tried + sorted((r for r in fitting if not r["tried"]), key=lambda r: -r["prior_ndcg10"])[:15]
    for r in shown:
        c = r["candidate"]
        name = (f"dim {c['dim']}, {c['layers']} block(s), rank {c['embedding_rank'] or 'full'}, {c['precision']}")
        est = ", ".join(f"{f} {b:,}" for f, b in r["predicted"]["file_bytes"].items())
        meas = ", ".join(f"{f} {b:,}" for f, b in r["measured_bytes"].items()) or "-"
        nd = (f"{r['float_valid_ndcg10']:.4f} → {r['valid_ndcg10']:.4f}" if r["tried"] else "not trained")
        lines.append(f"| {name}{' **(chosen)**' if r['tried'] and c == chosen else ''} | "
                     f"{'yes' if r['fits_predicted'] else 'no'} | {est} | {meas} | {nd} | {r['prior_ndcg10']:.3f} | "
                     f"{r['seconds']:.0f} |")
    if len(fitting) > len(shown):
        lines.append(f"\n({len(fitting) - len(shown)} more fitting candidates and {len(records) - len(fitting)} "
                     "that do not fit are in report.json.)")
    return "\n".join(lines) + "\n"


def plot_candidates(path: Path, profile: DeviceProfile, plan: dict) -> Path:
    """Pareto plot: file size against NDCG@10 for every candidate (estimated size and prior quality
    for those not trained, measured for those trained), the model budget drawn as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    records = plan["candidates"]
    for fits, color, label in ((True, "tab:blue", "fits by estimate (prior NDCG@10)"),
                               (False, "tab:grey", "does not fit by estimate (prior NDCG@10)")):
        pts = [r for r in records if r["fits_predicted"] == fits and not r["tried"]]
        ax.scatter([max(r["predicted"]["file_bytes"].values()) / 1000 for r in pts], [r["prior_ndcg10"] for r in pts],
                   s=12, facecolors="none", edgecolors=color, label=label)
    tried = [r for r in records if r["tried"]]
    ax.scatter([max(r["measured_bytes"].values()) / 1000 for r in tried], [r["valid_ndcg10"] for r in tried],
               s=50, color="tab:orange", marker="*", label="trained (measured file, valid NDCG@10)")
    chosen = [r for r in tried if r["candidate"] == plan["candidate"]]
    if chosen:
        r = chosen[0]
        ax.annotate("chosen", (max(r["measured_bytes"].values()) / 1000, r["valid_ndcg10"]), fontsize=8,
                    xytext=(5, 5), textcoords="offset points")
    ax.axvline(profile.budget.model_bytes / 1000, color="k", linestyle="--", label="model budget")
    ax.set_xscale("log")
    ax.set_xlabel("artifact size (KB, log scale; largest format)")
    ax.set_ylabel("NDCG@10 (prior: expected test; trained: valid)")
    ax.set_title(f"{profile.name}: student candidates", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def markdown(profile: DeviceProfile, results: list[ArtifactProfile]) -> str:
    b, hw = profile.budget, profile.hardware
    host = results[0].host if results else {}
    lines = [
        f"# Profile report: {profile.name}",
        "",
        f"{profile.description}. Budgets: model {b.model_bytes / 1e6:.2f} MB, memory {b.memory_bytes / 1e6:.2f} MB, "
        f"p95 latency {b.latency_ms:g} ms on the device; {hw.threads} thread(s), {hw.gflops:g} GFLOP/s, "
        f"int8 {'yes' if hw.int8 else 'no'}, formats {', '.join(profile.serving.formats)}.",
        "",
        "| artifact | verdict | model (file) | memory (measured) | p95 on device (estimated) | top-10 agreement | NDCG@10 |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        checks = {c.budget: c for c in r.checks}
        cell = {k: f"{'pass' if c.passed else '**FAIL**'}: {c.text.split(' (')[0]}" for k, c in checks.items()}
        ndcg = f"{r.quality['ndcg10']:.4f}" if "ndcg10" in r.quality else "n/a"
        lines.append(f"| {r.path} | {'fits' if r.fits else '**does not fit**'} | {cell['model_bytes']} | "
                     f"{cell['memory_bytes']} | {cell['latency_ms']} | {r.parity['top10_agreement']:.3f} | {ndcg} |")
    lines += ["", f"Host: {host.get('machine', '?')}, {host.get('cpus', '?')} CPUs, calibrated "
              f"{host.get('gflops', float('nan')):.1f} GFLOP/s fp32 at {host.get('threads', '?')} thread(s) "
              f"(load average {host.get('load_average', -1):.1f} while measuring). Device latency is an "
              "estimate: host latency x host GFLOP/s / device GFLOP/s.", ""]
    if results:
        lines += [f"![latency]({LATENCY_PNG})", "", f"![budget]({BUDGET_PNG})", ""]
    for r in results:
        m, lat, dev = r.memory, r.latency, r.device_latency
        lines += [f"## {r.path}", "",
                  f"{r.format}, {r.precision}, {r.bytes:,} bytes, sha256 `{r.sha256[:16]}…`. "
                  f"Verdict: **{'fits' if r.fits else 'does not fit'}**.", ""]
        lines += [f"- {'pass' if c.passed else 'FAIL'} `{c.budget}`: {c.text}" for c in r.checks]
        lines += ["", "Memory:",
                  f"- measured: {m['measured_bytes'] / 1e6:.2f} MB ({m['baseline']}; baseline "
                  f"{m['baseline_bytes'] / 1e6:.1f} MB, process peak {m['process_peak_bytes'] / 1e6:.1f} MB; "
                  f"after load {m['after_load_bytes'] / 1e6:.2f} MB)"]
        if "estimated" in m:
            e = m["estimated"]
            lines.append(f"- estimated from the program: {m['estimated_bytes'] / 1e6:.3f} MB (planned activations "
                         f"{e['planned_activation_bytes']:,} bytes + constants {e['constant_bytes']:,} bytes)")
        lines += ["", f"Latency ({lat['runs']} runs over {lat['seconds']:.1f} s after {lat['warmup_runs']} warm-up "
                      f"runs, {lat['threads']} thread(s)):",
                  f"- host, measured: p50 {lat['p50_ms']:.3f} ms, p95 {lat['p95_ms']:.3f} ms, p99 {lat['p99_ms']:.3f} ms",
                  f"- device, estimated: p50 {dev['p50_ms']:.3f} ms, p95 {dev['p95_ms']:.3f} ms, "
                  f"p99 {dev['p99_ms']:.3f} ms ({dev['how']})", ""]
        lines += ["Ops:"] + _ops_lines(r.ops) + [""]
        p = r.parity
        lines += [f"Parity against the PyTorch outputs stored at export ({p['histories']} test histories): "
                  f"top-10 agreement {p['top10_agreement']:.3f}, exact top-10 {p['top10_exact']:.3f}, "
                  f"max score error {p['max_score_error']:.2e}.", ""]
        q = r.quality
        lines += [f"Quality through the artifact: HR@10 {q['hr10']:.4f}, NDCG@10 {q['ndcg10']:.4f} "
                  f"({q.get('users', '?')} users, {q.get('phase', 'test')})." if "ndcg10" in q
                  else "Quality: not available (no matching manifest entry).", ""]
    return "\n".join(lines)


def _ops_lines(ops: dict) -> list[str]:
    if "delegate_calls" in ops:
        outside = ", ".join(f"{k} x{v}" for k, v in ops["outside_xnnpack"].items()) or "none"
        nodes = ", ".join(f"{k} x{v}" for k, v in ops["xnnpack_nodes"].items())
        return [f"- {ops['xnnpack_nodes_total']} ops in {ops['delegate_calls']} XNNPACK delegate call(s): {nodes}",
                f"- {ops['outside_xnnpack_total']} ops outside XNNPACK: {outside}"]
    return [f"- {ops['nodes']} ONNX nodes: " + ", ".join(f"{k} x{v}" for k, v in ops["op_types"].items())]


def plot(out: Path, profile: DeviceProfile, results: list[ArtifactProfile]) -> list[Path]:
    """latency.png: host latency histogram per artifact; budget.png: size and memory against the budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not results:
        return []
    fig, axes = plt.subplots(len(results), 1, figsize=(7, 1.9 * len(results) + 0.6), squeeze=False)
    for ax, r in zip(axes[:, 0], results):
        h = r.latency["histogram"]
        edges, counts = h["edges_ms"], h["counts"]
        ax.stairs(counts, edges, fill=True, alpha=0.7)
        for key, style in (("p50_ms", ":"), ("p95_ms", "--"), ("p99_ms", "-.")):
            ax.axvline(r.latency[key], color="k", linestyle=style, linewidth=1, label=f"{key[:3]} {r.latency[key]:.3f} ms")
        ax.set_title(f"{r.path}: host latency, {r.latency['runs']} runs, {r.latency['threads']} thread(s)", fontsize=9)
        ax.legend(fontsize=7)
        ax.set_ylabel("runs")
    axes[-1, 0].set_xlabel("ms (host, measured; the last bin holds everything above p99.9)")
    fig.tight_layout()
    latency_png = out / LATENCY_PNG
    fig.savefig(latency_png, dpi=100)
    plt.close(fig)

    b = profile.budget
    fig, axes = plt.subplots(1, 3, figsize=(11, 0.5 * len(results) + 2.2))
    names = [r.path for r in results]
    panels = [("model (MB, file)", [r.bytes / 1e6 for r in results], b.model_bytes / 1e6),
              ("memory (MB, measured)", [r.memory["measured_bytes"] / 1e6 for r in results], b.memory_bytes / 1e6),
              ("p95 latency (ms, device estimate)", [r.device_latency["p95_ms"] for r in results], b.latency_ms)]
    for ax, (title, values, limit) in zip(axes, panels):
        colors = ["tab:green" if v <= limit else "tab:red" for v in values]
        ax.barh(names, values, color=colors)
        ax.axvline(limit, color="k", linestyle="--", label=f"budget {limit:g}")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
        ax.tick_params(labelsize=7)
    fig.suptitle(f"{profile.name}: artifacts against the budget", fontsize=10)
    fig.tight_layout()
    budget_png = out / BUDGET_PNG
    fig.savefig(budget_png, dpi=100)
    plt.close(fig)
    return [latency_png, budget_png]
