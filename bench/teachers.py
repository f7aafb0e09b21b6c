"""Benchmark: is a knowledge-graph teacher worth distilling? (issue 13)

    python bench/teachers.py                  # MovieLens-100K, 3 seeds; writes bench/teachers.json + TEACHERS.md
    python bench/teachers.py --seeds 1        # one seed (a preliminary figure)
    python bench/teachers.py --render         # only rewrite TEACHERS.md from teachers.json
    python bench/teachers.py --choose         # only the validation runs that chose the design (seed 0)
    python bench/teachers.py --relational     # only the relational weight's validation runs (3 seeds)
    python bench/teachers.py --tail           # only the cached teachers' tail ranks (HR@10/50/100)
    python bench/teachers.py --synthetic      # only the synthetic check: a graph that is right (3 seeds)

`run_teachers(split, seeds, work, log)` is what bench/run.py calls; it returns the issue's two JSON
parts:

- "teachers": {"id_only": {"ndcg10": [per seed]}, "kg": {"ndcg10": [per seed]}}: the default
  teacher (3 x dim-32 SASRec) and the same ensemble with the knowledge graph in its item vectors
  (`toolkit.teachers.kg`), test NDCG@10 in PyTorch; teacher seed s trains members s, s+1, s+2.
- "kg_students": per budget (60 KB: the smartwatch plan's student; the mobile-arm plan's) and per
  teacher ("kg", "id_only", and "scratch", the same candidate without a teacher, as the control),
  the student distilled with seed s from the teacher of seed s, compressed as the plan says,
  exported to ONNX and measured through ONNX Runtime on test: NDCG@10 overall and HR@10 on the
  users whose test item is a tail item (<= TAIL_MAX training interactions), mean and std over seeds.

Every choice (graph, fusion, relational weight, alpha/T) was made on validation (`--choose`, whose
figures are in teachers.json); test is read here only for the final figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TAIL_MAX = 5  # a tail item has at most this many training interactions
MAX_HISTORY = 50
# the plan's students on MovieLens-100K (bench/results.json, chosen on validation by plan_student):
# smartwatch (60 KB): dim 16, int4 table + int8 linears; mobile-arm (4 MB): dim 32, fp32
# the synthetic check's logs (2,000 items): 40 and 10 interactions an item (93 tail users in the second)
SYNTHETIC_INTERACTIONS = (80_000, 20_000)
# its students: label -> (teacher, relational weight β); no teacher = from scratch
SYNTHETIC_STUDENTS = {"id_only": ("id_only", 0.0), "kg": ("kg", 0.0), "kg, relational 1": ("kg", 1.0),
                      "scratch": (None, 0.0)}
BUDGETS = {"smartwatch": {"dim": 16, "table_bits": 4, "linear_bits": 8}, "mobile-arm": {"dim": 32}}


def tail_users(split, max_count: int = TAIL_MAX) -> np.ndarray:
    """Rows of the users whose test item has at most `max_count` training interactions (final figures only)."""
    from toolkit.training.evaluate import popularity_scores

    counts = popularity_scores(split)
    return np.flatnonzero(counts[split.test_target] <= max_count)


def through_onnx(model, split, profile, path: Path, tail: np.ndarray) -> dict:
    """Export the model as the build does (ONNX, its weights as they are) and measure it through ONNX
    Runtime on test: NDCG@10/HR@10 overall, HR@10 on the tail users; bytes of the file."""
    from export import quiet_exporters
    from export.onnx import export_onnx
    from export.runtime import Predictor
    from export.serving import ServingModel
    from toolkit.training.evaluate import cutoff_for, evaluate_topk
    from toolkit.recipe.serving import serving_record

    k = cutoff_for(profile.serving.top_k)
    serving = serving_record(model, split.sealed(), profile, k)
    with quiet_exporters():
        export_onnx(ServingModel(model, serving.candidates), path, MAX_HISTORY)
    predictor = Predictor(path, threads=1)
    overall = evaluate_topk(predictor.predict, split, "test", MAX_HISTORY, k)
    on_tail = evaluate_topk(predictor.predict, split.subset(tail), "test", MAX_HISTORY, k)
    return {"bytes": path.stat().st_size, "ndcg10": overall.ndcg, "hr10": overall.hr, "tail_hr10": on_tail.hr,
            "tail_hits": int(round(on_tail.hr * on_tail.users)), "tail_users": on_tail.users}


def movielens_graph(dataset, split, log):
    """MovieLens-100K's graph as the kg teacher gets it in a build (`toolkit.teachers.kinds.kg.knowledge_graph`)."""
    from toolkit.teachers.ensemble import TeacherConfig
    from toolkit.teachers.kinds.kg import knowledge_graph

    return knowledge_graph(TeacherConfig(kind="kg"), dataset, split, log)


