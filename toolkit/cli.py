"""Command line: `python -m toolkit {build,train-teacher,teacher-scores,profiles,profile,calibrate,verify} ...`.

The CLI only overrides dataclass fields; defaults live in the dataclasses (pipeline.BuildConfig
and the configs it holds). Exit codes: 0 success and fits, 1 built but does not fit, 2 bad input
or usage (one line on stderr, no traceback), 3 internal error (one line naming the step, the
traceback written to a log file in the cache), 130 interrupted (SIGINT), 143 terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import signal
import sys
from dataclasses import replace

from toolkit.core.contract import BUILD_LOG, REPEATS_MODES
from toolkit.training.distributed import DistributedConfig
from toolkit.core.errors import DoesNotFitError, ToolkitError, one_line_exit
from toolkit.core.units import format_bytes

EXIT_OK, EXIT_DOES_NOT_FIT, EXIT_INTERNAL, EXIT_TERMINATED = 0, 1, 3, 143  # bad input, Ctrl-C: toolkit.core.errors


class Terminated(BaseException):
    """SIGTERM, raised like KeyboardInterrupt so every cleanup runs (staging removed, lock released)."""


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage + message)
        raise ToolkitError(f"{self.prog}: {message} (see --help)")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def add_data_flags(p: argparse.ArgumentParser) -> None:
    """The flags that name the interactions, shared by every command that reads them."""
    p.add_argument("--data", help="interactions file (.csv/.tsv/.parquet/.inter); default MovieLens-100K")
    p.add_argument("--user-col", help="user id column of --data")
    p.add_argument("--item-col", help="item id column of --data")
    p.add_argument("--time-col", help="timestamp column of --data")
    p.add_argument("--encoding", help="text encoding of a CSV/TSV --data file (default utf-8), e.g. latin-1")
    p.add_argument("--time-format", metavar="STRPTIME", help="format of the time column when it is not epoch seconds "
                   "or milliseconds or ISO-8601 (detected), e.g. '%%d/%%m/%%Y %%H:%%M'")


def make_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m toolkit",
                     description="Distil a recommender into a small model that fits an edge device.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    b = sub.add_parser("build", help="teacher -> distilled student -> .pte/.onnx artifacts, checked",
                       description="Train a teacher, distil a student sized for the profile, export it "
                                   "through ExecuTorch and ONNX and check every artifact.")
    b.add_argument("--profile", help="a name from device_profiles/ or a path to a .toml file (default mobile-arm)")
    add_data_flags(b)
    b.add_argument("--out", help="build directory (default builds/<profile>)")
    b.add_argument("--seed", type=non_negative_int, help="random seed (default 0)")
    b.add_argument("--verbose", action="store_true", help="also show the libraries' own output and each epoch here "
                   "(it always goes to the build's log file, build.log)")
    b.add_argument("--repeats", choices=REPEATS_MODES,
                   help="drop (the default): never recommend an item the user already has; allow: repeat "
                        "consumption (groceries, music): seen items may be recommended, the apps keep them and "
                        "the metrics count them")
    t = b.add_argument_group("teacher (README: Teachers)")
    t.add_argument("--teacher", metavar="KIND", help="ensemble (the default), kg (knowledge-graph teacher), or "
                   "MODULE:FACTORY: your own torch module (MODULE a dotted module name or a path to a .py file)")
    t.add_argument("--teacher-scores", metavar="FILE.parquet", help="precomputed soft labels from any framework "
                   "(columns user, position, items, scores) instead of a teacher model")
    t.add_argument("--kg", metavar="TRIPLES", help="the kg teacher's graph: head/relation/tail triples file "
                   "(default: MovieLens-100K's own)")
    t.add_argument("--kg-links", metavar="LINKS", help="the kg teacher's item -> entity links file (item_id, entity_id)")
    short = b.add_argument_group("shorter runs (tests, smoke checks)")
    short.add_argument("--max-users", type=positive_int, help="use only the first N users")
    short.add_argument("--epochs", type=positive_int, help="at most N epochs for teacher and student")
    short.add_argument("--teacher-members", type=positive_int, help="models in the teacher ensemble")
    short.add_argument("--teacher-dim", type=positive_int, help="teacher model dimension")
    short.add_argument("--student-dim", type=positive_int, help="student model dimension (the plan then chooses only the rest)")

    t = sub.add_parser("train-teacher", help="train the build's teacher into the cache (torchrun: several processes)",
                       description="Train the teacher `build` uses and leave it in the cache (TOOLKIT_CACHE_DIR): "
                                   "`build` given the same data and teacher flags then loads it. "
                                   "One process, or several under torchrun: torchrun --standalone --nproc_per_node=2 "
                                   "-m toolkit train-teacher ... (gloo on CPU, NCCL on GPUs). Exit 0 trained or already "
                                   "cached, 2 bad input, 3 a rank failed or an internal error.")
    for flag, kind, what in (("--profile", str, "as for build: its max_history shapes the teacher"),
                             ("--seed", non_negative_int, "random seed (default 0)"),
                             ("--max-users", positive_int, "use only the first N users"),
                             ("--epochs", positive_int, "at most N epochs"),
                             ("--teacher-members", positive_int, "models in the teacher ensemble"),
                             ("--teacher-dim", positive_int, "teacher model dimension")):
        t.add_argument(flag, type=kind, help=what)
    add_data_flags(t)
    t.add_argument("--rank-timeout", type=positive_int, metavar="SECONDS",
                   help="give up when another rank has not answered for this long "
                        f"(default {DistributedConfig.timeout_s:.0f})")
    t.add_argument("--teacher", choices=("ensemble", "kg"), help="ensemble (the default) or kg (knowledge-graph teacher)")
    t.add_argument("--repeats", choices=REPEATS_MODES, help="as for build: it decides what validation counts")
    t.add_argument("--kg", metavar="TRIPLES", help="the kg teacher's graph, as for build")
    t.add_argument("--kg-links", metavar="LINKS", help="the kg teacher's item -> entity links file, as for build")
    # build_config reads them; the teacher does not depend on them
    t.set_defaults(out=None, student_dim=None, teacher_scores=None)

    sub.add_parser("profiles", help="list the device profiles and their budgets",
                   description="List the shipped device profiles with their budgets.")

    p = sub.add_parser("profile", help="measure artifacts in their runtime and judge them against a profile",
                       description="Profile any .pte/.onnx that follows the artifact contract (input history "
                                   "int64 [1, L]; outputs scores float32 [1, K], items int64 [1, K]) in a fresh "
                                   "process each: size, memory, latency and ops always; parity against reference "
                                   "outputs (--reference, or the build's reference.npz when the manifest.json next "
                                   "to it lists the artifact's sha256); quality through the artifact on --data, or "
                                   "the build's figures from that manifest. Exit 0 fits, 1 does not fit, 2 bad input "
                                   "(a model that does not follow the contract).")
    p.add_argument("artifacts", nargs="+", metavar="ARTIFACT", help="a .pte or .onnx file")
    p.add_argument("--profile", required=True, help="a name from device_profiles/ or a path to a .toml file")
    p.add_argument("--reference", metavar="FILE.npz", help="histories `history` (R, L) to time on and, for parity, "
                   "the outputs of the model the artifact came from (`float_scores`, `float_items`), as a build's "
                   "reference.npz")
    p.add_argument("--data", help="interactions file (.csv/.tsv/.parquet/.inter, or movielens-100k) to measure "
                   "quality through the artifact on (its items mapped by the items.json next to it)")
    for flag, what in (("--user-col", "user id column of --data"), ("--item-col", "item id column of --data"),
                       ("--time-col", "timestamp column of --data"), ("--encoding", "text encoding of --data")):
        p.add_argument(flag, help=what)
    p.add_argument("--report", metavar="DIR", help="also write report.json, report.md and plots into DIR")
    p.add_argument("--json", action="store_true", help="print the figures as JSON instead of the table")

    v = sub.add_parser("verify", help="run .pte artifacts on arm64 (qemu) and compare with this host",
                       description="Cross-compile the C++ client for arm64, run each .pte on its build's reference "
                                   "histories under qemu-aarch64 for each CPU model and compare with the same client "
                                   "on this host. Proves the arm64 instruction set and kernels, not device timing. "
                                   "Exit 0 agrees, 1 does not agree, 2 bad input or a missing tool.")
    v.add_argument("artifacts", nargs="+", metavar="ARTIFACT", help="a .pte file in a build directory")
    v.add_argument("--arch", help="target architecture (default arm64, the only one)")
    v.add_argument("--cpu", action="append", metavar="NAME",
                   help="qemu CPU model, repeatable (default: the profile's hardware.cpu and max, the core with SVE2/SME)")
    v.add_argument("--qemu", metavar="PATH", help="the qemu-aarch64 to use (default: $TOOLKIT_QEMU_AARCH64, then PATH)")
    v.add_argument("--json", action="store_true", help="print the figures as JSON instead of the table")

    s = sub.add_parser("teacher-scores", help="write a module teacher's soft labels as a --teacher-scores file",
                       description="Run a teacher module (MODULE:FACTORY) on every position of every user's training "
                                   "items and write its top-K per position as Parquet (user, position, items, "
                                   "scores): the file `build --teacher-scores` reads.")
    s.add_argument("--teacher", required=True, metavar="MODULE:FACTORY", help="the teacher module's factory")
    s.add_argument("--out", required=True, metavar="FILE.parquet", help="where to write the scores")
    add_data_flags(s)
    s.add_argument("--profile", help="take max_history from this profile (default mobile-arm)")
    s.add_argument("--top-k", type=positive_int, help="items kept per position (default 64)")
    s.add_argument("--max-users", type=positive_int, help="use only the first N users")

    c = sub.add_parser("calibrate", help="measure this machine's fp32 GFLOP/s (the `gflops` of a profile)",
                       description="Measure the sustained fp32 matrix-multiply rate of this machine at a thread "
                                   "count (needs only numpy) and print the `gflops = X` line for a profile.")
    c.add_argument("--threads", type=positive_int, help="threads to measure with (default 1)")
    c.add_argument("--profile", help="take the thread count from this profile")
    c.add_argument("--seconds", type=float, help="measuring time (default 1.0)")
    return parser


def build_config(args: argparse.Namespace):
    from pathlib import Path

    from toolkit.recipe.build import BuildConfig

    cfg = BuildConfig()
    overrides = {k: getattr(args, k) for k in ("profile", "data", "user_col", "item_col", "time_col", "encoding",
                                               "time_format", "repeats", "seed", "max_users")
                 if getattr(args, k, None) is not None}
    if args.out is not None:
        overrides["out"] = Path(args.out)
    cfg = replace(cfg, **overrides)
    if args.epochs is not None:
        cfg = cfg.with_epochs(args.epochs)
    teacher, student, plan = cfg.teacher, cfg.student, cfg.plan
    if args.teacher_members is not None:
        teacher = replace(teacher, members=args.teacher_members)
    if args.teacher_dim is not None:
        teacher = replace(teacher, dim=args.teacher_dim)
    if args.student_dim is not None:
        student = replace(student, dim=args.student_dim)
        plan = replace(plan, dims=(args.student_dim,))
    teacher = teacher_config(args, teacher)
    return replace(cfg, teacher=teacher, student=student, plan=plan)


def teacher_config(args: argparse.Namespace, teacher):
    """--teacher / --teacher-scores / --kg / --kg-links onto the TeacherConfig."""
    if args.teacher is not None and args.teacher_scores is not None:
        raise ToolkitError("--teacher and --teacher-scores: give one teacher")
    if args.teacher in ("kg", "ensemble"):
        teacher = replace(teacher, kind=args.teacher)
    elif args.teacher is not None:
        teacher = replace(teacher, kind="external", module=args.teacher)
    if args.teacher_scores is not None:
        teacher = replace(teacher, kind="scores", scores=args.teacher_scores)
    if args.kg is not None or args.kg_links is not None:
        if args.teacher is None and args.teacher_scores is None:
            teacher = replace(teacher, kind="kg")  # a graph given means the graph's teacher
        teacher = replace(teacher, kg_triples=args.kg, kg_links=args.kg_links)
    return teacher


def _cmd_build(args: argparse.Namespace) -> int:
    import shutil
    import time

    from toolkit.core.buildlog import captured
    from toolkit.core.cache import cache_dir
    from toolkit.recipe.build import build, prepare

    def log(msg: str) -> None:
        print(msg, flush=True)

    cfg = build_config(args)
    prepared = prepare(cfg, log)  # the profile, the data file and --out, before anything is trained
    log_file = cache_dir() / "logs" / f"{time.strftime('%Y%m%d-%H%M%S')}-build-{prepared.profile.name}.log"
    print(f"log: {log_file} (the libraries' output and every epoch; --verbose shows them here too)", flush=True)
    with captured(log_file, verbose=args.verbose) as console:
        result = build(cfg, console.log, prepared)
    shutil.copyfile(log_file, result.out / BUILD_LOG)
    m = result.manifest
    print(f"\nbuild written to {result.out}/ in {result.seconds:.0f} s")
    k = m.serving.k
    print(f"{'artifact':<24} {'size':>9} {f'NDCG@{k}':>8} {f'HR@{k}':>7} {'top-10 agree':>12} {'threads':>7}  "
          f"verdict ({m.profile.name})")
    for a in m.artifacts:
        verdict = "-" if a.profile is None else ("fits" if a.profile.fits else "DOES NOT FIT")
        threads = "-" if a.profile is None else a.profile.latency.threads
        print(f"{a.path:<24} {format_bytes(a.bytes):>9} {a.metrics.ndcg:>8.4f} {a.metrics.hr:>7.4f} "
              f"{a.parity['top10_agreement']:>12.3f} {threads:>7}  {verdict}")  # parity: measured at export
    for fmt, why in m.plan.get("unfit_formats", {}).items():
        print(f"{'(' + fmt + ')':<24} {'not built':>9}  {why}")
    for warning in m.warnings:
        print(f"warning: {warning}")
    print(f"report: {result.out / 'report.md'}, log: {result.out / BUILD_LOG}")
    print_recommended(m.recommended)
    if not result.fits:
        raise DoesNotFitError(f"{result.out}: {result.failures()}")
    return EXIT_OK


def print_recommended(recommended: dict) -> None:
    """The last lines of a build or profile: per format, the file to ship (or none, and why)."""
    for r in recommended.values():
        print(f"recommended {r.text()}")


def _cmd_train_teacher(args: argparse.Namespace) -> int:
    from toolkit.training.distributed import RankLostError, join
    from toolkit.recipe.build import train_teacher_only
    from toolkit.teachers.ensemble import teacher_path

    cfg = build_config(args)
    dist_cfg = DistributedConfig()
    if args.rank_timeout is not None:
        dist_cfg = replace(dist_cfg, timeout_s=float(args.rank_timeout))
    try:
        with join(dist_cfg) as world:
            teacher = train_teacher_only(cfg, world, log=lambda msg: print(msg, flush=True) if world.is_main else None)
    except RankLostError as e:  # not this rank's fault, nothing to trace back: one line
        print(f"error: {e}", file=sys.stderr, flush=True)
        return EXIT_INTERNAL
    if world.is_main:
        ranks = teacher.extra["trained_with"]
        print(f"teacher {'already cached' if teacher.cached else 'trained'}: valid NDCG@10 "
              f"{teacher.metrics['valid'].ndcg:.4f} on {teacher.metrics['valid'].users} users (trained on "
              f"{ranks['world_size']} process(es), backend {ranks['backend'] or 'none'})\n"
              f"cache: {teacher_path(teacher.cache_key)}\n"
              "`python -m toolkit build` with the same data and teacher flags (and TOOLKIT_CACHE_DIR) loads it")
    return EXIT_OK


def _cmd_teacher_scores(args: argparse.Namespace) -> int:
    from toolkit.teachers.external import TeacherScoresConfig, teacher_scores_command

    cfg = TeacherScoresConfig(teacher=args.teacher, out=args.out)
    overrides = {k: getattr(args, k) for k in ("data", "user_col", "item_col", "time_col", "encoding", "time_format",
                                               "profile", "top_k", "max_users") if getattr(args, k) is not None}
    rows = teacher_scores_command(replace(cfg, **overrides), log=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(f"wrote {rows} rows to {args.out}")
    return EXIT_OK


def _cmd_profiles(args: argparse.Namespace) -> int:
    from toolkit.core.profiles import list_profiles, load_profile

    rows = [load_profile(name) for name in list_profiles()]
    print(f"{'profile':<20} {'model':>9} {'memory':>9} {'p95 ms':>7} {'int8':>5} {'threads':>7} {'GFLOP/s':>8} "
          f"{'max_history':>11} {'top_k':>5}  formats")
    for p in rows:
        print(f"{p.name:<20} {format_bytes(p.budget.model_bytes):>9} {format_bytes(p.budget.memory_bytes):>9} "
              f"{p.budget.latency_ms:>7.1f} {'yes' if p.hardware.int8 else 'no':>5} {p.hardware.threads:>7} "
              f"{p.hardware.gflops:>8.1f} {p.serving.max_history:>11} {p.serving.top_k:>5}  "
              f"{', '.join(p.serving.formats)}")
    return EXIT_OK


def _cmd_profile(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from toolkit.profiler.calibrate import CalibrationCache
    from toolkit.profiler.recommend import recommend
    from toolkit.planning.search import PlanConfig
    from toolkit.profiler.judge import not_fit_message
    from toolkit.profiler.records import QualityData
    from toolkit.profiler.run import profile_artifact
    from toolkit.core.profiles import load_profile
    from toolkit.report.markdown import verdict_table
    from toolkit.report.write import report_dict, write_report

    profile = load_profile(args.profile)
    if args.report is not None and Path(args.report).exists() and not Path(args.report).is_dir():
        raise ToolkitError(f"--report {args.report}: exists and is not a directory")
    calibrations = CalibrationCache()
    from toolkit.recipe.build import native_clients

    natives = native_clients({Path(a).suffix.lower() for a in args.artifacts},
                             lambda msg: print(msg, file=sys.stderr), profile)
    if args.data is None and any(getattr(args, k) is not None for k in ("user_col", "item_col", "time_col", "encoding")):
        raise ToolkitError("--user-col/--item-col/--time-col/--encoding name columns of --data: give --data too")
    data = None if args.data is None else QualityData(path=args.data, user_col=args.user_col, item_col=args.item_col,
                                                      time_col=args.time_col, encoding=args.encoding)
    if data is not None:
        from toolkit.data import check_data_path

        check_data_path(data.path)
    reference = Path(args.reference) if args.reference is not None else None
    results = [profile_artifact(Path(a), profile, calibrations, native=natives.get(Path(a).suffix.lower()),
                                reference=reference, data=data) for a in args.artifacts]
    formats = tuple(dict.fromkeys(r.format for r in results if r.format in profile.serving.formats))
    recommended = recommend(results, formats, PlanConfig().quality_tolerance)
    if args.report is not None:
        Path(args.report).mkdir(parents=True, exist_ok=True)
        write_report(Path(args.report), profile, results, recommended=recommended)
    if args.json:
        print(json.dumps(report_dict(profile, results, recommended), indent=2))
    else:
        print(verdict_table(profile, results))
        for r in results:
            print(f"\n{r.path}: {'fits' if r.fits else 'DOES NOT FIT'} {profile.name}")
            for check in r.checks:
                print(f"  {'pass' if check.passed else 'FAIL'}  {check.text}"
                      + ("" if check.passed else f"\n        try: {check.advice}"))
            for budget, why in r.not_checked.items():
                print(f"  not checked  {budget}: {why}")
        print()
        print_recommended(recommended)
    failures = not_fit_message(results)
    if failures:
        raise DoesNotFitError(f"{profile.name}: {failures}")
    return EXIT_OK


def _cmd_verify(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from toolkit.profiler.verify import format_table, record_in_manifests, verify

    options = {k: getattr(args, k) for k in ("arch",) if getattr(args, k) is not None}
    result = verify([Path(a) for a in args.artifacts], cpus=args.cpu, qemu=Path(args.qemu) if args.qemu else None,
                    log=lambda msg: print(msg, file=sys.stderr, flush=True), **options)
    record_in_manifests([Path(a) for a in args.artifacts], result)  # the manifest says where each was verified
    print(json.dumps(result.to_dict(), indent=2) if args.json else format_table(result))
    return EXIT_OK if result.agrees else EXIT_DOES_NOT_FIT


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from toolkit.profiler.calibrate import CalibrationConfig, calibrate
    from toolkit.core.profiles import load_profile

    cfg = CalibrationConfig()
    if args.profile is not None and args.threads is not None:
        raise ToolkitError("calibrate: give --threads or --profile, not both")
    if args.profile is not None:
        cfg = replace(cfg, threads=load_profile(args.profile).hardware.threads)
    if args.threads is not None:
        cfg = replace(cfg, threads=args.threads)
    if args.seconds is not None:
        if not args.seconds > 0:
            raise ToolkitError(f"--seconds {args.seconds}: must be positive")
        cfg = replace(cfg, seconds=args.seconds)
    c = calibrate(cfg)
    print(f"{c.machine}, {c.cpus} CPUs, {c.blas}: fp32 {c.size}x{c.size} matmul on {c.threads} thread(s), "
          f"{c.repetitions} repetitions: {c.gflops:.1f} GFLOP/s (p90; median {c.gflops_median:.1f})")
    if c.load_average > max(c.cpus - c.threads, 0) + 0.5:
        print(f"warning: load average {c.load_average:.1f} on {c.cpus} CPUs: other work is running; "
              "measure again on an idle machine")
    print("put this line in the [hardware] table of this machine's profile:")
    print(f"gflops  = {c.gflops:.1f}")
    return EXIT_OK


COMMANDS = {"build": _cmd_build, "profiles": _cmd_profiles, "profile": _cmd_profile, "calibrate": _cmd_calibrate,
            "verify": _cmd_verify, "train-teacher": _cmd_train_teacher, "teacher-scores": _cmd_teacher_scores}


def main(argv: list[str] | None = None) -> int:
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
        # Ctrl-C / SIGINT interrupts even when the parent started us with it ignored (a shell's
        # background job): the build must clean its staging folder either way
        previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    except ValueError:  # not the main thread (an embedding app): leave the signals alone
        previous = previous_int = None
    args = None
    try:
        args = make_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except (ToolkitError, KeyboardInterrupt) as e:
        return one_line_exit(e)
    except DoesNotFitError as e:
        print(f"does not fit: {e}", file=sys.stderr)
        return EXIT_DOES_NOT_FIT
    except Terminated:
        print("terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except Exception as e:  # a bug, not bad input: one line, the traceback in a log file
        where = getattr(e, "toolkit_step", None)
        log = _write_traceback(e, args)
        what = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e).strip() else ''}".rstrip(": ")
        print(f"internal error{f' in step {where}' if where else ''}: {what} (traceback: {log})", file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, previous_int)


def _terminate(signum, frame) -> None:
    raise Terminated()


def _write_traceback(error: BaseException, args) -> str:
    """Write the full traceback to <cache>/logs/ and return the file's path (or why it could not be written)."""
    import time
    import traceback

    from toolkit.core.cache import cache_dir

    try:
        folder = cache_dir() / "logs"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{getattr(args, 'command', 'toolkit')}.log"
        path.write_text(f"python -m toolkit {' '.join(sys.argv[1:])}\nstep: {getattr(error, 'toolkit_step', '?')}\n\n"
                        + "".join(traceback.format_exception(error)))
        return str(path)
    except OSError as e:
        return f"not written: {e.strerror}"
