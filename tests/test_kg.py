"""Knowledge graphs: the triples and links files read and checked (clear errors naming file and line),
aligned with the data's items; the knowledge-graph teacher trained, cached (keyed on the graph's
files) and distilled into a student that stays ID-only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import run_cli
from toolkit.core.errors import ToolkitError
from toolkit.teachers.graph import KGConfig, TransEConfig, item_neighbourhoods, kg_alignment, kg_item_neighbours, load_kg

ITEMS = ["", "a", "b", "c", "d"]


def _files(tmp_path: Path, triples: str, links: str) -> tuple[Path, Path]:
    t, l = tmp_path / "g.kg", tmp_path / "g.link"
    t.write_text(triples)
    l.write_text(links)
    return t, l


TRIPLES = ("head_id:token\trelation_id:token\ttail_id:token\n"
           "e.a\tdirected_by\tp.1\ne.b\tdirected_by\tp.1\ne.c\tactor\tp.2\ne.d\tactor\tp.2\ne.a\tactor\tp.3\n"
           "p.4\twrote\te.a\n")
LINKS = "item_id:token\tentity_id:token\na\te.a\nb\te.b\nc\te.c\nzz\te.zz\n"


def test_a_graph_is_read_and_aligned_with_the_items(tmp_path):
    kg = load_kg(*_files(tmp_path, TRIPLES, LINKS), ITEMS)
    s = kg.summary()
    assert (s["triples"], s["relations"], s["items_linked"], s["links_ignored"]) == (6, 3, 3, 1)
    assert kg.item_entity[4] == 0 and kg.entities[kg.item_entity[1]] == "e.a"  # d unlinked
    entities, relations = item_neighbourhoods(kg, 4)
    # only entities shared by two linked items are neighbours: p.1 (a, b); p.2 has one linked item (c)
    names = [{kg.entities[e] for e in row if e} for row in entities]
    assert names == [set(), {"p.1"}, {"p.1"}, set(), set()]
    assert relations[1][0] == relations[2][0] == kg.relations.index("directed_by")
    near = kg_item_neighbours(kg, 3)
    assert near[1][0] == 2 and near[2][0] == 1 and not near[3].any()


def test_comma_separated_files_and_plain_header_names(tmp_path):
    t, l = tmp_path / "g.csv", tmp_path / "l.csv"
    t.write_text("head,relation,tail\ne.a,r,x\ne.b,r,x\n")
    l.write_text("item,entity\na,e.a\nb,e.b\n")
    kg = load_kg(t, l, ITEMS)
    assert kg.linked().sum() == 2 and len(kg.heads) == 2


@pytest.mark.parametrize("triples, links, expected", [
    ("head_id\trelation_id\n", LINKS, "no tail column (name it tail_id or tail)"),
    ("head_id\trelation_id\ttail_id\ne.a\tr\n", LINKS, "line 2 has 2 fields, the header has 3"),
    ("head_id\trelation_id\ttail_id\ne.a\t\tx\n", LINKS, "line 2 has an empty 'relation_id'"),
    ("head_id\trelation_id\ttail_id\n", LINKS, "no triples"),
    (TRIPLES, "item_id\tentity_id\na\te.a\na\te.b\n", "item 'a' is linked twice (lines 2 and 3)"),
    (TRIPLES, "item_id\tentity_id\n7\te.a\n", "none of its 1 items is an item of the data"),
    (TRIPLES, "item\tthing\na\te.a\n", "no entity column"),
])
def test_bad_graph_files_are_one_clear_error(tmp_path, triples, links, expected):
    t, l = _files(tmp_path, triples, links)
    with pytest.raises(ToolkitError) as e:
        load_kg(t, l, ITEMS)
    assert expected in str(e.value)
    assert str(t) in str(e.value) or str(l) in str(e.value)
    with pytest.raises(ToolkitError, match="no such file"):
        load_kg(tmp_path / "missing.kg", l, ITEMS)


def test_movielens_graph_and_its_alignment(movielens, small_split):
    """MovieLens-100K's own graph: the counts the issue quotes; its links use MovieLens-1M/20M movie ids
    (sequels pair up there, not under ML-100K's numbering), so graph-near items share no more users
    than random pairs. `kg_alignment` is the check a user's graph gets too."""
    from toolkit.teachers.graph import movielens_kg_files

    kg = load_kg(*movielens_kg_files(), movielens.item_ids)
    s = kg.summary()
    assert (s["triples"], s["relations"], s["items_linked"]) == (91_631, 24, 1_598)
    sequel = kg.relations.index("film.film.sequel")
    pairs = {(movielens.item_ids[np.flatnonzero(kg.item_entity == h)[0]],
              movielens.item_ids[np.flatnonzero(kg.item_entity == t)[0]])
             for h, t in zip(kg.heads[kg.rels == sequel], kg.tails[kg.rels == sequel])
             if (kg.item_entity == h).any() and (kg.item_entity == t).any()}
    assert {("260", "1196"), ("1196", "1210")} <= pairs  # Star Wars -> Empire -> Jedi in MovieLens-1M ids
    assert movielens.titles["260"] == "Event Horizon (1997)"  # ... not in MovieLens-100K's numbering
    assert kg_alignment(kg, small_split.train) < 1.1


def test_kg_teacher_is_cached_on_the_graph_and_its_student_stays_id_only(small_split, tmp_path):
    from toolkit.training.distill import DistillConfig, distill
    from toolkit.models.sasrec import ItemTable, ModelConfig
    from toolkit.teachers.ensemble import TeacherConfig, teacher_key, train_teacher
    from toolkit.training.distill import item_embeddings
    from toolkit.teachers.kg import KGItemTable
    from toolkit.training.loop import TrainConfig

    torch.set_num_threads(1)
    items = [""] + [str(i) for i in range(1, small_split.num_items)]
    # a small graph over the slice's items: items i and i+1 share a "series" entity
    lines = ["head_id\trelation_id\ttail_id"] + [f"m{i}\tseries\ts{i // 2}" for i in range(1, small_split.num_items)]
    t, l = _files(tmp_path, "\n".join(lines) + "\n",
                  "item_id\tentity_id\n" + "".join(f"{i}\tm{i}\n" for i in range(1, small_split.num_items)))
    kg = load_kg(t, l, items)
    cfg = TeacherConfig(kind="kg", members=1, dim=8, kg=KGConfig(transe_config=TransEConfig(epochs=1)),
                        train=TrainConfig(epochs=1, min_steps=0, batch_size=64))
    data = {"sha256": "slice", "max_users": 150}
    split = small_split.sealed()
    first = train_teacher(cfg, split, data, 50, 0, log=lambda *_: None, kg=kg)
    assert not first.cached and isinstance(first.model.members[0].items, KGItemTable)
    assert train_teacher(cfg, split, data, 50, 0, log=lambda *_: None, kg=kg).cached
    t.write_text(t.read_text() + "m1\tseries\ts999\n")  # another graph file: another key
    assert teacher_key(cfg, data, split.num_items, 50, 0, load_kg(t, l, items)) != first.key
    assert teacher_key(cfg, data, split.num_items, 50, 0, None) != first.key
    table = first.model.members[0].items
    ids = torch.tensor([[0, 3, 5]])
    assert torch.allclose(table.lookup(ids), table.weight()[ids], atol=1e-6) and not table.weight()[0].any()
    vectors = item_embeddings(first.model)
    assert vectors.shape == (split.num_items, 8) and first.model.item_neighbours.shape[0] == split.num_items
    student = distill(first.model, ModelConfig(num_items=split.num_items, dim=8), split,
                      TrainConfig(epochs=1, min_steps=0, batch_size=64), DistillConfig(relational=1.0)).model
    assert type(student.items) is ItemTable  # the exported graph is the ID-only one
    assert set(student.state_dict()) == set(type(student)(student.cfg).state_dict())


def test_relational_term_pulls_the_student_table_towards_the_teacher():
    from toolkit.training.distill import DistillConfig, RelationalTerm
    from toolkit.models.sasrec import ModelConfig, SASRec

    torch.manual_seed(0)
    teacher = torch.nn.functional.normalize(torch.randn(50, 4), dim=-1)
    student = SASRec(ModelConfig(num_items=50, dim=4, max_history=5))
    term = RelationalTerm(teacher, None, DistillConfig(relational=1.0, relational_anchors=49), seed=0)
    opt = torch.optim.Adam(student.items.parameters(), lr=0.05)
    losses = []
    for _ in range(60):
        loss = term(student)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])


def test_kg_flags_exit_2_before_training(cache_dir, tmp_path):
    data = tmp_path / "log.csv"
    data.write_text("user,item,timestamp\n" + "".join(f"u{u},i{i},{i}\n" for u in range(3) for i in range(80)))
    bad = tmp_path / "g.kg"
    bad.write_text("head_id\trelation_id\ttail_id\n")
    for args, expected in ((("--teacher", "kg", "--data", str(data)), "give the graph with --kg"),
                           (("--kg", str(bad), "--kg-links", str(tmp_path / "none.link")), "--kg-links"),
                           (("--teacher", "gru", "--kg", str(bad), "--kg-links", str(bad)), "expected MODULE:FACTORY")):
        result = run_cli("build", "--out", str(tmp_path / "out"), *args, timeout=120)
        assert result.returncode == 2 and expected in result.stderr, result.stderr
        assert not (tmp_path / "out").exists()