def run_teachers(split, seeds: list[int], work: Path, log=print, budgets: dict | None = None,
                 on_seed=None, teacher=None, student=None) -> dict:
    """The issue's "teachers" and "kg_students" parts on MovieLens-100K (`split`: its leave-one-out
    split, unsealed; training and every choice see it sealed). `on_seed(partial result)` is called
    after each seed (a long run can be written as it goes); `teacher` (TeacherConfig) and `student`
    (StudentConfig: how each student trains) shorten a smoke run."""
    import torch

    from toolkit.data import load_dataset
    from toolkit.training.evaluate import evaluate_model
    import toolkit
    from toolkit.core.profiles import load_profile
    from toolkit.planning.candidates import Candidate
    from toolkit.recipe.records import Data
    from toolkit.recipe.student import compress_candidate
    from toolkit.teachers.ensemble import TeacherConfig, train_teacher

    budgets = budgets or BUDGETS
    teacher_cfg = teacher or TeacherConfig()
    student_cfg = toolkit.StudentConfig() if student is None else student
    dataset = load_dataset()
    assert dataset.num_items == split.num_items, "run_teachers measures MovieLens-100K"
    data_key = {**dataset.key(), "max_users": 0}
    sealed = split.sealed()
    tail = tail_users(split)
    kg, graph = movielens_graph(dataset, sealed, log)
    teachers = {"id_only": {"ndcg10": [], "valid_ndcg10": []}, "kg": {"ndcg10": [], "valid_ndcg10": [], "graph": graph}}
    runs = {(name, kind): [] for name in budgets for kind in ("kg", "id_only", "scratch")}
    work.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        models = {}
        for kind, cfg, graph_arg in (("id_only", teacher_cfg, None), ("kg", replace(teacher_cfg, kind="kg"), kg)):
            start = time.perf_counter()
            teacher = train_teacher(cfg, sealed, data_key, MAX_HISTORY, seed, log, kg=graph_arg)
            models[kind] = teacher.model
            teachers[kind]["ndcg10"].append(evaluate_model(teacher.model, split, "test").ndcg)
            teachers[kind]["valid_ndcg10"].append(evaluate_model(teacher.model, sealed, "valid").ndcg)
            log(f"teacher {kind} seed {seed}: test NDCG@10 {teachers[kind]['ndcg10'][-1]:.4f} (valid "
                f"{teachers[kind]['valid_ndcg10'][-1]:.4f}; {time.perf_counter() - start:.0f} s)")
        for name, fields in budgets.items():
            profile = load_profile(name)
            c = Candidate(**fields)
            for kind in ("kg", "id_only", "scratch"):
                start = time.perf_counter()
                torch.manual_seed(seed)
                data = Data(dataset=dataset, split=split, key=data_key, item_ids=list(dataset.item_ids))
                student = toolkit.distill(None if models.get(kind) is None else toolkit.TrainedModel(
                    models[kind], {}, 0, {}, 0.0), c, data, student_cfg, max_history=MAX_HISTORY, seed=seed)
                valid = student.valid.ndcg
                model, _ = compress_candidate(c, student.model, models.get(kind), sealed, student_cfg, seed)
                figures = through_onnx(model, split, profile, work / f"{name}-{kind}-{seed}.onnx", tail)
                runs[(name, kind)].append({"seed": seed, "float_valid_ndcg10": valid, **figures})
                log(f"student {name} ({c.name()}) from {kind} seed {seed}: {figures['bytes']:,} B, test NDCG@10 "
                    f"{figures['ndcg10']:.4f}, tail HR@10 {figures['tail_hr10']:.4f} ({figures['tail_hits']}/"
                    f"{figures['tail_users']}); {time.perf_counter() - start:.0f} s")
        if on_seed is not None:
            on_seed(_result(teachers, runs, budgets))
    return _result(teachers, runs, budgets)


