"""Knowledge graphs, one concern a module: the graph and its settings (`model`), reading and checking
a triples file and an item -> entity links file (`files`), MovieLens-100K's own graph (`movielens`),
the items' graph neighbourhoods and the graph's alignment with the interactions (`neighbours`), and
TransE pretraining (`transe`). The names are importable from here, as before the split.
"""

from toolkit.teachers.graph.files import (DECADE_RELATION, FEATURE_RELATIONS, LINK_COLUMNS, TRIPLE_COLUMNS,
                                          feature_triples, load_kg)
from toolkit.teachers.graph.model import KGConfig, KnowledgeGraph, graph_from_triples
from toolkit.teachers.graph.movielens import movielens_kg, movielens_kg_files
from toolkit.teachers.graph.neighbours import ALIGNED_LIFT, item_neighbourhoods, kg_alignment, kg_item_neighbours
from toolkit.teachers.graph.transe import TransEConfig, pretrain_transe

__all__ = ["ALIGNED_LIFT", "DECADE_RELATION", "FEATURE_RELATIONS", "KGConfig", "KnowledgeGraph", "LINK_COLUMNS",
           "TRIPLE_COLUMNS", "TransEConfig", "feature_triples", "graph_from_triples", "item_neighbourhoods",
           "kg_alignment", "kg_item_neighbours", "load_kg", "movielens_kg", "movielens_kg_files", "pretrain_transe"]
