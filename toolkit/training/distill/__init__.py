"""Knowledge distillation: the student learns from the labels and from the teacher's soft outputs.

    L = (1 - α) · CE(student, next item) + α · T² · KL(softmax(teacher / T) ‖ softmax(student / T))

on every position whose target is a real item. T² keeps the soft term's gradients on the same
scale as the hard term's when T changes (Hinton et al., 2015). The teacher's outputs on the
(fixed) training windows are computed once, before the first epoch, in one of two forms:

- full (the catalogue's softmax is exact, `toolkit.training.loop.use_sampled` is False, and the cache fits
  `TEACHER_CACHE_MAX_BYTES`): log-probabilities over every item, fp16, (W, T, N); KL over all N.
- top-K (large catalogues): the teacher's `top_k` best items and their log-probabilities per
  position, int32 ids + fp16, (W, T, K): memory O(windows x K), not O(windows x items). The
  student's distribution is taken over those K items plus the batch's sampled negatives (logQ
  corrected, those already among the K masked); the teacher's over its K items, renormalised. The
  hard term is the sampled softmax of toolkit/training/loop.py with the same negatives.

Whatever the teacher is (the ensemble, the knowledge-graph teacher, a user's module, a file of
precomputed scores), the student side gets its soft labels through one function, `soft_labels`:
a teacher that brings its own (`toolkit.teachers.scores.ScoresTeacher`: a top-K per position, with the
positions it covers) answers itself; any other module is run on the windows. Positions a teacher
does not cover keep the hard label only (α = 0 there). A top-K teacher on a small catalogue is
distilled against the student's full softmax (exact KL for a teacher supported on its K items).

The package, one concern a module: the settings (`config.DistillConfig`), the teacher's soft
labels on the training windows (`labels`: `soft_labels`, `SoftLabels`), the losses of both forms
(`losses`), the relational term (`relational`) and the entry that trains a student (`train.distill`).
Every name is importable from `toolkit.training.distill`, as before the split.
"""

from toolkit.training.distill.config import DistillConfig
from toolkit.training.distill.labels import (SCORE_CHUNK_ELEMENTS, TEACHER_CACHE_BATCH, TEACHER_CACHE_MAX_BYTES,
                                             SoftLabels, soft_labels, teacher_items, teacher_log_probs, teacher_top_k,
                                             top_inner_products)
from toolkit.training.distill.losses import (FullDistillation, TopKDistillation, distillation_loss,
                                             partial_distillation_loss, topk_distillation_loss)
from toolkit.training.distill.relational import RelationalTerm, item_embeddings, relational_inputs
from toolkit.training.distill.train import distill

__all__ = ["DistillConfig", "FullDistillation", "RelationalTerm", "SCORE_CHUNK_ELEMENTS", "SoftLabels",
           "TEACHER_CACHE_BATCH", "TEACHER_CACHE_MAX_BYTES", "TopKDistillation", "distill", "distillation_loss",
           "item_embeddings", "partial_distillation_loss", "relational_inputs", "soft_labels", "teacher_items",
           "teacher_log_probs", "teacher_top_k", "top_inner_products", "topk_distillation_loss"]
