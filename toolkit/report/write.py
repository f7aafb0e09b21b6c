"""The report of a profiling run: report.json (every figure), report.md (warnings, what to ship per
format, the verdict table per artifact, then details) and PNG plots, each drawn by a function that
returns its matplotlib Figure (the tests read the drawn values back): latency.png (every call per
artifact, log axis), budget.png (each check's figure per artifact, coloured by its verdict, quality
included), candidates.png (the plan: priors before training, measurements after, the chosen one).
Sizes are written with `toolkit.core.units.format_bytes`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.core.profiles import DeviceProfile
from toolkit.core.units import byte_unit, format_bytes
from toolkit.profiler.judge import PARITY_MIN_AGREEMENT, POPULARITY_NOISE_Z, QUALITY_MARGIN, popularity_rule
from toolkit.profiler.records import ArtifactProfile
from toolkit.profiler.run import WHERE

if TYPE_CHECKING:  # toolkit.core.manifest imports numpy (through toolkit.training.evaluate): the report stays light
    from toolkit.core.manifest import Recommendation

REPORT_JSON, REPORT_MD = "report.json", "report.md"
LATENCY_PNG, BUDGET_PNG, CANDIDATES_PNG = "latency.png", "budget.png", "candidates.png"


def report_dict(profile: DeviceProfile, results: list[ArtifactProfile],
                recommended: dict[str, Recommendation] | None = None, warnings: list[str] | None = None) -> dict:
    return {"profile": profile.to_dict(), "fits": all(r.fits for r in results),
            "thresholds": thresholds(), "warnings": list(warnings or []),
            "recommended": {fmt: r.to_dict() for fmt, r in (recommended or {}).items()},
            "artifacts": [r.to_dict() for r in results]}


def thresholds() -> dict:
    """What the parity and quality checks require (stated in every report)."""
    return {"parity_min_top10_agreement": PARITY_MIN_AGREEMENT, "quality_margin": QUALITY_MARGIN,
            "popularity_noise_z": POPULARITY_NOISE_Z,
            "quality_rule": f"NDCG@K through the artifact {popularity_rule()}, and at least "
                            f"(1 - {QUALITY_MARGIN}) x its float model's NDCG@K"}


def verdict_table(profile: DeviceProfile, results: list[ArtifactProfile]) -> str:
    """A plain-text table: one row per artifact, one column per budget (used by the CLI)."""
    b = profile.budget
    head = (f"{'artifact':<22} {'verdict':<13} {'model':>9} {'memory':>10} {'p95 device (est.)':>18} {'thr':>4}  "
            f"{'top-10 agree':>12} {'NDCG':>7}  failed")
    budget = (f"{'budget: ' + profile.name:<36} {format_bytes(b.model_bytes):>9} {format_bytes(b.memory_bytes):>10} "
              f"{b.latency_ms:>16.2f}ms")
    rows = [head, budget]
    for r in results:
        failed = ", ".join(c.budget for c in r.checks if not c.passed) or "-"
        dev = "unknown" if r.latency.device_p95_ms is None else f"{r.latency.device_p95_ms:.3f}ms"
        ndcg = "n/a" if r.quality.ndcg is None else f"{r.quality.ndcg:.4f}"
        rows.append(f"{r.path:<22} {'fits' if r.fits else 'DOES NOT FIT':<13} {format_bytes(r.bytes):>9} "
                    f"{format_bytes(r.memory.verdict_bytes):>10} {dev:>18} {r.latency.threads:>4}  "
                    f"{_fixed(r.parity.get('top10_agreement'), 3):>12} {ndcg:>7}  {failed}")
    return "\n".join(rows)


def write_report(out: Path, profile: DeviceProfile, results: list[ArtifactProfile], plan: dict | None = None,
                 serving: dict | None = None, recommended: dict[str, Recommendation] | None = None,
                 warnings: list[str] | None = None, data: dict | None = None) -> list[Path]:
    """Write report.json, report.md and the plots into `out`; returns the paths written.

    plan: a build's `PlanResult.to_dict()`: adds the candidates the plan considered and their
    Pareto plot (candidates.png). serving: the build's ServingRecord (candidates returned).
    recommended: format -> the artifact to ship (`toolkit.core.manifest.recommend`). warnings: what the
    build found worth a warning (e.g. a teacher below the popularity baseline). data: the build's
    DataSummary (what was read, dropped and kept)."""
    out = Path(out)
    report = report_dict(profile, results, recommended, warnings)
    text = markdown(profile, results, serving, recommended, warnings)
    written = plot(out, profile, results)
    if serving is not None:
        report["serving"] = serving
    if data is not None:
        report["data"] = data
        text += "\n" + data_markdown(data)
    if plan is not None:
        report["plan"] = plan
        text += "\n" + plan_markdown(profile, plan)
        written.append(_save(candidates_figure(profile, plan), out / CANDIDATES_PNG))
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
    tolerance = plan.get("quality_tolerance")
    scored = [r for r in tried if r.get("valid_ndcg10") is not None and r.get("fits_measured")]
    if tolerance is not None and scored:
        best = max(r["valid_ndcg10"] for r in scored)
        lines += [f"Choice: of the trained candidates that fit, the smallest file whose validation NDCG@10 is within "
                  f"{tolerance:.0%} (relative) of the best trained ({best:.4f}, so at least {best * (1 - tolerance):.4f}); "
                  f"the trial order uses the same tolerance on the priors. The profile's artifacts are chosen by the "
                  f"same rule on test NDCG (recommended, above).", ""]
    for fmt, why in plan.get("unfit_formats", {}).items():
        lines += [f"**{fmt} is not built: {why}.** The profile asks for it, so the build does not fit (exit 1).", ""]
    if plan.get("steps"):
        lines += ["Compression of the chosen student (each step measured):", "",
                  "| step | weights before → after | valid NDCG@10 before → untuned → after |", "|---|---|---|"]
        for st in plan["steps"]:
            name = st["technique"] + ("" if st.get("kept", True) else " (tried, not kept: PTQ was better)")
            lines.append(f"| {name} | {format_bytes(st['bytes_before'])} → {format_bytes(st['bytes_after'])} | "
                         f"{st['ndcg_before']:.4f} → {st['ndcg_untuned']:.4f} → {st['ndcg_after']:.4f} |")
        lines.append("")
    lines += [f"![candidates]({CANDIDATES_PNG})", "",
              "| candidate | fits (estimate) | file, estimated | file, measured | valid NDCG@10 "
              "(float → compressed) | prior NDCG@10 | seconds |", "|---|---|---|---|---|---|---:|"]
    shown = tried + sorted((r for r in fitting if not r["tried"]), key=lambda r: -r["prior_ndcg10"])[:15]
    for r in shown:
        c = r["candidate"]
        name = (f"dim {c['dim']}, {c['layers']} block(s), rank {c['embedding_rank'] or 'full'}, {c['precision']}"
                + (", two-stage" if c.get("two_stage") else ""))
        est = ", ".join(f"{f} {format_bytes(b)}" for f, b in r["predicted"]["file_bytes"].items())
        meas = ", ".join(f"{f} {format_bytes(b)}" for f, b in r["measured_bytes"].items()) or "-"
        nd = (f"{r['float_valid_ndcg10']:.4f} → {r['valid_ndcg10']:.4f}" if r["tried"] else "not trained")
        lines.append(f"| {name}{' **(chosen)**' if r['tried'] and c == chosen else ''} | "
                     f"{'yes' if r['fits_predicted'] else 'no'} | {est} | {meas} | {nd} | {r['prior_ndcg10']:.3f} | "
                     f"{r['seconds']:.0f} |")
    if len(fitting) > len(shown):
        lines.append(f"\n({len(fitting) - len(shown)} more fitting candidates and {len(records) - len(fitting)} "
                     "that do not fit are in report.json.)")
    return "\n".join(lines) + "\n"


def candidates_figure(profile: DeviceProfile, plan: dict):
    """Two panels on one size axis: left, every candidate before training (estimated file size,
    prior NDCG@10 expected from the proxy students); right, the candidates trained (measured file
    size, measured validation NDCG@10 of the compressed model), the chosen one a large star, the band
    of the choice rule (within `quality_tolerance` of the best trained) shaded. The model budget is
    a dashed line on both. Returns the matplotlib Figure (axes' gid: "prior", "trained")."""
    plt = _pyplot()
    unit, scale = byte_unit(profile.budget.model_bytes)
    fig, (prior_ax, trained_ax) = plt.subplots(1, 2, figsize=(11, 4.6))
    prior_ax.set_gid("prior")
    trained_ax.set_gid("trained")
    records = plan["candidates"]
    tried = [r for r in records if r["tried"]]
    chosen = [r for r in tried if r["candidate"] == plan["candidate"]]
    for fits, color, label in ((True, "tab:blue", "fits the budgets by estimate"),
                               (False, "tab:grey", "does not fit by estimate")):
        pts = [r for r in records if r["fits_predicted"] == fits]
        if not pts:
            continue
        prior_ax.scatter([max(r["predicted"]["file_bytes"].values()) / scale for r in pts],
                         [r["prior_ndcg10"] for r in pts], s=14, facecolors="none", edgecolors=color, label=label,
                         gid=f"prior-{'fits' if fits else 'misses'}")
    prior_ax.scatter([max(r["predicted"]["file_bytes"].values()) / scale for r in tried],
                     [r["prior_ndcg10"] for r in tried], s=70, facecolors="none", edgecolors="tab:orange",
                     linewidths=1.5, label="trained (right)", gid="prior-tried")
    prior_ax.set_title(f"before training: {len(records)} candidates (estimates)", fontsize=9)
    prior_ax.set_ylabel("prior NDCG@10 (expected, proxy students)")
    prior_ax.set_xlabel(f"estimated file ({unit}, log scale; largest format)")

    others = [r for r in tried if r not in chosen and r.get("keeps_quality") is not False]
    broken = [r for r in tried if r not in chosen and r.get("keeps_quality") is False]
    for group, style in ((others, {"s": 40, "color": "tab:orange", "label": "trained, not chosen", "gid": "trained-others"}),
                         (broken, {"s": 50, "color": "tab:red", "marker": "x", "gid": "trained-lost",
                                   "label": f"trained, lost > {QUALITY_MARGIN:.0%} of its float student's quality "
                                            "to compression"})):
        if group:
            trained_ax.scatter([max(r["measured_bytes"].values()) / scale for r in group],
                               [r["valid_ndcg10"] for r in group], **style)
    trained_ax.scatter([max(r["measured_bytes"].values()) / scale for r in chosen], [r["valid_ndcg10"] for r in chosen],
                       s=260, color="tab:green", marker="*", edgecolors="k", zorder=3, label="chosen", gid="chosen")
    fitting = [r for r in tried if r.get("fits_measured") and r.get("valid_ndcg10") is not None]
    tolerance = plan.get("quality_tolerance")
    if fitting and tolerance is not None:
        best = max(r["valid_ndcg10"] for r in fitting)
        trained_ax.axhspan(best * (1 - tolerance), best, color="tab:green", alpha=0.15,
                           label=f"within {tolerance:.0%} of the best that fits", gid="tolerance")
    trained_ax.set_title(f"trained: {len(tried)} candidate(s) (measured)", fontsize=9)
    trained_ax.set_ylabel("valid NDCG@10 (measured, compressed)")
    trained_ax.set_xlabel(f"measured file ({unit}, log scale; largest format)")
    ys = [r["valid_ndcg10"] for r in tried if r["valid_ndcg10"] is not None]
    if ys:  # room around the points (and the budget), so a lone star is not drawn at an axis edge
        pad = max(0.1 * (max(ys) - min(ys)), 0.05 * max(ys), 1e-3)
        trained_ax.set_ylim(min(ys) - pad, max(ys) + pad)
        xs = [max(r["measured_bytes"].values()) / scale for r in tried] + [profile.budget.model_bytes / scale]
        trained_ax.set_xlim(min(xs) / 1.3, max(xs) * 1.3)
    for ax in (prior_ax, trained_ax):
        ax.axvline(profile.budget.model_bytes / scale, color="k", linestyle="--",
                   label=f"model budget {format_bytes(profile.budget.model_bytes)}")
        _log_ticks(ax)
        ax.legend(fontsize=7, loc="best")
        ax.tick_params(labelsize=7)
    fig.suptitle(f"{profile.name}: student candidates", fontsize=10)
    fig.tight_layout()
    return fig


def markdown(profile: DeviceProfile, results: list[ArtifactProfile], serving: dict | None = None,
             recommended: dict[str, Recommendation] | None = None, warnings: list[str] | None = None) -> str:
    b, hw = profile.budget, profile.hardware
    host = results[0].host if results else {}
    lines = [
        f"# Profile report: {profile.name}",
        "",
        f"{profile.description}. Budgets: model {format_bytes(b.model_bytes)}, memory {format_bytes(b.memory_bytes)}, "
        f"p95 latency {b.latency_ms:g} ms on the device; {hw.threads} thread(s), {hw.gflops:g} GFLOP/s, "
        f"int8 {'yes' if hw.int8 else 'no'}, formats {', '.join(profile.serving.formats)}.",
        "",
        "An artifact fits when every check passes: size, memory (what the app loads, runtime included), "
        "latency (device estimate), parity with the model it was exported from (top-10 agreement at least "
        f"{PARITY_MIN_AGREEMENT['same weights']} for the same weights, {PARITY_MIN_AGREEMENT['quantized at export']} "
        f"when quantized at export) and quality (NDCG through the artifact {popularity_rule()}, and within "
        f"{QUALITY_MARGIN:.0%} of its float model). A figure that could not be measured is unknown and fails. "
        "Each failed check says what failed, by how much, and what to try.",
        "",
    ]
    if warnings:
        lines += ["## Warnings", ""] + [f"- **warning:** {w}" for w in warnings] + [""]
    if recommended:
        lines += ["## What to ship", "", "| format | artifact | why |", "|---|---|---|"]
        lines += [f"| {fmt} | {'**' + r.path + '**' if r.path else 'none'} | {r.why} |" for fmt, r in recommended.items()]
        lines.append("")
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
        cell = {k: f"{'pass' if c.passed else '**FAIL**'}: {_cell(c)}" for k, c in checks.items()}
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
                  f"{r.format}, {r.precision}, {format_bytes(r.bytes)} ({r.bytes:,} bytes), sha256 `{r.sha256[:16]}…`. "
                  f"Verdict: **{'fits' if r.fits else 'does not fit'}**.", ""]
        lines += [f"- {'pass' if c.passed else '**FAIL**'} `{c.budget}`: {c.text}"
                  + ("" if c.passed else f". **Try:** {c.advice}") for c in r.checks]
        lines += [f"- not checked `{budget}`: {why}" for budget, why in r.not_checked.items()]
        if r.download:
            lines.append(f"- download: {r.download.how}")
        lines += ["", "Memory (the verdict uses the first line):",
                  f"- {m.basis}: {format_bytes(m.verdict_bytes)}: {m.how}"]
        if m.python_bytes is not None:
            lines.append(f"- Python process: {format_bytes(m.python_bytes)} above the bare interpreter (runtime, bindings"
                         f"{' and torch' if r.format == 'executorch' else ''} and model), {format_bytes(m.python_model_bytes)} "
                         "above the imported runtime (the model's own)")
        if m.native_bytes is not None:
            client = "native C++ client" if r.format == "executorch" else "native ONNX Runtime client (C API)"
            lines.append(f"- {client}: {format_bytes(m.native_bytes)} (whole process)")
        if m.browser_bytes is not None:
            lines.append(f"- headless Chromium: {format_bytes(m.browser_bytes)} onnxruntime-web wasm memory, "
                         f"{format_bytes(m.browser_renderer_bytes)} the page's renderer process")
        if m.program_bytes is not None:
            lines.append(f"- from the program: {format_bytes(m.program_bytes)} (planned activations "
                         f"{format_bytes(m.program['planned_activation_bytes'])} + constants "
                         f"{format_bytes(m.program['constant_bytes'])})")
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


