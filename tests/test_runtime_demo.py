"""runtime_demo: the Python demo (ExecuTorch and ONNX Runtime) and the node demo (onnxruntime-node)
on the tiny real build: id handling, filtering, stable JSON, bad input, agreement, serving under load.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runtime_demo.cli import main
from runtime_demo.histories import sample_histories
from runtime_demo.recommend import Recommender, format_json, format_score

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = ROOT / "runtime_demo" / "node"
NPM_INSTALL_TIMEOUT_S = 240
AGREEMENT_HISTORIES = 24
BENCH_REQUESTS = 2000
MAX_RSS_GROWTH = 0.05
SCORE_TOLERANCE = 1e-5  # two ONNX Runtime builds (Python, node) may differ in the last float bits


def artifact(build: Path, fmt: str, precision: str) -> Path:
    """An artifact of the build, found through its manifest (file names are not parsed)."""
    manifest = json.loads((build / "manifest.json").read_text())
    for entry in manifest["artifacts"]:
        if entry["format"] == fmt and entry["precision"] == precision:
            return build / entry["path"]
    pytest.fail(f"the tiny build has no {fmt} {precision} artifact")


@pytest.fixture(scope="module", params=[("executorch", "int8"), ("onnx", "fp32")], ids=["pte-int8", "onnx-fp32"])
def recommender(request, tiny_build) -> Recommender:
    return Recommender(artifact(tiny_build, *request.param))


@pytest.fixture(scope="module")
def histories(movielens) -> list[list[str]]:
    """Real histories (random users' prefixes) plus the edge cases."""
    real = sample_histories(movielens, AGREEMENT_HISTORIES - 3, seed=1)
    longest = max((list(map(movielens.item_ids.__getitem__, s)) for s in movielens.sequences), key=len)
    return real + [[], ["no-such-item", real[0][0], "also-unknown"], longest]


def run_demo(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "runtime_demo", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="session")
def node() -> list[str]:
    """The command that runs the node demo; `npm install --ignore-scripts` first when needed."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed (the node demo needs Node.js >= 18)")
    if not (NODE_DIR / "node_modules" / "onnxruntime-node").is_dir():
        if shutil.which("npm") is None:
            pytest.skip("npm is not installed, so onnxruntime-node cannot be installed")
        try:
            result = subprocess.run(["npm", "install", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=NODE_DIR,
                                    capture_output=True, text=True, timeout=NPM_INSTALL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.skip(f"npm install of onnxruntime-node took over {NPM_INSTALL_TIMEOUT_S} s (no registry?)")
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            pytest.skip(f"npm install of onnxruntime-node failed (no registry?): {last}")
    return ["node", str(NODE_DIR / "recommend.js")]


def run_node(node: list[str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*node, *args], capture_output=True, text=True, timeout=60)


def as_arg(history: list[str]) -> str:
    return ",".join(history)


# --- ids, windows, filtering ---------------------------------------------------------------------


def test_unknown_ids_are_skipped_with_a_warning(recommender, histories, capsys):
    real = histories[0]
    model = str(recommender.model)
    assert main(["--model", model, "--history", as_arg(["zzz-unknown", *real, "999999"]), "--json"]) == 0
    with_unknown = capsys.readouterr()
    assert main(["--model", model, "--history", as_arg(real), "--json"]) == 0
    without = capsys.readouterr()
    assert with_unknown.out == without.out
    assert "warning: skipped 2 unknown item id(s)" in with_unknown.err and "zzz-unknown" in with_unknown.err
    assert without.err == ""


def test_empty_history_still_answers(recommender):
    rec = recommender.recommend([])
    assert len(rec.items) == recommender.keep and "" not in rec.items  # the manifest's top_k
    assert recommender.top_k >= recommender.keep  # the artifact returns a margin of candidates more
    assert rec.scores == sorted(rec.scores, reverse=True)


def test_long_history_keeps_the_most_recent_window(recommender, histories):
    longest = histories[-1]
    window = recommender.max_history
    assert len(longest) > window
    full = recommender.recommend(longest)
    recent = recommender.recommend(longest[-window:])
    assert full.used == window and full.known == len(longest)
    # same model input; the demo also drops what the older part of the history holds, then keeps
    # top_k: what is left of the recent answers is the head of the full history's answers
    left = [item for item in recent.items if item not in set(longest)]
    assert full.items[:len(left)] == left and len(full.items) == recommender.keep


def test_answers_never_hold_history_items(recommender, histories):
    for history in histories:
        rec = recommender.recommend(history)
        assert not set(rec.items) & set(history)
        assert len(set(rec.items)) == len(rec.items) and "" not in rec.items


def test_user_takes_the_whole_history_from_the_dataset(tiny_build, movielens, capsys):
    model = str(artifact(tiny_build, "onnx", "fp32"))
    user = movielens.user_ids[7]
    history = [movielens.item_ids[i] for i in movielens.sequences[7]]
    assert main(["--model", model, "--user", user, "--json"]) == 0
    by_user = capsys.readouterr().out
    assert main(["--model", model, "--history", as_arg(history), "--json"]) == 0
    assert by_user == capsys.readouterr().out


def test_table_shows_titles(tiny_build, movielens, capsys):
    args = ["--model", str(artifact(tiny_build, "onnx", "fp32")), "--user", movielens.user_ids[0]]
    assert main([*args, "--json"]) == 0
    items = json.loads(capsys.readouterr().out)["items"]
    assert main(args) == 0
    table = capsys.readouterr().out
    assert items and all(movielens.titles[item] in table for item in items), table


# --- JSON ---------------------------------------------------------------------------------------------


def test_json_is_stable(recommender, histories, capsys):
    args = ["--model", str(recommender.model), "--history", as_arg(histories[1]), "--json"]
    outputs = []
    for _ in range(3):
        assert main(args) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] == outputs[2]
    parsed = json.loads(outputs[0])
    assert list(parsed) == ["items", "scores"] and all(isinstance(i, str) for i in parsed["items"])


def test_json_is_stable_across_processes(tiny_build, histories):
    args = ["--model", str(artifact(tiny_build, "onnx", "int8")), "--history", as_arg(histories[2]), "--json"]
    first, second = run_demo(*args), run_demo(*args)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout and first.stdout.startswith('{"items": [')


def test_scores_print_like_javascript_to_fixed():
    assert format_score(0.0078125) == "0.007813"  # a tie: half away from zero, as toFixed
    assert format_score(-0.0) == "0.000000"
    assert format_score(-1e-9) == "-0.000000"
    assert format_score(12.5) == "12.500000"


# --- bad input -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def broken_build(tiny_build, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("broken")
    for name in ("items.json", "manifest.json"):
        shutil.copy(tiny_build / name, folder / name)
    (folder / "garbage.pte").write_bytes(b"not a program")
    onnx = artifact(tiny_build, "onnx", "fp32").read_bytes()
    (folder / "truncated.onnx").write_bytes(onnx[: len(onnx) // 3])
    return folder


def bad_inputs(build: Path, broken: Path) -> list[list[str]]:
    onnx = str(artifact(build, "onnx", "fp32"))
    return [
        ["--model", str(build / "missing.onnx"), "--history", "1"],
        ["--model", str(broken / "garbage.pte"), "--history", "1"],
        ["--model", str(broken / "truncated.onnx"), "--history", "1"],
        ["--model", str(build / "manifest.json"), "--history", "1"],
        ["--model", onnx, "--history", "1,,2"],
        ["--model", onnx, "--user", "no-such-user"],
        ["--model", onnx],
        ["--model", onnx, "--bench", "0"],
    ]


def test_bad_input_exits_2_with_one_line(tiny_build, broken_build):
    for args in bad_inputs(tiny_build, broken_build):
        result = run_demo(*args)
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, result.stderr)
        assert result.stdout == ""


def test_node_bad_input_exits_2_with_one_line(node, tiny_build, broken_build):
    cases = [args for args in bad_inputs(tiny_build, broken_build) if "--user" not in args]
    for args in cases + [["--model", str(artifact(tiny_build, "executorch", "int8")), "--history", "1"]]:
        result = run_node(node, *args)
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, result.stderr)


# --- python and node agree --------------------------------------------------------------------------


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_node_gives_the_same_items_as_python(node, tiny_build, histories, precision):
    model = artifact(tiny_build, "onnx", precision)
    python = Recommender(model)
    identical = 0
    for history in histories:
        expected = format_json(python.recommend(history))
        result = run_node(node, "--model", str(model), "--history", as_arg(history), "--json")
        assert result.returncode == 0, result.stderr
        got, want = json.loads(result.stdout), json.loads(expected)
        assert got["items"] == want["items"], history
        assert got["scores"] == pytest.approx(want["scores"], abs=SCORE_TOLERANCE)
        identical += result.stdout.strip() == expected
    assert len(histories) >= 20 and identical >= len(histories) // 2  # same format, byte for byte


# --- serving under load -------------------------------------------------------------------------------


def test_bench_memory_stays_flat(recommender, capsys):
    args = ["--model", str(recommender.model), "--bench", str(BENCH_REQUESTS), "--json"]
    assert main(args) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["requests"] == BENCH_REQUESTS
    assert 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"]
    assert figures["rss_growth"] < MAX_RSS_GROWTH, figures


def test_node_bench_runs(node, tiny_build):
    result = run_node(node, "--model", str(artifact(tiny_build, "onnx", "int8")), "--bench", "200", "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["requests"] == 200 and 0 < figures["p50_ms"] <= figures["p99_ms"]



# --- the app keeps at most the manifest's top_k --------------------------------------------------------


@pytest.fixture(scope="module")
def capped_build(tiny_build, tmp_path_factory) -> Path:
    """The tiny build's artifacts with a manifest asking for fewer answers than the model returns."""
    folder = tmp_path_factory.mktemp("capped")
    manifest = json.loads((tiny_build / "manifest.json").read_text())
    manifest["profile"]["serving"]["top_k"] = 5
    (folder / "manifest.json").write_text(json.dumps(manifest))
    for name in ("items.json", artifact(tiny_build, "onnx", "fp32").name, artifact(tiny_build, "executorch", "int8").name):
        shutil.copy(tiny_build / name, folder / name)
    return folder


def test_keeps_at_most_top_k_after_filtering(tiny_build, capped_build, histories):
    for fmt, precision in (("onnx", "fp32"), ("executorch", "int8")):
        name = artifact(tiny_build, fmt, precision).name
        full, capped = Recommender(tiny_build / name), Recommender(capped_build / name)
        assert capped.keep == 5 and full.keep == 20 and full.top_k >= 20  # the artifact returns more candidates
        for history in histories:
            assert capped.recommend(history).items == full.recommend(history).items[:5]


def test_without_a_manifest_every_answer_is_kept(tiny_build, tmp_path, histories):
    model = artifact(tiny_build, "onnx", "fp32")
    shutil.copy(model, tmp_path / model.name)
    shutil.copy(tiny_build / "items.json", tmp_path / "items.json")
    alone, built = Recommender(tmp_path / model.name), Recommender(model)
    assert alone.keep is None
    every, kept = [alone.recommend(h).items for h in histories], [built.recommend(h).items for h in histories]
    assert [items[:len(k)] for items, k in zip(every, kept)] == kept  # the kept ones are the head of all
    assert sum(map(len, every)) > sum(map(len, kept))


def test_a_manifest_without_a_valid_top_k_is_bad_input(tiny_build, tmp_path):
    model = artifact(tiny_build, "onnx", "fp32")
    shutil.copy(model, tmp_path / model.name)
    shutil.copy(tiny_build / "items.json", tmp_path / "items.json")
    for text in ('{"profile": {"serving": {"top_k": 0}}}', '{"profile": {}}', "not json", '{"profile": {"serving": {"top_k": true}}}'):
        (tmp_path / "manifest.json").write_text(text)
        result = run_demo("--model", str(tmp_path / model.name), "--history", "1", "--json")
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and "manifest.json" in result.stderr, text


def test_node_keeps_what_python_keeps(node, capped_build, histories):
    model = next(capped_build.glob("*.onnx"))
    python = Recommender(model)
    for history in histories[:6]:
        result = run_node(node, "--model", str(model), "--history", as_arg(history), "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["items"] == python.recommend(history).items
        assert len(python.recommend(history).items) <= 5


# --- a build from a user's own file, with repeats allowed (the shop log) --------------------------


def shop_artifacts(build: Path, fmt: str) -> list[Path]:
    manifest = json.loads((build / "manifest.json").read_text())
    return [build / a["path"] for a in manifest["artifacts"] if a["format"] == fmt]


@pytest.fixture(scope="module")
def shop_histories(shop_build) -> list[list[str]]:
    from runtime_demo.histories import load_build_dataset

    build, _, _ = shop_build
    dataset = load_build_dataset(json.loads((build / "manifest.json").read_text()))
    return [[dataset.item_ids[i] for i in s] for s in dataset.sequences]


def test_user_and_bench_read_the_columns_the_manifest_records(shop_build, shop_histories, tmp_path, capsys):
    """No column flags: the manifest says customer/product/event_time and where the file was."""
    build, log, _ = shop_build
    model = str(shop_artifacts(build, "onnx")[0])
    assert main(["--model", model, "--user", "cust-0000", "--json"]) == 0
    by_user = capsys.readouterr()
    assert main(["--model", model, "--history", as_arg(shop_histories[0]), "--json"]) == 0
    assert by_user.out == capsys.readouterr().out and by_user.err == ""
    assert main(["--model", model, "--bench", "20", "--json"]) == 0
    capsys.readouterr()
    # the file moved: --data finds it; a column flag overrides the manifest (and a wrong one is named)
    moved = tmp_path / "moved.csv"
    shutil.copy(log.path, moved)
    assert main(["--model", model, "--user", "cust-0000", "--json", "--data", str(moved)]) == 0
    assert capsys.readouterr().out == by_user.out
    assert main(["--model", model, "--user", "cust-0000", "--data", str(moved), "--user-col", "who"]) == 2
    assert "--user-col 'who': no such column" in capsys.readouterr().err


def test_no_titles_and_no_warning_when_the_data_has_none(shop_build, shop_histories, capsys):
    sys.path.insert(0, str(ROOT / "runtime_demo" / "web"))
    try:
        from serve import build_titles
    finally:
        sys.path.pop(0)
    build, _, _ = shop_build
    assert main(["--model", str(shop_artifacts(build, "onnx")[0]), "--history", as_arg(shop_histories[1])]) == 0
    out = capsys.readouterr()
    assert out.err == "" and "title" not in out.out.splitlines()[1]
    assert build_titles(build) is None and capsys.readouterr().err == ""


def test_every_client_keeps_seen_items_when_repeats_are_allowed(shop_build, shop_histories, node):
    """Python (both runtimes), node and the C++ client: the same answers, and seen items among them."""
    from toolkit.profiler.native import native_client

    build, _, _ = shop_build
    for model in shop_artifacts(build, "onnx") + shop_artifacts(build, "executorch"):
        rec = Recommender(model)
        assert rec.allow_repeats
        answers = [format_json(rec.recommend(h)) for h in shop_histories]
        assert sum(bool(set(json.loads(a)["items"]) & set(h)) for a, h in zip(answers, shop_histories)) > 0
        if model.suffix == ".onnx":
            other = [run_node(node, "--model", str(model), "--history", as_arg(h), "--json").stdout.strip()
                     for h in shop_histories[:8]]
        else:
            client = native_client()
            if client is None:
                pytest.skip("the native C++ client cannot be built here (cmake, g++)")
            other = client.recommend(model, shop_histories[:8])
        for mine, theirs in zip(answers, other):
            assert json.loads(mine)["items"] == json.loads(theirs)["items"], model
