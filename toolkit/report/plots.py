"""The report's PNG plots, each drawn by a function that returns its matplotlib Figure (the tests read
the drawn values back): latency.png (every call per artifact, log axis), budget.png (each check's
figure per artifact, coloured by its verdict, quality included), candidates.png (the plan: priors
before training, measurements after, the chosen one). matplotlib is imported only when drawing.
"""

from __future__ import annotations

from pathlib import Path

from toolkit.core.profiles import DeviceProfile
from toolkit.core.units import byte_unit, format_bytes
from toolkit.profiler.judge import QUALITY_MARGIN
from toolkit.profiler.records import ArtifactProfile

LATENCY_PNG, BUDGET_PNG, CANDIDATES_PNG = "latency.png", "budget.png", "candidates.png"


VERDICT_COLORS = {"pass": "tab:green", "fail": "tab:red", "unknown": "tab:grey"}
# budget.png's panels: the check each one draws, its title, and whether its figures are bytes
BUDGET_PANELS = (("model_bytes", "model file", True), ("memory_bytes", "memory (the verdict's figure)", True),
                 ("latency_ms", "p95 latency (ms, device estimate)", False), ("quality", "quality", False))


def plot(out: Path, profile: DeviceProfile, results: list[ArtifactProfile]) -> list[Path]:
    """latency.png (`latency_figure`) and budget.png (`budget_figure`) into `out`."""
    if not results:
        return []
    return [save(latency_figure(profile, results), out / LATENCY_PNG),
            save(budget_figure(profile, results), out / BUDGET_PNG)]


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


def save(fig, path: Path) -> Path:
    """Write the figure as a PNG and close it (pyplot keeps every open figure otherwise)."""
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