def _cell(c) -> str:
    """A check's figure for the summary table: the text before its explanation, or value against limit."""
    if c.budget == "quality" and c.value is not None:
        return f"NDCG {c.value:.4f} (needs {c.limit:.4f})"
    return c.text.split(" (")[0]


def _ops_lines(ops: dict) -> list[str]:
    if not ops:
        return ["- not inspected (the artifact was not measured)"]
    if "delegate_calls" in ops:
        outside = ", ".join(f"{k} x{v}" for k, v in ops["outside_xnnpack"].items()) or "none"
        nodes = ", ".join(f"{k} x{v}" for k, v in ops["xnnpack_nodes"].items())
        return [f"- {ops['xnnpack_nodes_total']} ops in {ops['delegate_calls']} XNNPACK delegate call(s): {nodes}",
                f"- {ops['outside_xnnpack_total']} ops outside XNNPACK: {outside}"]
    return [f"- {ops['nodes']} ONNX nodes: " + ", ".join(f"{k} x{v}" for k, v in ops["op_types"].items())]


VERDICT_COLORS = {"pass": "tab:green", "fail": "tab:red", "unknown": "tab:grey"}
# budget.png's panels: the check each one draws, its title, and whether its figures are bytes
BUDGET_PANELS = (("model_bytes", "model file", True), ("memory_bytes", "memory (the verdict's figure)", True),
                 ("latency_ms", "p95 latency (ms, device estimate)", False), ("quality", "quality", False))


