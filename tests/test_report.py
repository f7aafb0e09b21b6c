"""The report and its verdicts (toolkit/report/write.py, markdown.py, plots.py, the judging in
toolkit/profiler/judge.py, toolkit/core/units.py,
`toolkit.profiler.recommend.recommend`): sizes in a unit that fits, failed checks that say what failed, by how
much and what to try, the recommended artifact per format, and plots whose drawn values are the
report's (read back from each matplotlib figure's data, not from pixels).

The artifacts here are typed profiler records with the figures of the smartwatch trial build
(issue 25: a 55 KB .pte at NDCG@10 0.0062 against popularity 0.0273 on 200 users); their timings
go through the real `toolkit.profiler.measure` summary.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from toolkit.profiler.recommend import recommend
from toolkit.profiler.measure import timing_from_samples
from toolkit.profiler.judge import judge, popularity_noise
from toolkit.profiler.records import ArtifactProfile, Latency, Memory, Quality
from toolkit.core.profiles import load_profile
from toolkit.core.units import format_bytes

SMARTWATCH = load_profile("smartwatch")


def _samples(n: int = 997, slow: int = 3, seed: int = 0) -> list[float]:
    """Per-call times (ms) of a fast model: ~0.03 ms, and a few calls a busy host made 4 ms."""
    rng = np.random.default_rng(seed)
    fast = rng.normal(0.03, 0.003, n).clip(0.02, None)
    return list(fast) + [4.0] * slow


def artifact(path: str, size: int, ndcg: float, float_ndcg: float, popularity: float = 0.0273, users: int = 200,
             memory: int | None = 9_690_000, profile=SMARTWATCH, fmt: str = "executorch") -> ArtifactProfile:
    timing = timing_from_samples(_samples())
    device_p95 = timing.quiet_p95_ms * 4.0
    r = ArtifactProfile(
        path=path, format=fmt, precision="int8", bytes=size, sha256="ab" * 32,
        memory=Memory(basis="native" if memory else "unknown", verdict_bytes=memory, how="native C++ client",
                      native_bytes=memory, python_bytes=36_000_000, python_model_bytes=400_000, program_bytes=380_000,
                      program={"planned_activation_bytes": 310_000, "constant_bytes": 70_000}),
        latency=Latency(threads=1, timings={"native/1": timing}, device_p50_ms=timing.quiet_p50_ms * 4.0,
                        device_p95_ms=device_p95, device_p99_ms=timing.quiet_p99_ms * 4.0, scale=4.0,
                        how="quiet native figures x4"),
        ops={}, parity={"top10_agreement": 1.0, "histories": 200, "top10_exact": 1.0, "max_score_error": 0.0},
        parity_min=0.85, quality=Quality(k=10, ndcg=ndcg, hr=2 * ndcg, users=users, float_ndcg=float_ndcg,
                                         popularity_ndcg=popularity),
        io={"max_history": 50, "candidates": 81}, host={})
    r.checks = judge(r, profile)
    return r


def check(r: ArtifactProfile, budget: str):
    return next(c for c in r.checks if c.budget == budget)


@pytest.mark.parametrize("n,text", [(512, "512 B"), (25_000, "25.0 KB"), (55_424, "55.4 KB"), (60_000, "60.0 KB"),
                                    (104_000, "104 KB"), (4_000_000, "4.00 MB"), (24_000_000, "24.0 MB"),
                                    (None, "unknown")])
def test_sizes_have_the_unit_that_fits(n, text):
    assert format_bytes(n) == text


def test_a_small_budget_reads_in_kb_not_as_0_06_mb():
    r = artifact("model.compressed.pte", 104_000, 0.05, 0.05)
    model = check(r, "model_bytes")
    assert not model.passed and model.text.startswith("model 104 KB of 60.0 KB")
    assert "over by 44.0 KB" in model.text and "0.06 MB" not in model.text


def test_a_failed_quality_check_says_which_condition_failed_by_how_much_and_what_to_try():
    """The trial's artifact: 0.0062 through the artifact, its float model 0.0062, popularity 0.0273."""
    q = check(artifact("model.compressed.pte", 55_424, 0.0062, 0.0062), "quality")
    assert not q.passed
    assert "failed: not above popularity 0.0273" in q.text and "below it by 0.0211" in q.text
    assert "noise of 200 users" in q.text
    assert "passed: within 5% of its float model's 0.0062" in q.text
    assert "--epochs" in q.advice and "more data" in q.advice and "another profile" in q.advice
    lost = check(artifact("model.compressed.pte", 55_424, 0.08, 0.10, popularity=0.02, users=943), "quality")
    assert not lost.passed and "failed: not within 5% of its float model's 0.1000: 20.0% below it" in lost.text
    assert "float artifact" in lost.advice


