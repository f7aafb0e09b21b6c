"""What each command does (`COMMANDS`: name -> function of the parsed arguments, returning the exit
code), and the build configuration the flags make (`build_config`). Each command imports what it
needs when it runs, so parsing stays light.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from toolkit.core.contract import BUILD_LOG
from toolkit.core.errors import DoesNotFitError, ToolkitError
from toolkit.core.units import format_bytes
from toolkit.training.distributed import DistributedConfig
from toolkit import teachers

EXIT_OK, EXIT_DOES_NOT_FIT, EXIT_INTERNAL, EXIT_TERMINATED = 0, 1, 3, 143  # bad input, Ctrl-C: toolkit.core.errors


def build_config(args: argparse.Namespace):
    from pathlib import Path

    from toolkit.recipe.config import BuildConfig

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
        plan = replace(plan, dims=(args.student_dim,))
    if getattr(args, "student", None) is not None:
        student = replace(student, module=args.student)
    teacher = teacher_config(args, teacher)
    return replace(cfg, teacher=teacher, student=student, plan=plan)


def teacher_config(args: argparse.Namespace, teacher):
    """--teacher / --teacher-scores / --kg / --kg-links onto the TeacherConfig."""
    if args.teacher is not None and args.teacher_scores is not None:
        raise ToolkitError("--teacher and --teacher-scores: give one teacher")
    if args.teacher in teachers.named():
        teacher = replace(teacher, kind=args.teacher)
    elif args.teacher is not None:
        teacher = replace(teacher, kind=teachers.picked_by("--teacher"), module=args.teacher)
    if args.teacher_scores is not None:
        teacher = replace(teacher, kind=teachers.picked_by("--teacher-scores"), scores=args.teacher_scores)
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
    from toolkit.api import build, prepare

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
    from toolkit.teachers.ensemble import teacher_path

    cfg = build_config(args)
    dist_cfg = DistributedConfig()
    if args.rank_timeout is not None:
        dist_cfg = replace(dist_cfg, timeout_s=float(args.rank_timeout))
    try:
        with join(dist_cfg) as world:
            teacher = _train_teacher(cfg, world, log=lambda msg: print(msg, flush=True) if world.is_main else None)
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


def _train_teacher(cfg, world, log):
    """`build`'s checks and data (`toolkit.recipe.build.load_split`), then its teacher step alone
    (`toolkit.teachers.train_only`): the teacher `build` with the same settings loads from the cache."""
    from toolkit.core.profiles import load_profile
    from toolkit.data import check_data_path, check_encoding
    from toolkit.recipe.build import load_split, log_data_summary

    profile = load_profile(cfg.profile)
    data_path = check_data_path(cfg.data)
    if data_path is not None and data_path.suffix.lower() != ".parquet":
        check_encoding(cfg.encoding)

    def load():
        dataset, split, data_key = load_split(cfg, profile)
        log_data_summary(dataset, split, cfg.repeats, log)
        return dataset, split, data_key

    return teachers.train_only(cfg.teacher, data_path, load, profile.serving.max_history, cfg.seed, world, log)


def _cmd_teacher_scores(args: argparse.Namespace) -> int:
    from toolkit.teachers.module import TeacherScoresConfig, teacher_scores_command

    cfg = TeacherScoresConfig(teacher=args.teacher, out=args.out)
    overrides = {k: getattr(args, k) for k in ("data", "user_col", "item_col", "time_col", "encoding", "time_format",
                                               "profile", "top_k", "max_users") if getattr(args, k) is not None}
    rows = teacher_scores_command(replace(cfg, **overrides), log=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(f"wrote {rows} rows to {args.out}")
    return EXIT_OK


def _cmd_profiles(args: argparse.Namespace) -> int:
    from toolkit.api import list_profiles

    rows = list_profiles()
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

    from toolkit.api import load_profile, profile_artifact
    from toolkit.planning.candidates import PlanConfig
    from toolkit.profiler.judge import not_fit_message
    from toolkit.profiler.records import QualityData
    from toolkit.profiler.recommend import recommend
    from toolkit.report.markdown import verdict_table
    from toolkit.report.write import report_dict, write_report

    profile = load_profile(args.profile)
    if args.report is not None and Path(args.report).exists() and not Path(args.report).is_dir():
        raise ToolkitError(f"--report {args.report}: exists and is not a directory")
    if args.data is None and any(getattr(args, k) is not None for k in ("user_col", "item_col", "time_col", "encoding")):
        raise ToolkitError("--user-col/--item-col/--time-col/--encoding name columns of --data: give --data too")
    data = None if args.data is None else QualityData(path=args.data, user_col=args.user_col, item_col=args.item_col,
                                                      time_col=args.time_col, encoding=args.encoding)
    if data is not None:
        from toolkit.data import check_data_path

        check_data_path(data.path)
    reference = Path(args.reference) if args.reference is not None else None
    results = [profile_artifact(a, profile, reference=reference, data=data) for a in args.artifacts]
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
