"""The report of a profiling run: report.json (every figure), report.md (verdict table per artifact,
then details) and PNG plots (latency distribution per artifact; size and memory against the budget).
"""

from __future__ import annotations

import json
from pathlib import Path

from toolkit.profiler import PARITY_MIN_AGREEMENT, QUALITY_MARGIN, WHERE, ArtifactProfile
from toolkit.profiles import DeviceProfile

REPORT_JSON, REPORT_MD = "report.json", "report.md"
LATENCY_PNG, BUDGET_PNG, CANDIDATES_PNG = "latency.png", "budget.png", "candidates.png"


def report_dict(profile: DeviceProfile, results: list[ArtifactProfile]) -> dict:
    return {"profile": profile.to_dict(), "fits": all(r.fits for r in results),
            "thresholds": thresholds(), "artifacts": [r.to_dict() for r in results]}


def thresholds() -> dict:
    """What the parity and quality checks require (stated in every report)."""
    return {"parity_min_top10_agreement": PARITY_MIN_AGREEMENT, "quality_margin": QUALITY_MARGIN,
            "quality_rule": "NDCG@K through the artifact above the popularity baseline and at least "
                            f"(1 - {QUALITY_MARGIN}) x its float model's NDCG@K"}


def verdict_table(profile: DeviceProfile, results: list[ArtifactProfile]) -> str:
    """A plain-text table: one row per artifact, one column per budget (used by the CLI)."""
    b = profile.budget
    head = (f"{'artifact':<22} {'verdict':<13} {'model':>9} {'memory':>10} {'p95 device (est.)':>18} {'thr':>4}  "
            f"{'top-10 agree':>12} {'NDCG':>7}  failed")
    budget = (f"{'budget: ' + profile.name:<36} {b.model_bytes / 1e6:>7.2f}MB {b.memory_bytes / 1e6:>8.2f}MB "
              f"{b.latency_ms:>16.2f}ms")
    rows = [head, budget]
    for r in results:
        failed = ", ".join(c.budget for c in r.checks if not c.passed) or "-"
        mem = "unknown" if r.memory.verdict_bytes is None else f"{r.memory.verdict_bytes / 1e6:.2f}MB"
        dev = "unknown" if r.latency.device_p95_ms is None else f"{r.latency.device_p95_ms:.3f}ms"
        ndcg = "n/a" if r.quality.ndcg is None else f"{r.quality.ndcg:.4f}"
        rows.append(f"{r.path:<22} {'fits' if r.fits else 'DOES NOT FIT':<13} {r.bytes / 1e6:>7.2f}MB {mem:>10} "
                    f"{dev:>18} {r.latency.threads:>4}  {_fixed(r.parity.get('top10_agreement'), 3):>12} "
                    f"{ndcg:>7}  {failed}")
    return "\n".join(rows)


def write_report(out: Path, profile: DeviceProfile, results: list[ArtifactProfile], plan: dict | None = None,
                 serving: dict | None = None, data: dict | None = None) -> list[Path]:
    """Write report.json, report.md and the plots into `out`; returns the paths written.

    plan: a build's `PlanResult.to_dict()`: adds the candidates the plan considered and their
    Pareto plot (candidates.png). serving: the build's ServingRecord (candidates returned). data: the
    build's DataSummary (what was read, dropped and kept)."""
    out = Path(out)
    report = report_dict(profile, results)
    text = markdown(profile, results, serving)
    written = plot(out, profile, results)
    if serving is not None:
        report["serving"] = serving
    if data is not None:
        report["data"] = data
        text += "\n" + data_markdown(data)
    if plan is not None:
        report["plan"] = plan
        text += "\n" + plan_markdown(profile, plan)
        written.append(plot_candidates(out / CANDIDATES_PNG, profile, plan))
    (out / REPORT_JSON).write_text(json.dumps(report, indent=2))
    (out / REPORT_MD).write_text(text)
    return [out / REPORT_JSON, out / REPORT_MD] + written


