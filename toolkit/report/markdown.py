"""The report's text: report.md (warnings, what to ship per format, the verdict table per artifact,
then details; the data and plan sections of a build) and the plain-text verdict table the CLI
prints. Sizes are written with `toolkit.core.units.format_bytes`.
"""

from __future__ import annotations


from toolkit.core.profiles import DeviceProfile
from toolkit.core.units import format_bytes
from toolkit.profiler.judge import PARITY_MIN_AGREEMENT, QUALITY_MARGIN, popularity_rule
from toolkit.profiler.recommend import Recommendation
from toolkit.profiler.records import ArtifactProfile
from toolkit.profiler.run import WHERE
from toolkit.report.plots import BUDGET_PNG, CANDIDATES_PNG, LATENCY_PNG


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


def own_student_markdown(plan: dict) -> str:
    """A user's own student (toolkit/recipe/own_student.py): the module and each compression technique,
    applied or not and why."""
    lines = [f"# Student: your own module {plan['module']}", "",
             f"{plan['parameters']:,} parameters (file sha256 {plan['file_sha256'][:16]}), distilled from the teacher: "
             f"valid NDCG@10 {plan['valid_ndcg10']:.4f}. Not planned: the toolkit's planner sizes its own SASRec.", "",
             "| technique | applied | why |", "|---|---|---|"]
    lines += [f"| {t['technique']} | {'yes' if t['applied'] else 'no'} | {t['why']} |" for t in plan["techniques"]]
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
