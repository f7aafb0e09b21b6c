"""The command line's parser: one function per command adds its subparser, the flag groups several
commands share are functions too (`add_data_flags`, `add_json_flag`). Errors are one line, exit 2
(`OneLineParser`). Nothing heavy is imported: `python -m toolkit --help` stays fast.
"""

from __future__ import annotations

import argparse

from toolkit.core.contract import REPEATS_MODES
from toolkit.core.errors import ToolkitError
from toolkit.training.distributed import DistributedConfig
from toolkit import teachers


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


def add_json_flag(p: argparse.ArgumentParser) -> None:
    """--json: the figures as JSON on stdout (profile, verify)."""
    p.add_argument("--json", action="store_true", help="print the figures as JSON instead of the table")


def make_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m toolkit",
                           description="Distil a recommender into a small model that fits an edge device.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for add in (add_build, add_train_teacher, add_profiles, add_profile, add_verify, add_teacher_scores, add_calibrate):
        add(sub)
    return parser


def add_build(sub) -> None:
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
    t.add_argument("--teacher", metavar="KIND", help=teachers.usage())
    t.add_argument("--teacher-scores", metavar="FILE.parquet", help="precomputed soft labels from any framework "
                   "(columns user, position, items, scores) instead of a teacher model")
    t.add_argument("--kg", metavar="TRIPLES", help="the kg teacher's graph: head/relation/tail triples file "
                   "(default: MovieLens-100K's own)")
    t.add_argument("--kg-links", metavar="LINKS", help="the kg teacher's item -> entity links file (item_id, entity_id)")
    b.add_argument("--student", metavar="MODULE:FACTORY", help="your own student: a causal torch module "
                   "(FACTORY(items, max_history), forward [B, L] int64 -> [B, L, N] scores) distilled, compressed "
                   "where it applies, exported and profiled instead of the planned SASRec")
    short = b.add_argument_group("shorter runs (tests, smoke checks)")
    short.add_argument("--max-users", type=positive_int, help="use only the first N users")
    short.add_argument("--epochs", type=positive_int, help="at most N epochs for teacher and student")
    short.add_argument("--teacher-members", type=positive_int, help="models in the teacher ensemble")
    short.add_argument("--teacher-dim", type=positive_int, help="teacher model dimension")
    short.add_argument("--student-dim", type=positive_int, help="student model dimension (the plan then chooses only the rest)")


def add_train_teacher(sub) -> None:
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
    t.add_argument("--teacher", choices=teachers.trainable(), help=teachers.usage(teachers.trainable(), " or "))
    t.add_argument("--repeats", choices=REPEATS_MODES, help="as for build: it decides what validation counts")
    t.add_argument("--kg", metavar="TRIPLES", help="the kg teacher's graph, as for build")
    t.add_argument("--kg-links", metavar="LINKS", help="the kg teacher's item -> entity links file, as for build")
    # build_config reads them; the teacher does not depend on them
    t.set_defaults(out=None, student_dim=None, teacher_scores=None)


def add_profiles(sub) -> None:
    sub.add_parser("profiles", help="list the device profiles and their budgets",
                   description="List the shipped device profiles with their budgets.")


def add_profile(sub) -> None:
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
    add_json_flag(p)


def add_verify(sub) -> None:
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
    add_json_flag(v)


def add_teacher_scores(sub) -> None:
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


def add_calibrate(sub) -> None:
    c = sub.add_parser("calibrate", help="measure this machine's fp32 GFLOP/s (the `gflops` of a profile)",
                       description="Measure the sustained fp32 matrix-multiply rate of this machine at a thread "
                                   "count (needs only numpy) and print the `gflops = X` line for a profile.")
    c.add_argument("--threads", type=positive_int, help="threads to measure with (default 1)")
    c.add_argument("--profile", help="take the thread count from this profile")
    c.add_argument("--seconds", type=float, help="measuring time (default 1.0)")