def data_markdown(data: dict) -> str:
    """The data section: rows read, what was dropped and why, repeats, unreachable test targets."""
    test_users = max(data["test_users"], 1)
    lines = ["# Data", "", "| | |", "|---|---:|",
             f"| rows read | {data['rows_read']:,} |",
             f"| exact duplicates dropped (same user, item, time) | {data['duplicates_dropped']:,} |",
             f"| users dropped (fewer than 3 events) | {data['users_dropped']:,} |",
             f"| users / items / interactions kept | {data['users']:,} / {data['items']:,} / {data['interactions']:,} |",
             f"| repeat events kept (an item the user already had) | {data['repeat_events']:,} |",
             f"| test targets already in the user's history | {data['test_targets_seen']:,} of {data['test_users']:,} "
             f"({data['test_targets_seen'] / test_users:.1%}) |",
             f"| unreachable test targets (`--repeats {data['repeats']}`) | {data['unreachable_test_targets']:,} "
             f"({data['unreachable_test_targets'] / test_users:.1%}) |", "",
             f"Time column read as {data['time_read_as']}. "
             + ("Seen items are never recommended (`--repeats drop`): a test target the user already has can never "
                "be hit." if data["repeats"] == "drop" else
                "Repeats allowed (`--repeats allow`): seen items may be recommended, the apps keep them and the "
                "metrics count them as hits.")]
    if data["unreachable_test_targets"] / test_users > data["warn_share"]:
        lines += ["", f"**Warning: more than {data['warn_share']:.0%} of the test targets are unreachable**; if users "
                      "re-consume items, build with `--repeats allow`."]
    return "\n".join(lines) + "\n"


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
    for fmt, why in plan.get("unfit_formats", {}).items():
        lines += [f"**{fmt} is not built: {why}.** The profile asks for it, so the build does not fit (exit 1).", ""]
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
        name = (f"dim {c['dim']}, {c['layers']} block(s), rank {c['embedding_rank'] or 'full'}, {c['precision']}"
                + (", two-stage" if c.get("two_stage") else ""))
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
    """Pareto plot: file size against validation NDCG@10 for every candidate (estimated size and prior
    quality for those not trained, measured for those trained), the model budget drawn as a line."""
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
    ax.set_ylabel("valid NDCG@10 (prior: expected from proxies; trained: measured)")
    ax.set_title(f"{profile.name}: student candidates", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def markdown(profile: DeviceProfile, results: list[ArtifactProfile], serving: dict | None = None) -> str:
    b, hw = profile.budget, profile.hardware
    host = results[0].host if results else {}
    lines = [
        f"# Profile report: {profile.name}",
        "",
        f"{profile.description}. Budgets: model {b.model_bytes / 1e6:.2f} MB, memory {b.memory_bytes / 1e6:.2f} MB, "
        f"p95 latency {b.latency_ms:g} ms on the device; {hw.threads} thread(s), {hw.gflops:g} GFLOP/s, "
        f"int8 {'yes' if hw.int8 else 'no'}, formats {', '.join(profile.serving.formats)}.",
        "",
        "An artifact fits when every check passes: size, memory (what the app loads, runtime included), "
        "latency (device estimate), parity with the model it was exported from (top-10 agreement at least "
        f"{PARITY_MIN_AGREEMENT['same weights']} for the same weights, {PARITY_MIN_AGREEMENT['quantized at export']} "
        f"when quantized at export) and quality (NDCG through the artifact above the popularity baseline and within "
        f"{QUALITY_MARGIN:.0%} of its float model). A figure that could not be measured is unknown and fails.",
        "",
    ]
    if serving:
        lines += [f"Serving: the app shows {serving['top_k']} items; the artifacts return {serving['candidates']} "
                  f"candidates so that {serving['top_k']} are left after the app drops what the user has already seen "
                  f"({serving['how']}). Metrics are at K = {serving['k']}.", ""]
    lines += [
        "| artifact | verdict | model (file) | memory | p95 on device (estimated) | threads | top-10 agreement | quality |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        checks = {c.budget: c for c in r.checks}
        cell = {k: f"{'pass' if c.passed else '**FAIL**'}: {c.text.split(' (')[0]}" for k, c in checks.items()}
        lines.append(f"| {r.path} | {'fits' if r.fits else '**does not fit**'} | {cell['model_bytes']} | "
                     f"{cell['memory_bytes']} | {cell['latency_ms']} | {r.latency.threads} | {cell['parity']} | "
                     f"{cell['quality']} |")
    lines += ["", f"Host: {host.get('machine', '?')}, {host.get('cpus', '?')} CPUs, calibrated "
              f"{host.get('gflops', float('nan')):.1f} GFLOP/s fp32 at {host.get('threads', '?')} thread(s). Device "
              "latency is an estimate: the quiet host figure (the least disturbed blocks of calls) x host GFLOP/s / "
              "device GFLOP/s. The recommended thread count is the faster of 1 and the profile's, measured.", ""]
    if results:
        lines += [f"![latency]({LATENCY_PNG})", "", f"![budget]({BUDGET_PNG})", ""]
    for r in results:
        m, lat, q = r.memory, r.latency, r.quality
        lines += [f"## {r.path}", "",
                  f"{r.format}, {r.precision}, {r.bytes:,} bytes, sha256 `{r.sha256[:16]}…`. "
                  f"Verdict: **{'fits' if r.fits else 'does not fit'}**.", ""]
        lines += [f"- {'pass' if c.passed else 'FAIL'} `{c.budget}`: {c.text}" for c in r.checks]
        lines += [f"- not checked `{budget}`: {why}" for budget, why in r.not_checked.items()]
        if r.download:
            lines.append(f"- download: {r.download.how}")
        lines += ["", "Memory (the verdict uses the first line):",
                  f"- {m.basis}: {_bytes(m.verdict_bytes)}: {m.how}"]
        if m.python_bytes is not None:
            lines.append(f"- Python process: {_bytes(m.python_bytes)} above the bare interpreter (runtime, bindings"
                         f"{' and torch' if r.format == 'executorch' else ''} and model), {_bytes(m.python_model_bytes)} "
                         "above the imported runtime (the model's own)")
        if m.native_bytes is not None:
            client = "native C++ client" if r.format == "executorch" else "native ONNX Runtime client (C API)"
            lines.append(f"- {client}: {_bytes(m.native_bytes)} (whole process)")
        if m.browser_bytes is not None:
            lines.append(f"- headless Chromium: {_bytes(m.browser_bytes)} onnxruntime-web wasm memory, "
                         f"{_bytes(m.browser_renderer_bytes)} the page's renderer process")
        if m.program_bytes is not None:
            lines.append(f"- from the program: {_bytes(m.program_bytes)} (planned activations "
                         f"{m.program['planned_activation_bytes']:,} bytes + constants {m.program['constant_bytes']:,} bytes)")
        lines += ["", "Latency (per call, ms):", "",
                  "| setting | calls | p50 | p95 | p99 | quiet p50 | quiet p95 |", "|---|---:|---:|---:|---:|---:|---:|"]
        for name, t in lat.timings.items():
            where, _, threads = name.rpartition("/")
            label = f"{WHERE[where + '/' if where else '']}, {threads} thread(s)"
            lines.append(f"| {label} | {t.calls} | {t.p50_ms:.3f} | {t.p95_ms:.3f} | {t.p99_ms:.3f} | "
                         f"{t.quiet_p50_ms:.3f} | {t.quiet_p95_ms:.3f} |")
        dev = "unknown" if lat.device_p95_ms is None else f"p50 {lat.device_p50_ms:.3f} ms, p95 {lat.device_p95_ms:.3f} ms"
        lines += ["", f"- recommended: {lat.threads} thread(s); device estimate {dev} ({lat.how})"]
        if lat.analytic_ms is not None and lat.device_p50_ms:
            ratio = lat.device_p50_ms / lat.analytic_ms
            note = " (far from the cost model: host load or per-op overhead dominates)" if not 1 / 3 < ratio < 3 else ""
            lines.append(f"- analytic cost model (FLOPs / device GFLOP/s + per-request overhead): {lat.analytic_ms:.3f} ms; "
                         f"measured estimate / analytic = {ratio:.2f}{note}")
        if lat.host_load is not None:
            lines.append(f"- host load while timing: {lat.host_load.text()}")
        lines += ["", "Ops:"] + _ops_lines(r.ops) + [""]
        p = r.parity
        lines += [f"Parity against the model it was exported from ({p['histories']} test histories): "
                  f"top-10 agreement {_fixed(p['top10_agreement'], 3)} (at least {r.parity_min}), exact top-10 "
                  f"{_fixed(p['top10_exact'], 3)}, max score error {_fixed(p['max_score_error'], 6)}.", ""]
        if q.ndcg is not None:
            lines += [f"Quality through the artifact, after the app's filtering: HR@{q.k} {q.hr:.4f}, NDCG@{q.k} "
                      f"{q.ndcg:.4f} ({q.users} test users, {q.undetermined} undetermined); float model NDCG@{q.k} "
                      f"{q.float_ndcg:.4f}, popularity {q.popularity_ndcg:.4f}.", ""]
        else:
            lines += ["Quality: unknown (no matching manifest entry).", ""]
    return "\n".join(lines)


def _fixed(x: float | None, digits: int) -> str:
    return "unknown" if x is None else f"{x:.{digits}f}"


def _bytes(n: int | None) -> str:
    return "unknown" if n is None else f"{n / 1e6:.2f} MB"


def _ops_lines(ops: dict) -> list[str]:
    if not ops:
        return ["- not inspected (the artifact was not measured)"]
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
        t = r.latency.timings.get(f"native/{r.latency.threads}") or r.latency.timings.get(str(r.latency.threads))
        if t is None:  # not measured
            ax.set_title(f"{r.path}: not measured", fontsize=9)
            continue
        edges, counts = t.histogram["edges_ms"], t.histogram["counts"]
        ax.stairs(counts, edges, fill=True, alpha=0.7)
        for value, style, label in ((t.p50_ms, ":", "p50"), (t.p95_ms, "--", "p95"), (t.quiet_p95_ms, "-.", "quiet p95")):
            ax.axvline(value, color="k", linestyle=style, linewidth=1, label=f"{label} {value:.3f} ms")
        ax.set_title(f"{r.path}: host latency, {t.calls} calls, {r.latency.threads} thread(s)", fontsize=9)
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
              ("memory (MB, the verdict's figure)", [(r.memory.verdict_bytes or 0) / 1e6 for r in results],
               b.memory_bytes / 1e6),
              ("p95 latency (ms, device estimate)", [r.latency.device_p95_ms or 0 for r in results], b.latency_ms)]
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