def plot(out: Path, profile: DeviceProfile, results: list[ArtifactProfile]) -> list[Path]:
    """latency.png (`latency_figure`) and budget.png (`budget_figure`) into `out`."""
    if not results:
        return []
    return [_save(latency_figure(profile, results), out / LATENCY_PNG),
            _save(budget_figure(profile, results), out / BUDGET_PNG)]


LATENCY_SHOWN_P95 = 3.0  # latency.png's axis ends at the first bin edge past this many times the p95


def latency_figure(profile: DeviceProfile, results: list[ArtifactProfile]):
    """One panel per artifact: the host latency per call at the recommended threads (the figures the
    verdict scales; the native client's for a .pte measured natively), on a log axis from the fastest
    call to `LATENCY_SHOWN_P95` x p95, so the body of the distribution is readable; the slower calls of
    a busy host are not lumped into an overflow bar but counted in a note ("N calls above X ms,
    slowest Y ms"). p50, p95 and the quiet p95 marked. Returns the Figure (axes' gid: the artifact;
    the note's gid: "slower")."""
    import numpy as np

    plt = _pyplot()
    fig, axes = plt.subplots(len(results), 1, figsize=(8, 2.4 * len(results) + 0.6), squeeze=False)
    for ax, r in zip(axes[:, 0], results):
        ax.set_gid(r.path)
        native = f"native/{r.latency.threads}"
        key = native if native in r.latency.timings else str(r.latency.threads)
        t = r.latency.timings.get(key)
        if t is None:  # not measured
            ax.set_title(f"{r.path}: latency not measured", fontsize=9)
            ax.set_axis_off()
            continue
        edges, counts = np.asarray(t.histogram["edges_ms"]), np.asarray(t.histogram["counts"])
        ax.stairs(counts, edges, fill=True, alpha=0.7, color="tab:blue", gid="calls")
        for value, style, label in ((t.p50_ms, ":", "p50"), (t.p95_ms, "--", "p95"), (t.quiet_p95_ms, "-.", "quiet p95")):
            ax.axvline(value, color="k", linestyle=style, linewidth=1, label=f"{label} {value:.3f} ms", gid=label)
        end = int(min(np.searchsorted(edges, LATENCY_SHOWN_P95 * t.p95_ms), len(edges) - 1))
        ax.set_xlim(edges[0], edges[end])
        slower = int(counts[end:].sum())  # the bins right of the axis' end
        if slower:
            ax.annotate(f"{slower} calls above {edges[end]:.3g} ms (slowest {edges[-1]:.3g} ms): not drawn",
                        (0.99, 0.5), xycoords="axes fraction", ha="right", fontsize=7, gid="slower")
        _log_ticks(ax)
        device = ("device estimate unknown" if r.latency.device_p95_ms is None else
                  f"device estimate p95 {r.latency.device_p95_ms:.3f} ms (x{r.latency.scale:.2f})")
        where = "native C++ client" if key == native else "Python runtime"
        ax.set_title(f"{r.path}: {t.calls} calls in the {where}, {r.latency.threads} thread(s)\n"
                     f"{device}; budget p95 {profile.budget.latency_ms:g} ms on the device", fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
        ax.set_ylabel("calls")
        ax.tick_params(labelsize=7)
    axes[-1, 0].set_xlabel(f"ms per call on this host (log scale, up to {LATENCY_SHOWN_P95:g} x p95)")
    fig.tight_layout()
    return fig


def budget_figure(profile: DeviceProfile, results: list[ArtifactProfile]):
    """Each artifact against each budget and the quality rule, one panel per check (axes' gid: the
    check's name), one bar per artifact coloured by that check's verdict (green pass, red fail, grey
    unknown: no bar); the artifact's overall verdict in its label. Sizes in the unit that fits the
    budget; the budget a dashed line; in the quality panel a black tick per artifact at the NDCG it
    needed and the popularity baseline dotted. Returns the Figure."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(BUDGET_PANELS), figsize=(13, 0.6 * len(results) + 3.0), sharey=True)
    names = [f"{r.path}\n{'fits' if r.fits else 'DOES NOT FIT'}" for r in results]
    ys = list(range(len(results)))
    for ax, (budget, title, is_bytes) in zip(axes, BUDGET_PANELS):
        ax.set_gid(budget)
        checks = [next(c for c in r.checks if c.budget == budget) for r in results]
        limits = [c.limit for c in checks if c.limit is not None]
        unit, scale = byte_unit(max(limits)) if is_bytes and limits else ("", 1.0)
        values = [0.0 if c.value is None else c.value / scale for c in checks]
        verdicts = ["unknown" if c.value is None else "pass" if c.passed else "fail" for c in checks]
        ax.barh(ys, values, height=0.6, color=[VERDICT_COLORS[v] for v in verdicts])
        for y, v, c, verdict in zip(ys, values, checks, verdicts):
            shown = ("" if c.value is None else format_bytes(c.value) if is_bytes
                     else f"{c.value:.4f}" if budget == "quality" else f"{c.value:.2f} ms")
            ax.annotate(f"{verdict} {shown}".strip(), (v, y), xytext=(3, 0), textcoords="offset points",
                        va="center", fontsize=7)
        if budget == "quality":
            q = [r.quality for r in results]
            needed = [(y, c.limit) for y, c in zip(ys, checks) if c.limit is not None]
            ax.scatter([n for _, n in needed], [y for y, _ in needed], marker="|", s=400, color="k", zorder=3,
                       label="needed (popularity + noise, or float - 5%)", gid="needed")
            pops = {x.popularity_ndcg for x in q if x.popularity_ndcg is not None}
            for pop in pops:
                ax.axvline(pop, color="k", linestyle=":", label=f"popularity {pop:.4f}")
            k = next((x.k for x in q if x.k), 10)
            ax.set_title(f"NDCG@{k} through the artifact (test)", fontsize=9)
        else:
            limit = checks[0].limit / scale
            shown = format_bytes(checks[0].limit) if is_bytes else f"{checks[0].limit:g} ms"
            ax.axvline(limit, color="k", linestyle="--", label=f"budget {shown}", gid="budget")
            ax.set_title(f"{title} ({unit})" if unit else title, fontsize=9)
        ax.set_xlim(0, max(values + [c.limit / scale for c in checks if c.limit is not None]) * 1.25 or 1.0)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12))
        ax.tick_params(labelsize=7)
    axes[0].set_yticks(ys, names)
    axes[0].set_ylim(len(results) - 0.5, -0.5)  # the first artifact at the top
    for label, r in zip(axes[0].get_yticklabels(), results):
        label.set_color(VERDICT_COLORS["pass" if r.fits else "fail"])
    fitting = sum(r.fits for r in results)
    fig.suptitle(f"{profile.name}: {fitting} of {len(results)} artifact(s) fit (bars: green pass, red fail, "
                 "grey unknown)", fontsize=10)
    fig.tight_layout()
    return fig


def _log_ticks(ax) -> None:
    """A log x axis labelled in plain numbers (0.2, 0.5, 1, 2; 40, 50, 60), not powers of ten."""
    import math

    from matplotlib.ticker import LogLocator, NullFormatter, StrMethodFormatter

    ax.set_xscale("log")
    low, high = ax.get_xlim()
    decades = math.log10(high / low) if low > 0 and high > low else 1.0
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if decades > 1 else range(1, 10)))
    ax.xaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