def _result(teachers: dict, runs: dict, budgets: dict) -> dict:
    from toolkit.core.profiles import load_profile

    students = []
    for (name, kind), seeds in runs.items():
        if not seeds:
            continue
        nd, tail = [r["ndcg10"] for r in seeds], [r["tail_hr10"] for r in seeds]
        students.append({"budget_bytes": load_profile(name).budget.model_bytes, "profile": name,
                         "candidate": budgets[name], "teacher": kind, "bytes": max(r["bytes"] for r in seeds),
                         "ndcg10": float(np.mean(nd)), "ndcg10_std": float(np.std(nd, ddof=1)) if len(nd) > 1 else 0.0,
                         "tail_hr10": float(np.mean(tail)), "ndcg10_per_seed": nd, "tail_hr10_per_seed": tail,
                         "tail_hits_per_seed": [r["tail_hits"] for r in seeds], "tail_users": seeds[0]["tail_users"],
                         "float_valid_ndcg10_per_seed": [r["float_valid_ndcg10"] for r in seeds]})
    return {"teachers": teachers, "kg_students": students}


def teacher_tail(split, seeds: list[int], log=print) -> dict:
    """The teachers' ranks of the tail users' test items (full ranking in PyTorch, from the cache):
    HR@10 is 0 or 1 hit of 16 users, so wider cutoffs say more. Per teacher and seed: HR@10, @50, @100."""
    import torch

    from toolkit.data import load_dataset
    from toolkit.training.evaluate import evaluate_scores
    from toolkit.teachers.ensemble import TeacherConfig, train_teacher

    dataset = load_dataset()
    sealed = split.sealed()
    kg, _ = movielens_graph(dataset, sealed, lambda *_: None)
    tail = tail_users(split)
    on_tail = split.subset(tail)
    out = {"tail_users": int(len(tail))}
    for kind, cfg, graph in (("id_only", TeacherConfig(), None), ("kg", TeacherConfig(kind="kg"), kg)):
        rows = []
        for seed in seeds:
            model = train_teacher(cfg, sealed, {**dataset.key(), "max_users": 0}, MAX_HISTORY, seed, log, kg=graph).model

            def score(batch):
                with torch.no_grad():
                    return model.score_last(torch.from_numpy(batch)).numpy()

            rows.append({"seed": seed, **{f"hr{k}": evaluate_scores(score, on_tail, "test", MAX_HISTORY, k).hr
                                          for k in (10, 50, 100)}})
        out[kind] = rows
        log(f"tail ({len(tail)} users), teacher {kind}: " + "; ".join(
            f"HR@10 {r['hr10']:.3f} HR@50 {r['hr50']:.3f} HR@100 {r['hr100']:.3f}" for r in rows))
    return out


# --- the choices, on validation -----------------------------------------------------------------