def test_above_popularity_means_above_it_by_more_than_the_noise_of_that_many_users():
    """0.0350 against 0.0273 is 0.0077 above: noise on 200 users (2 x sqrt(0.0623 / 200) = 0.035),
    a real difference on 100,000 users."""
    few = check(artifact("a.pte", 50_000, 0.035, 0.035, users=200), "quality")
    many = check(artifact("a.pte", 50_000, 0.035, 0.035, users=100_000), "quality")
    assert popularity_noise(0.035, 0.0273, 200) == pytest.approx(2 * np.sqrt(0.0623 / 200))
    assert not few.passed and "0.0077" in few.text and many.passed
    assert few.limit == pytest.approx(0.0273 + popularity_noise(0.035, 0.0273, 200))


def test_every_failed_check_says_what_to_try_and_the_report_shows_it(tmp_path):
    r = artifact("model.fp32.onnx", 104_000, 0.0062, 0.0062, memory=None, fmt="onnx")  # a .pte-only profile
    failed = [c for c in r.checks if not c.passed]
    assert {c.budget for c in failed} == {"format", "model_bytes", "memory_bytes", "quality"}
    assert all(c.advice for c in failed) and all("try:" in f for f in r.failures())
    from toolkit.report.write import write_report

    write_report(tmp_path, SMARTWATCH, [r])
    md = (tmp_path / "report.md").read_text()
    assert md.count("**Try:**") == len(failed) and "104 KB" in md and "0.10 MB" not in md
    assert "from the program: 380 KB (planned activations 310 KB + constants 70.0 KB)" in md
    assert "noise of the users evaluated" in json.loads((tmp_path / "report.json").read_text())["thresholds"][
        "quality_rule"]


def test_a_failed_serving_check_names_the_shape_that_differs():
    r = artifact("model.fp32.pte", 50_000, 0.09, 0.09)
    r.io = {"max_history": 30, "candidates": 10}
    serving = next(c for c in judge(r, SMARTWATCH) if c.budget == "serving")
    assert not serving.passed and "history 30 is not the device's 50" in serving.text
    assert "10 candidates, fewer than the 20 the device shows" in serving.text and "rebuild" in serving.advice


def test_recommended_is_the_smallest_that_fits_with_the_best_quality():
    mobile = load_profile("mobile-arm")
    fp32 = artifact("model.fp32.pte", 240_000, 0.1100, 0.1100, popularity=0.03, users=943, profile=mobile)
    int8 = artifact("model.int8.pte", 90_000, 0.1090, 0.1100, popularity=0.03, users=943, profile=mobile)
    broken = artifact("model.compressed.pte", 60_000, 0.0800, 0.1100, popularity=0.03, users=943, profile=mobile)
    onnx = artifact("model.fp32.onnx", 9_000_000, 0.1100, 0.1100, popularity=0.03, users=943, profile=mobile,
                    fmt="onnx")
    assert fp32.fits and int8.fits and not broken.fits and not onnx.fits
    picks = recommend([fp32, int8, broken, onnx], ("executorch", "onnx"), tolerance=0.02)
    assert picks["executorch"].path == "model.int8.pte"  # 0.1090 is within 2 % of 0.1100, and smaller
    assert picks["onnx"].path is None and "model.fp32.onnx misses model_bytes" in picks["onnx"].why
    strict = recommend([fp32, int8], ("executorch",), tolerance=0.001)
    assert strict["executorch"].path == "model.fp32.pte"  # the best quality when the smaller one loses more
    unbuilt = recommend([fp32], ("executorch", "onnx"), 0.02, {"onnx": "no student fits onnx"})
    assert unbuilt["onnx"].path is None and "no student fits onnx" in unbuilt["onnx"].why


