"""Duplicates and repeats through a build: the data summary in the log, the manifest and the report;
`--repeats allow` end to end (artifacts answer seen items, the metrics count them); `drop` warns
when test targets are unreachable."""

from __future__ import annotations

import json

from conftest import SHOP_BUILD_ARGS, run_cli
from fixtures.shop_log import write_shop_log
from toolkit.data import UNREACHABLE_WARN_SHARE, load_dataset, split_leave_one_out
from toolkit.recipe.build import BuildConfig, load_split, log_data_summary
from toolkit.core.profiles import load_profile

SHOP_READ = {"user_col": "customer", "item_col": "product", "time_col": "event_time"}


def test_drop_reports_unreachable_test_targets_and_warns(tmp_path):
    log = write_shop_log(tmp_path / "shop.csv")
    cfg = BuildConfig(data=str(log.path), **SHOP_READ)
    dataset, split, key = load_split(cfg, load_profile("mobile-arm"))
    lines: list[str] = []
    summary = log_data_summary(dataset, split, cfg.repeats, lines.append)
    assert summary.repeats == "drop" and not split.allow_repeats and "repeats" not in key
    seen = sum(int(s[-1] in s[:-1]) for s in dataset.sequences)
    assert summary.unreachable_test_targets == seen and seen / len(dataset.sequences) > UNREACHABLE_WARN_SHARE
    assert lines[0].startswith(f"data: shop: {log.rows:,} rows read, {log.duplicates} exact duplicates dropped")
    assert f"{seen} of {len(dataset.sequences)} test targets" in lines[0]
    assert lines[1].startswith("warning: ") and "--repeats allow" in lines[1]
    allow = load_split(BuildConfig(data=str(log.path), repeats="allow", **SHOP_READ), load_profile("mobile-arm"))
    assert allow[1].allow_repeats and allow[2]["repeats"] == "allow"  # cached teachers/priors are kept apart


def test_bad_repeats_mode_is_one_line_exit_2(cache_dir):
    result = run_cli("build", "--repeats", "sometimes")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "--repeats" in result.stderr
    assert "drop" in result.stderr and "allow" in result.stderr


def test_allow_build_records_the_mode_and_the_data_summary(shop_build):
    out, log, result = shop_build
    manifest = json.loads((out / "manifest.json").read_text())
    serving, data = manifest["serving"], manifest["data"]
    assert serving["repeats"] == "allow" and serving["candidates"] == serving["top_k"]
    assert data["rows_read"] == log.rows and data["duplicates_dropped"] == log.duplicates
    assert data["users_dropped"] == log.short_customers and data["users"] == log.customers
    assert data["repeats"] == "allow" and data["unreachable_test_targets"] == 0 and data["test_targets_seen"] > 0
    assert "converted to UTC" in data["time_read_as"]
    assert manifest["dataset"]["columns"] == {"user": "customer", "item": "product", "time": "event_time"}
    assert "history included" in manifest["protocol"]
    assert f"{log.duplicates} exact duplicates dropped" in result.stdout and "can never be hit" not in result.stdout  # no unreachable-targets warning under allow
    report = json.loads((out / "report.json").read_text())
    assert report["data"] == data and "# Data" in (out / "report.md").read_text()


def test_allow_artifacts_answer_seen_items_and_the_metrics_count_them(shop_build):
    """Through every artifact: some user's answers hold items of their history (impossible under drop),
    and the artifact's metrics equal a count made here that keeps seen items."""
    from export.runtime import Predictor
    from toolkit.training.evaluate import evaluate_topk, pad_histories

    out, log, _ = shop_build
    manifest = json.loads((out / "manifest.json").read_text())
    dataset = load_dataset(str(log.path), **SHOP_READ)
    split = split_leave_one_out(dataset, allow_repeats=True)
    for a in manifest["artifacts"]:
        predictor = Predictor(out / a["path"], threads=manifest["profile"]["hardware"]["threads"])  # as the build
        histories = split.history("test")
        padded = pad_histories(histories, predictor.max_history)
        answered_seen = sum(bool(set(predictor.predict(padded[u:u + 1])[1][0].tolist()) & set(h.tolist()))
                            for u, h in enumerate(histories))
        assert answered_seen > 0, a["path"]
        metrics = evaluate_topk(predictor.predict, split, "test", predictor.max_history, manifest["serving"]["k"])
        assert metrics.ndcg == a["metrics"]["ndcg"] and metrics.users == len(dataset.user_ids)
        # the same artifact judged as under drop scores lower: seen test targets are hits only here
        dropped = evaluate_topk(predictor.predict, split_leave_one_out(dataset), "test", predictor.max_history,
                                manifest["serving"]["k"])
        assert dropped.hr < metrics.hr, a["path"]


def test_time_format_flag_reaches_the_data(tmp_path, cache_dir):
    f = tmp_path / "log.csv"
    f.write_text("user,item,ts\n" + "".join(f"u,{i},{d:02d}/06/2024\n" for i, d in enumerate(range(1, 4))))
    bad = run_cli("build", "--data", str(f), "--out", str(tmp_path / "b"), *SHOP_BUILD_ARGS[6:])
    assert bad.returncode == 2 and "--time-format" in bad.stderr and "data row 1" in bad.stderr
    # with the format the file is read (and then refused for its small catalogue, before any training)
    good = run_cli("build", "--data", str(f), "--time-format", "%d/%m/%Y", "--out", str(tmp_path / "b"))
    assert good.returncode == 2 and "the catalogue needs at least" in good.stderr, good.stderr


def test_clients_read_the_mode_from_the_manifest(tmp_path):
    import pytest

    from toolkit.core.contract import read_allow_repeats
    from toolkit.core.errors import ToolkitError

    path = tmp_path / "manifest.json"
    assert read_allow_repeats(path) is False  # no manifest: seen items are dropped, as always
    for serving, allowed in (({}, False), ({"repeats": "drop"}, False), ({"repeats": "allow"}, True)):
        path.write_text(json.dumps({"serving": serving}))
        assert read_allow_repeats(path) is allowed
    path.write_text(json.dumps({"serving": {"repeats": "sometimes"}}))
    with pytest.raises(ToolkitError, match="serving.repeats must be one of drop, allow, not 'sometimes'"):
        read_allow_repeats(path)