def graph_variants(dataset, split) -> dict:
    """MovieLens-100K's knowledge, every way it can enter: the Freebase graph as linked, the item
    features as triples, both (features hung on the Freebase entities)."""
    from toolkit.data import movielens_100k_files
    from toolkit.teachers.graph import feature_triples, graph_from_triples, load_kg, movielens_kg_files

    fb = load_kg(*movielens_kg_files(), dataset.item_ids)
    fb_triples = ([fb.entities[i] for i in fb.heads], [fb.relations[i] for i in fb.rels],
                  [fb.entities[i] for i in fb.tails])
    fb_links = {dataset.item_ids[i]: fb.entities[e] for i, e in enumerate(fb.item_entity) if e}
    fh, fr, ft = feature_triples(movielens_100k_files() / "ml-100k.item", dataset.item_ids)
    own = {i: f"item:{i}" for i in dataset.item_ids[1:]}
    both_heads = [fb_links.get(h[len("item:"):], h) for h in fh]
    return {"freebase": fb,
            "features": graph_from_triples(fh, fr, ft, own, dataset.item_ids, {"features": "-"}, {}),
            "freebase+features": graph_from_triples(fb_triples[0] + both_heads, fb_triples[1] + fr, fb_triples[2] + ft,
                                                    {**own, **fb_links}, dataset.item_ids, {"both": "-"}, {})}


def choose(log=print, seed: int = 0) -> dict:
    """The validation runs that chose the design (seed 0): one-member teachers (dim 32) without the
    graph and with each graph variant, TransE-initialised or not; then dim-16 students distilled from
    the 3-member teachers with the relational term off and on."""
    import torch

    from toolkit.data import load_dataset, split_leave_one_out
    from toolkit.training.distill import DistillConfig, distill
    from toolkit.training.evaluate import evaluate_model
    from toolkit.teachers.graph import KGConfig, kg_alignment
    from toolkit.models.sasrec import ModelConfig
    from toolkit.teachers.ensemble import TeacherConfig, train_teacher
    from toolkit.training.loop import TrainConfig

    dataset = load_dataset()
    split = split_leave_one_out(dataset).sealed()
    data_key = {**dataset.key(), "max_users": 0}
    out = {"members": {}, "alignment_lift": {}, "students": {}}
    one = TeacherConfig(members=1)
    runs = [("id_only", None, one)] + [(f"{name}{' + TransE' if transe else ''}", kg,
                                        replace(one, kind="kg", kg=KGConfig(transe=transe)))
                                       for name, kg in graph_variants(dataset, split).items() for transe in (False, True)]
    for name, kg, cfg in runs:
        if kg is not None and name.split(" ")[0] not in out["alignment_lift"]:
            out["alignment_lift"][name.split(" ")[0]] = kg_alignment(kg, split.train)
        teacher = train_teacher(cfg, split, data_key, MAX_HISTORY, seed, log, kg=kg)
        out["members"][name] = evaluate_model(teacher.model, split, "valid").ndcg
        log(f"choose: one member {name}: valid NDCG@10 {out['members'][name]:.4f}")
    kg, _ = movielens_graph(dataset, split, log)
    for kind, cfg, graph in (("kg", TeacherConfig(kind="kg"), kg), ("id_only", TeacherConfig(), None)):
        teacher = train_teacher(cfg, split, data_key, MAX_HISTORY, seed, log, kg=graph).model
        out["students"][f"teacher {kind}"] = evaluate_model(teacher, split, "valid").ndcg
        for beta in (0.0, 1.0):
            torch.manual_seed(seed)
            r = distill(teacher, ModelConfig(num_items=split.num_items, dim=16, max_history=MAX_HISTORY), split,
                        TrainConfig(seed=seed), DistillConfig(relational=beta))
            out["students"][f"dim 16 from {kind}, relational {beta}"] = r.valid.ndcg
            log(f"choose: dim-16 student from {kind}, relational β {beta}: valid NDCG@10 {r.valid.ndcg:.4f}")
    return out


