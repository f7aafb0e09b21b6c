"""The serving graph: what an app calls. This module *is* the artifact contract.

Input  `history` int64 (1, L): item indices in time order, left-padded with 0.
Output `scores` float32 (1, K) and `items` int64 (1, K), best first; padding and the items in
`history` never appear (with `allow_repeats`, a build's `--repeats allow`, history items may: only
padding is masked). The graph computes only the last position's state, then the scores.

The trained model ties its item table (input lookup and output scores share one weight). For
int8 the two uses must be separate tensors: the lookup is a gather (quantized weight-only by
torchao / ORT's Gather quantization) and the scores are a linear layer (quantized per channel by
the XNNPACK quantizer / ORT's MatMul quantization). `split_table=True` builds that graph; fp32
keeps the table tied (one tensor; ONNX stores it once, XNNPACK adds its packed copy). A table
compressed inside the model (int4 rows, or product-quantization codes from toolkit.compression.pq)
has no float embedding and is used as it is, stored once; a large int8 table is looked up as it is
and scored by the runtime's int8 matmul (`int8_scores`).

A user's own student (`--student MODULE:FACTORY`, toolkit.models.user_model.UserModel) has no item
table: its scores are `module(history)[:, -1, :]` (the generic path, `generic`), masked and ranked
the same way; int8 quantizes its linear layers at export (and its embeddings weight-only in the .pte).

Large catalogues: `export.two_stage.TwoStageServing` keeps this contract while scoring only a few
clusters' members instead of every item.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from export import INT8_SCORES_MIN_ITEMS
from toolkit.models.sasrec import Ensemble, SASRec
from toolkit.models.user_model import UserModel, is_user_model

HISTORY_NAME = "history"
OUTPUT_NAMES = ("scores", "items")


class ServingModel(nn.Module):
    def __init__(self, model: SASRec | Ensemble | UserModel, top_k: int, split_table: bool = False, allow_repeats: bool = False):
        super().__init__()
        self.model = copy.deepcopy(model).eval()
        self.top_k = top_k
        self.allow_repeats = allow_repeats
        self.split_table = False
        self.output = None
        self.generic = is_user_model(self.model)  # a user's module: scores = module(history)[:, -1, :]
        if self.generic:  # padding_idx only shapes gradients: a plain lookup is what ExecuTorch fuses to int8
            for m in self.model.modules():
                if isinstance(m, nn.Embedding):
                    m.padding_idx = None
        table = getattr(self.model, "items", None)
        if table is None:  # an ensemble (fp32 only) or a user's module, served through its score_last
            return
        # a table already quantized inside the model (toolkit.compression) is stored once as integers
        # and has no float embedding: both uses read those integers, there is nothing to split
        stored_once = getattr(table, "embedding", None) is None
        self.split_table = split_table and not stored_once
        # a large int8 table stored once scores through each runtime's int8 matmul (XNNPACK's
        # dynamically quantized linear, ORT's MatMulInteger): its rows, dequantized, become `output`,
        # which the exporter quantizes back to the same int8 rows (per-row scales). The lookup keeps
        # reading the model's int8 rows, so the file holds the table twice, as int8. Unpacking the
        # table on every request instead cost ExecuTorch 60 ns an item (3 ms at 50,000 items) outside
        # XNNPACK; below INT8_SCORES_MIN_ITEMS that is cheaper than the copy.
        self.int8_scores = (stored_once and getattr(table, "bits", 0) == 8
                            and table.qweight.shape[0] >= INT8_SCORES_MIN_ITEMS)
        if self.int8_scores:
            rows = table.qweight.to(torch.float32) * table.scale.to(torch.float32)  # (N, width)
            self.output = nn.Linear(rows.shape[1], rows.shape[0], bias=False)
            with torch.no_grad():
                self.output.weight.copy_(rows)
        if not stored_once:
            # padding_idx only shapes gradients; without it the lookup is a plain embedding(weight,
            # ids), the pattern ExecuTorch fuses into its int8 embedding kernel
            table.embedding.padding_idx = None
        if self.split_table:
            width = table.rank or model.cfg.dim
            self.output = nn.Linear(width, model.cfg.num_items, bias=False)
            with torch.no_grad():
                self.output.weight.copy_(table.embedding.weight)  # (N, width): a copy the quantizer owns

    def forward(self, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        table = getattr(self.model, "items", None)
        if table is None:
            return self._rank(self.model.score_last(history), history)
        # reshape, not [:, 0, :]: a view XNNPACK keeps inside its partition (select_copy is not)
        hidden = self.model.encode(history, last_only=True).reshape(history.shape[0], -1)  # (1, D)
        if self.output is None:
            scores = table.scores(hidden)  # (1, N)
        elif table.project is not None:
            scores = self.output(hidden @ table.project.weight)  # (1, r) -> (1, N)
        else:
            scores = self.output(hidden)  # (1, N)
        return self._rank(scores, history)

    def _rank(self, scores: torch.Tensor, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # index 0 is padding, never an answer (even when history is full): it is masked with the
        # history items in one scatter (a masked_fill over all N items costs more than the scatter;
        # F.pad, not torch.cat: the XNNPACK quantizer annotates cat and would observe int64 ids)
        # with repeats allowed only the padding index is masked: a (1, 1) column of zeros
        if self.allow_repeats:
            masked = torch.zeros_like(history[:, :1])  # (1, 1)
        else:
            masked = torch.nn.functional.pad(history, (1, 0), value=0)  # (1, L + 1)
        scores = scores.scatter(1, masked, float("-inf"))
        values, indices = torch.topk(scores, self.top_k, dim=1)
        return values, indices


def example_input(max_history: int) -> torch.Tensor:
    """A real-looking input for tracing: one history of distinct items, shape (1, L)."""
    return torch.arange(1, max_history + 1, dtype=torch.int64).unsqueeze(0)