def test_budget_png_draws_each_artifact_with_its_verdict_and_quality(tmp_path):
    """The trial's figure drew every bar green while both smartwatch artifacts failed, without quality:
    each bar's length and colour are read back from the figure and checked against report.json."""
    from toolkit.report.plots import BUDGET_PANELS, VERDICT_COLORS, budget_figure
    from toolkit.report.write import write_report
    from toolkit.core.units import UNITS

    results = [artifact("model.compressed.pte", 55_424, 0.0062, 0.0062),  # fits the size, fails quality
               artifact("model.int8.pte", 104_000, 0.0400, 0.0400, memory=None),  # too big, memory unknown
               artifact("model.small.pte", 30_000, 0.0900, 0.0910)]  # fits
    write_report(tmp_path, SMARTWATCH, results)
    report = json.loads((tmp_path / "report.json").read_text())
    fig = budget_figure(SMARTWATCH, results)
    panels = {ax.get_gid(): ax for ax in fig.axes}
    assert set(panels) == {b for b, _, _ in BUDGET_PANELS} and "quality" in panels
    scale = dict(UNITS) | {"": 1.0}
    import matplotlib.colors as mcolors

    for budget, ax in panels.items():
        unit = ax.get_title().rsplit("(", 1)[-1].rstrip(")") if budget.endswith("bytes") else ""
        bars = ax.patches[:len(results)]
        for bar, entry in zip(bars, report["artifacts"]):
            c = next(c for c in entry["checks"] if c["budget"] == budget)
            want = "unknown" if c["value"] is None else "pass" if c["passed"] else "fail"
            assert mcolors.to_hex(bar.get_facecolor()) == mcolors.to_hex(VERDICT_COLORS[want]), (budget, entry["path"])
            assert bar.get_width() * scale[unit] == pytest.approx(c["value"] or 0.0, rel=1e-9), (budget, entry["path"])
    assert [not e["fits"] for e in report["artifacts"]] == [True, True, False]
    labels = [t.get_text() for t in panels["model_bytes"].get_yticklabels()]
    assert labels == [f"{e['path']}\n{'fits' if e['fits'] else 'DOES NOT FIT'}" for e in report["artifacts"]]
    colours = [mcolors.to_hex(t.get_color()) for t in panels["model_bytes"].get_yticklabels()]
    assert colours == [mcolors.to_hex(VERDICT_COLORS["pass" if e["fits"] else "fail"]) for e in report["artifacts"]]
    needed = next(c for c in panels["quality"].collections if c.get_gid() == "needed").get_offsets()[:, 0]
    assert list(needed) == pytest.approx([next(c for c in e["checks"] if c["budget"] == "quality")["limit"]
                                          for e in report["artifacts"]])


def test_latency_png_draws_the_calls_readably_and_counts_the_slow_ones(tmp_path):
    """997 calls at ~0.03 ms and 3 at 4 ms: the trial's plot put every call in one bar at 0.03 ms next
    to an overflow bin at 4 ms. Now the fast calls spread over many bins of a log axis that ends at
    3 x p95, the 3 slow ones are counted in a note, every call is in the report's histogram once,
    and the marked percentiles are the report's."""
    from toolkit.report.plots import latency_figure
    from toolkit.report.write import write_report

    r = artifact("model.compressed.pte", 55_424, 0.0062, 0.0062)
    write_report(tmp_path, SMARTWATCH, [r])
    t = json.loads((tmp_path / "report.json").read_text())["artifacts"][0]["latency"]["timings"]["native/1"]
    ax = latency_figure(SMARTWATCH, [r]).axes[0]
    stairs = next(p for p in ax.patches if p.get_gid() == "calls")
    counts, edges = np.asarray(stairs.get_data().values), np.asarray(stairs.get_data().edges)
    assert list(counts) == t["histogram"]["counts"] and counts.sum() == t["calls"] == 1_000
    assert edges[0] <= min(_samples()) and edges[-1] >= 4.0 and ax.get_xscale() == "log"
    low, high = ax.get_xlim()
    assert low == edges[0] and t["p95_ms"] < high <= 3 * t["p95_ms"] * 1.2
    shown = counts[edges[:-1] < high]
    assert (shown > 0).sum() >= 10 and shown.max() < 0.3 * t["calls"]  # spread out, not one bar
    note = next(a for a in ax.texts if a.get_gid() == "slower").get_text()
    assert note.startswith(f"{counts[edges[:-1] >= high].sum()} calls above ") and counts[edges[:-1] >= high].sum() == 3
    lines = {line.get_gid(): line.get_xdata()[0] for line in ax.lines}
    assert lines["p95"] == pytest.approx(t["p95_ms"]) and lines["p50"] == pytest.approx(t["p50_ms"])