def choose_relational(seeds: list[int], log=print) -> dict:
    """The relational weight over seeds, on validation: dim-16 float students distilled from the kg
    teacher of each seed (cached) with β = 0 and β = 1 (the plan's training recipe)."""
    import torch

    from toolkit.data import load_dataset, split_leave_one_out
    from toolkit.training.distill import DistillConfig, distill
    from toolkit.models.sasrec import ModelConfig
    from toolkit.recipe.config import StudentConfig
    from toolkit.teachers.ensemble import TeacherConfig, train_teacher
    from toolkit.training.loop import TrainConfig

    dataset = load_dataset()
    split = split_leave_one_out(dataset).sealed()
    kg, _ = movielens_graph(dataset, split, lambda *_: None)
    plan = StudentConfig()  # how the build trains its students
    out = {}
    for beta in (0.0, 1.0):
        out[f"relational {beta}"] = []
        for seed in seeds:
            teacher = train_teacher(TeacherConfig(kind="kg"), split, {**dataset.key(), "max_users": 0}, MAX_HISTORY,
                                    seed, log, kg=kg).model
            torch.manual_seed(seed)
            r = distill(teacher, ModelConfig(num_items=split.num_items, dim=16, max_history=MAX_HISTORY,
                                             dropout=plan.dropout), split,
                        TrainConfig(epochs=plan.train.epochs, patience=plan.train.patience, seed=seed), DistillConfig(relational=beta))
            out[f"relational {beta}"].append(r.valid.ndcg)
            log(f"choose: dim-16 student from kg seed {seed}, β {beta}: valid NDCG@10 {r.valid.ndcg:.4f}")
    return out


# --- the same machinery on a graph that is right: synthetic data ----------------------------------


def synthetic_check(work: Path, log=print, items: int = 2000, interactions: int = 80_000, seeds=(0, 1, 2)) -> dict:
    """Does the kg teacher, and its ID-only student, help when the graph names the right items?
    bench/synthetic.py's log (topics, Zipf popularity, series; generator seed 0) with its true topic of
    each item as the graph (item, in_topic, topic). Per seed: one-member id-only and kg teachers, then
    dim-16 students (the plan's recipe) distilled from each, one from the kg teacher with the
    relational term on (β = 1; the build leaves it off) and one from scratch; validation and test
    NDCG@10 and tail HR@10 in PyTorch."""
    import torch

    from bench.synthetic import SyntheticConfig, write
    from toolkit.data import load_dataset, split_leave_one_out
    from toolkit.training.distill import DistillConfig, distill
    from toolkit.training.evaluate import evaluate_model
    from toolkit.teachers.graph import load_kg
    from toolkit.models.sasrec import ModelConfig
    from toolkit.recipe.config import StudentConfig
    from toolkit.teachers.ensemble import TeacherConfig, train_teacher
    from toolkit.training.loop import TrainConfig, fit

    cfg = SyntheticConfig(items=items, interactions=interactions, seed=0)
    work.mkdir(parents=True, exist_ok=True)
    path = write(cfg, work / "synthetic.parquet")
    # the generator's first draw is each item's topic; its item names come from _hashes (bench/synthetic.py)
    from bench.synthetic import _hashes

    topics = cfg.topics or max(2, int(np.sqrt(cfg.items)))
    topic_of = np.random.default_rng(cfg.seed).integers(0, topics, size=cfg.items)
    names = [f"item-{h:08x}" for h in _hashes(cfg.items, cfg.seed)]
    (work / "synthetic.kg").write_text("head_id\trelation_id\ttail_id\n" + "".join(
        f"{n}\tin_topic\ttopic-{t}\n" for n, t in zip(names, topic_of)))
    (work / "synthetic.link").write_text("item_id\tentity_id\n" + "".join(f"{n}\t{n}\n" for n in names))
    dataset = load_dataset(str(path))
    split = split_leave_one_out(dataset)
    sealed = split.sealed()
    kg = load_kg(work / "synthetic.kg", work / "synthetic.link", dataset.item_ids)
    tail = tail_users(split)
    plan = StudentConfig()  # how the build trains its students
    student = ModelConfig(num_items=split.num_items, dim=16, max_history=MAX_HISTORY, dropout=plan.dropout)

    def figures(model) -> dict:
        return {"valid_ndcg10": evaluate_model(model, sealed, "valid").ndcg,
                "test_ndcg10": evaluate_model(model, split, "test").ndcg,
                "tail_hr10": evaluate_model(model, split.subset(tail), "test").hr}

    out = {"config": cfg.to_dict(), "users": len(split.train), "tail_users": int(len(tail)), "seeds": list(seeds),
           "teachers": {"id_only": [], "kg": []},
           "students": {label: [] for label in SYNTHETIC_STUDENTS}}
    for seed in seeds:
        teachers = {}
        for kind, graph in (("id_only", None), ("kg", kg)):
            teachers[kind] = train_teacher(TeacherConfig(kind="kg" if graph is not None else "ensemble", members=1),
                                           sealed, {**dataset.key(), "max_users": 0}, MAX_HISTORY, seed, log,
                                           kg=graph).model
            out["teachers"][kind].append(figures(teachers[kind]))
            log(f"synthetic teacher {kind} seed {seed}: {out['teachers'][kind][-1]}")
        train_cfg = TrainConfig(epochs=plan.train.epochs, patience=plan.train.patience, seed=seed)
        for label, (kind, beta) in SYNTHETIC_STUDENTS.items():
            torch.manual_seed(seed)
            model = (fit(student, sealed, train_cfg, desc="synthetic scratch") if kind is None else
                     distill(teachers[kind], student, sealed, train_cfg, DistillConfig(relational=beta),
                             desc=f"synthetic {label}")).model
            out["students"][label].append(figures(model))
            log(f"synthetic dim-16 student from {label} seed {seed}: {out['students'][label][-1]}")
    return out


