"""`python -m runtime_demo`: recommendations from a finished artifact, as an app would get them.

    python -m runtime_demo --model builds/mobile-arm/model.int8.pte --history 50,172,181
    python -m runtime_demo --model builds/mobile-arm/model.fp32.onnx --user 42 --json
    python -m runtime_demo --model builds/mobile-arm/model.int8.onnx --bench 10000
    python -m runtime_demo --model builds/shop/model.fp32.onnx --user cust-0042 --data shop.csv

--user and --bench read the build's dataset as the build read it (the columns, encoding and time
format its manifest records; the file at the recorded path unless --data names another); the
--*-col, --encoding and --time-format flags override the manifest.

Exit codes: 0 success, 2 bad input or usage (one line on stderr, no traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from toolkit.cli.parser import OneLineParser, add_data_flags, positive_int  # the toolkit's one-line, exit-2 errors
from toolkit.core.errors import ToolkitError, one_line_exit

EXIT_OK = 0


def make_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m runtime_demo",
                     description="Top-K recommendations from a .pte (ExecuTorch) or .onnx (ONNX Runtime) "
                                 "artifact; items.json (and manifest.json for --user/--bench) next to it.")
    parser.add_argument("--model", required=True, type=Path, help="the artifact, e.g. builds/mobile-arm/model.int8.pte")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--history", metavar="ID,ID,...",
                        help="original item ids, oldest first (\"\" = empty history)")
    source.add_argument("--user", metavar="ID", help="a user of the build's dataset: their whole history")
    source.add_argument("--bench", type=positive_int, metavar="N",
                        help="serve N requests with random real histories; print latency and RSS")
    parser.add_argument("--json", action="store_true",
                        help='print {"items": [...], "scores": [...]} (with --bench: the figures)')
    add_data_flags(parser)  # --data and how to read it: the build's own flags
    parser.add_argument("--threads", type=positive_int, help="runtime threads (default 1)")
    parser.add_argument("--seed", type=int, help="seed of the --bench histories (default 0)")
    parser.add_argument("--verbose", action="store_true", help="show the runtimes' own log output")
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        return _run(make_parser().parse_args(argv))
    except (ToolkitError, KeyboardInterrupt) as e:
        return one_line_exit(e)


def _run(args: argparse.Namespace) -> int:
    from runtime_demo.recommend import Recommender, parse_history, read_manifest

    history = parse_history(args.history) if args.history is not None else None  # fail fast, before loading
    options = {k: getattr(args, k) for k in ("threads",) if getattr(args, k) is not None}
    manifest = read_manifest(args.model.parent) if history is None else None
    dataset = None
    if history is None:
        from runtime_demo.histories import load_build_dataset, user_history

        dataset = load_build_dataset(manifest, _data(args), **_read_flags(args))
        if args.user is not None:
            history = user_history(dataset, args.user)
    recommender = Recommender(args.model, verbose=args.verbose, **options)
    if args.bench is not None:
        return _bench(recommender, dataset, args)
    return _answer(recommender, history, dataset, args)


def _bench(recommender, dataset, args: argparse.Namespace) -> int:
    from runtime_demo.bench import bench
    from runtime_demo.histories import sample_histories

    seed = {"seed": args.seed} if args.seed is not None else {}
    histories = sample_histories(dataset, args.bench, **seed)
    result = bench(recommender, histories, threads=recommender.predictor.threads)
    print(result.to_json() if args.json else result.to_text())
    return EXIT_OK


def _answer(recommender, history: list[str], dataset, args: argparse.Namespace) -> int:
    from runtime_demo.recommend import format_json, format_table, warn_unknown

    rec = recommender.recommend(history)
    warn_unknown(rec.unknown)
    if args.json:
        print(format_json(rec))
        return EXIT_OK
    titles = dataset.titles if dataset is not None else _titles(args.model.parent, args)
    window = f", the last {rec.used} of {rec.known} known" if rec.known > rec.used else ""
    seen = "seen items may be answers (repeats allowed)" if recommender.allow_repeats else \
        "items the history already holds are left out"
    print(f"top {len(rec.items)} of {recommender.top_k} for a history of {len(history)} item(s){window} "
          f"({args.model.name}, {recommender.runtime}; {seen})")
    print(format_table(rec, titles))
    return EXIT_OK


def _data(args: argparse.Namespace) -> Path | None:
    return Path(args.data) if args.data is not None else None


def _read_flags(args: argparse.Namespace) -> dict[str, str]:
    from runtime_demo.histories import READ_FLAGS

    return {k: getattr(args, k) for k in READ_FLAGS if getattr(args, k) is not None}


def _titles(build_dir: Path, args: argparse.Namespace) -> dict[str, str]:
    """Titles when the build's dataset has them (MovieLens-100K); without a word otherwise. A warning
    only when the data has titles and they cannot be read."""
    from runtime_demo.histories import has_titles, load_build_dataset
    from runtime_demo.recommend import MANIFEST_FILE, read_manifest

    if not (build_dir / MANIFEST_FILE).is_file():
        return {}
    manifest = read_manifest(build_dir)
    if not has_titles(manifest):
        return {}
    try:
        return load_build_dataset(manifest, _data(args), **_read_flags(args)).titles
    except ToolkitError as e:
        print(f"warning: no titles ({e})", file=sys.stderr)
        return {}