def _plan() -> dict:
    """A plan as `PlanResult.to_dict()` writes it: two candidates trained (the chosen one the smaller,
    within the tolerance of the best), two only estimated."""
    def record(dim, est, prior, tried=False, measured=None, valid=None, fits=True):
        return {"candidate": {"dim": dim, "layers": 1, "heads": 1, "embedding_rank": 0, "precision": "int8"},
                "predicted": {"file_bytes": {"executorch": est}}, "fits_predicted": fits, "prior_ndcg10": prior,
                "tried": tried, "measured_bytes": {"executorch": measured} if measured else {},
                "valid_ndcg10": valid, "float_valid_ndcg10": valid, "fits_measured": True if tried else None,
                "seconds": 10.0}
    chosen = record(16, 40_000, 0.030, True, 41_000, 0.0392)
    return {"candidate": chosen["candidate"], "quality_tolerance": 0.02, "steps": [], "unfit_formats": {},
            "candidates": [chosen, record(24, 55_000, 0.040, True, 57_000, 0.0396),
                           record(32, 70_000, 0.045, fits=False), record(8, 20_000, 0.012)]}


def test_candidates_png_keeps_priors_and_measurements_apart_and_marks_the_chosen(tmp_path):
    from toolkit.report.plots import candidates_figure
    from toolkit.report.write import write_report

    plan = _plan()
    write_report(tmp_path, SMARTWATCH, [artifact("model.compressed.pte", 41_000, 0.05, 0.05)], plan=plan)
    report = json.loads((tmp_path / "report.json").read_text())["plan"]
    fig = candidates_figure(SMARTWATCH, plan)
    axes = {ax.get_gid(): ax for ax in fig.axes}
    assert "prior" in axes["prior"].get_ylabel() and "measured" in axes["trained"].get_ylabel()

    def points(ax, gid):
        return next(c for c in ax.collections if c.get_gid() == gid).get_offsets()

    prior = np.concatenate([points(axes["prior"], "prior-fits"), points(axes["prior"], "prior-misses")])
    want = sorted((max(r["predicted"]["file_bytes"].values()) / 1000, r["prior_ndcg10"]) for r in report["candidates"])
    assert np.allclose(sorted(map(tuple, prior)), want)
    star = points(axes["trained"], "chosen")
    chosen = next(r for r in report["candidates"] if r["tried"] and r["candidate"] == report["candidate"])
    assert list(star[0]) == pytest.approx([chosen["measured_bytes"]["executorch"] / 1000, chosen["valid_ndcg10"]])
    others = points(axes["trained"], "trained-others")
    assert len(others) == 1 and others[0][1] > star[0][1]  # the best is the larger one; the chosen is within 2 %
    band = next(p for p in axes["trained"].patches if p.get_gid() == "tolerance")  # a Rectangle, y in data
    assert band.get_y() == pytest.approx(0.0396 * 0.98) and band.get_y() + band.get_height() == pytest.approx(0.0396)
    fig.canvas.draw()  # every axis label inside the figure (the trial's y label was cut)
    width, height = fig.canvas.get_width_height()
    for ax in fig.axes:
        for label in (ax.yaxis.label, ax.xaxis.label):
            box = label.get_window_extent()
            assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= width and box.y1 <= height, label.get_text()
    assert "within 2% (relative)" in (tmp_path / "report.md").read_text()


def test_the_report_names_what_to_ship_and_the_warnings(tmp_path):
    from toolkit.report.write import write_report

    results = [artifact("model.compressed.pte", 55_424, 0.0062, 0.0062), artifact("model.small.pte", 30_000, 0.09, 0.09)]
    picks = recommend(results, ("executorch",), 0.02)
    warning = "the teacher's test NDCG@10 0.0156 is not above the popularity baseline's 0.0273"
    write_report(tmp_path, SMARTWATCH, results, recommended=picks, warnings=[warning])
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["recommended"]["executorch"]["path"] == "model.small.pte" and report["warnings"] == [warning]
    md = (tmp_path / "report.md").read_text()
    assert "| executorch | **model.small.pte** |" in md and f"**warning:** {warning}" in md