# --- the report ---------------------------------------------------------------------------------


def render(result: dict) -> str:
    t = result["teachers"]
    lines = ["# Teachers worth distilling: measured (MovieLens-100K)", "",
             f"Written by `python bench/teachers.py` ({result.get('started', '?')}, {result.get('seeds', '?')} seed(s); "
             "test figures; every choice made on validation).", "",
             "## Teachers (test NDCG@10 in PyTorch, per seed)", "",
             "| teacher | per seed | mean |", "|---|---|---:|"]
    for kind in ("id_only", "kg"):
        v = t[kind]["ndcg10"]
        lines.append(f"| {kind} | {', '.join(f'{x:.4f}' for x in v)} | {np.mean(v):.4f} |" if v else f"| {kind} | - | - |")
    g = t["kg"].get("graph", {})
    if g:
        lines += ["", f"Graph: {g.get('triples', 0):,} triples, {g.get('items_linked', 0):,} of {g.get('items', 0):,} "
                      f"items linked; graph-near items share {g.get('alignment_lift', 0):.2f}x the users of random pairs."]
    lines += ["", "## Students through ONNX Runtime (test; mean ± std over seeds)", "",
              "| budget | teacher | bytes | NDCG@10 | per seed | tail HR@10 (hits / users per seed) |",
              "|---|---|---:|---:|---|---|"]
    for s in result["kg_students"]:
        hits = ", ".join(f"{h}/{s['tail_users']}" for h in s["tail_hits_per_seed"])
        lines.append(f"| {s['profile']} ({s['budget_bytes']:,} B) | {s['teacher']} | {s['bytes']:,} | "
                     f"{s['ndcg10']:.4f} ± {s['ndcg10_std']:.4f} | {', '.join(f'{x:.4f}' for x in s['ndcg10_per_seed'])} | "
                     f"{s['tail_hr10']:.4f} ({hits}) |")
    c = result.get("choices")
    if c:
        lines += ["", "## Choices (validation NDCG@10, seed 0)", "", "| one dim-32 member | valid NDCG@10 |", "|---|---:|"]
        lines += [f"| {k} | {v:.4f} |" for k, v in c["members"].items()]
        lines += ["", "Alignment (graph-near items' shared users over random pairs'): "
                  + ", ".join(f"{k} {v:.2f}x" for k, v in c["alignment_lift"].items()), "",
                  "| 3-member teachers and dim-16 students | valid NDCG@10 |", "|---|---:|"]
        lines += [f"| {k} | {v:.4f} |" for k, v in c["students"].items()]
        for k, v in c.get("relational_dim16_valid", {}).items():
            lines.append(f"| dim 16 from kg, {k}, seeds 0..{len(v) - 1} | {', '.join(f'{x:.4f}' for x in v)} "
                         f"(mean {np.mean(v):.4f}) |")
    tt = result.get("teacher_tail")
    if tt:
        lines += ["", f"## Teachers on the {tt['tail_users']} tail users (test item with <= {TAIL_MAX} training "
                      "interactions; full ranking in PyTorch)", "", "| teacher | HR@10 | HR@50 | HR@100 (per seed) |",
                  "|---|---|---|---|"]
        for kind in ("id_only", "kg"):
            lines.append(f"| {kind} | " + " | ".join(", ".join(f"{r[f'hr{k}']:.3f}" for r in tt[kind])
                                                       for k in (10, 50, 100)) + " |")
    for y in result.get("synthetic", []):
        lines += ["", f"## The same machinery on a graph that is right (synthetic: {y['config']['items']:,} items, "
                      f"{y['config']['interactions']:,} interactions, {y['users']:,} users, the true topic of each "
                      f"item as the graph; seeds {', '.join(map(str, y['seeds']))}; PyTorch)", "",
                  f"| model | valid NDCG@10 | test NDCG@10 | tail HR@10 ({y['tail_users']} users) |", "|---|---:|---:|---:|"]
        for label, group in (("teacher (1 x dim 32)", "teachers"), ("dim-16 student from", "students")):
            for kind, rows in y[group].items():
                cells = [", ".join(f"{r[key]:.4f}" for r in rows) + f" (mean {np.mean([r[key] for r in rows]):.4f})"
                         for key in ("valid_ndcg10", "test_ndcg10", "tail_hr10")]
                lines.append(f"| {label} {kind} | " + " | ".join(cells) + " |")
    if result.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in result["notes"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "bench"))
    parser.add_argument("--render", action="store_true")
    parser.add_argument("--choose", action="store_true", help="only the validation runs that chose the design")
    parser.add_argument("--synthetic", action="store_true", help="only the synthetic check (a graph that is right)")
    parser.add_argument("--relational", action="store_true", help="only the relational weight's validation runs")
    parser.add_argument("--tail", action="store_true", help="only the cached teachers' tail ranks (HR@10/50/100)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.render:
        result = json.loads((out / "teachers.json").read_text())
        (out / "TEACHERS.md").write_text(render(result))
        return 0
    import torch

    from toolkit.core.cache import write_json_atomic
    from toolkit.data import load_dataset, split_leave_one_out

    torch.set_num_threads(1)  # a shared 2-core machine
    split = split_leave_one_out(load_dataset())
    extra = {"started": time.strftime("%Y-%m-%d %H:%M"), "seeds": args.seeds}
    previous = json.loads((out / "teachers.json").read_text()) if (out / "teachers.json").is_file() else {}

    def write(result: dict, stamp: bool = True) -> None:
        merged = {**previous, **result, **(extra if stamp else {})}
        write_json_atomic(out / "teachers.json", merged)
        (out / "TEACHERS.md").write_text(render(merged))

    if args.choose:
        write({"choices": choose(log=lambda m: print(m, flush=True))}, stamp=False)
        return 0
    if args.relational:
        choices = {**previous.get("choices", {}), "relational_dim16_valid": choose_relational(
            list(range(args.seeds)), log=lambda m: print(m, flush=True))}
        write({"choices": choices}, stamp=False)
        return 0
    if args.tail:
        write({"teacher_tail": teacher_tail(split, list(range(args.seeds)), log=lambda m: print(m, flush=True))},
              stamp=False)
        return 0
    if args.synthetic:
        work = Path(tempfile.mkdtemp(prefix="synthetic."))
        write({"synthetic": [synthetic_check(work / str(n), interactions=n, log=lambda m: print(m, flush=True))
                             for n in SYNTHETIC_INTERACTIONS]}, stamp=False)
        return 0

    result = run_teachers(split, list(range(args.seeds)), Path(tempfile.mkdtemp(prefix="teachers.")),
                          log=lambda m: print(m, flush=True), on_seed=write)
    write(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
