"""`--teacher kg`: the knowledge-graph teacher, an ensemble whose members' item vectors also carry a
graph (`toolkit.teachers.kg`): the user's `--kg TRIPLES --kg-links LINKS`, or MovieLens-100K's own
(`toolkit.teachers.graph.movielens_kg`), aligned with the data's items first."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.core.errors import ToolkitError
from toolkit.teachers.kinds.ensemble import trained_ensemble
from toolkit.teachers.protocol import TeacherInputs, check_graph_flags

if TYPE_CHECKING:
    from toolkit.data import Dataset, Split
    from toolkit.teachers.ensemble import TeacherConfig
    from toolkit.training.trained import TrainedModel


class KnowledgeGraphTeacher:
    flag = "--teacher"
    value = "kg"
    summary = "knowledge-graph teacher"
    trainable = True
    plain_members = False
    phases = ("valid", "test")

    def check(self, cfg: TeacherConfig, data_path: Path | None) -> None:
        check_graph_flags(cfg, reads_graph=True)
        if cfg.kg_triples is None and data_path is not None:
            raise ToolkitError(f"--teacher kg on --data {data_path}: give the graph with --kg TRIPLES --kg-links LINKS "
                               "(only the default MovieLens-100K ships one)")
        for flag, p in (("--kg", cfg.kg_triples), ("--kg-links", cfg.kg_links)):
            if p is not None and not Path(p).is_file():
                raise ToolkitError(f"{flag} {p}: no such file")

    def inputs(self, cfg: TeacherConfig) -> list[Path]:
        return [Path(p) for p in (cfg.kg_triples, cfg.kg_links) if p]

    def obtain(self, cfg: TeacherConfig, data: TeacherInputs, log) -> TrainedModel:
        kg, graph = knowledge_graph(cfg, data.dataset, data.split, log)
        return trained_ensemble(cfg, data, log, kg=kg, graph=graph)


def knowledge_graph(cfg: TeacherConfig, dataset: Dataset, split: Split, log) -> tuple[object, dict]:
    """The graph of a kg teacher, aligned with the data's items (the user's files, or MovieLens-100K's
    own: `toolkit.teachers.graph.movielens_kg`), and its summary with how well its links match the
    interactions (`toolkit.teachers.graph.kg_alignment`)."""
    from toolkit.teachers.graph import ALIGNED_LIFT, kg_alignment, load_kg, movielens_kg

    if cfg.kg_triples is not None:
        kg = load_kg(cfg.kg_triples, cfg.kg_links, dataset.item_ids)
    else:
        kg = movielens_kg(dataset.item_ids, split.train, log)
    lift = kg_alignment(kg, split.train)
    s = kg.summary()
    log(f"knowledge graph: {s['triples']:,} triples, {s['entities']:,} entities, {s['relations']} relations; "
        f"{s['items_linked']:,} of {s['items']:,} items linked ({s['links_ignored']} links to unknown items ignored); "
        f"graph-near items share {lift:.2f}x the users of random pairs")
    if lift < ALIGNED_LIFT:
        log(f"warning: the graph's near items share no more users than random pairs ({lift:.2f}x): its links may "
            "name items of another id space")
    return kg, {**s, "alignment_lift": lift}
