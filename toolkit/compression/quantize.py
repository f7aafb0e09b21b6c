"""Weight quantization that lives inside the model: int8/int4 item tables stored once, int8 linears.

The trained model ties its item table (the input lookup and the output scores share one weight).
`QuantizedItemTable` keeps that tie after quantization: one integer table (int8, or int4 packed two
per byte) plus one fp16 scale per row, used by both the lookup (gather the rows, then dequantize
them) and the scores (an fp32 matmul against the dequantized table, scaled per row). Everything is
plain tensor ops, so ExecuTorch and ONNX Runtime both run it and both files hold the table once.

Per-row symmetric scales factor out of the score matmul: scores[n] = (h · q[n]) · s[n].

QAT: `FakeQuantItemTable` / `FakeQuantLinear` train through the rounding with a straight-through
estimator; `convert_` turns them into the integer modules.

Shapes: N items (rows, padding row 0 included), D (or r for a factorized table) row width.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from toolkit.core.errors import ToolkitError
from toolkit.compression.prune import base_table, set_base_table
from toolkit.models.sasrec import ItemTable

SCALE_DTYPE = torch.float16  # per-row scales: fp16 halves their bytes; relative error 1e-3 << int4 step
VALID_TABLE_BITS = (4, 8, 32)
VALID_LINEAR_BITS = (8, 32)


@dataclass
class QuantConfig:
    """Weight-only quantization. 32 means "leave in fp32".

    table_bits: the item table (stored once, per-row scales): 8 or 4.
    linear_bits: every linear layer in the blocks (per-output-channel scales) and the position
        table (per-row scales): 8.
    qat: train through fake quantization (straight-through) before converting; the recipe in
        `toolkit.compression.compress` fine-tunes with distillation when this is set.
    """

    table_bits: int = 8
    linear_bits: int = 8
    qat: bool = False

    def __post_init__(self) -> None:
        if self.table_bits not in VALID_TABLE_BITS:
            raise ToolkitError(f"QuantConfig.table_bits: {self.table_bits} not valid; valid: {VALID_TABLE_BITS}")
        if self.linear_bits not in VALID_LINEAR_BITS:
            raise ToolkitError(f"QuantConfig.linear_bits: {self.linear_bits} not valid; valid: {VALID_LINEAR_BITS}")

    def to_dict(self) -> dict:
        return asdict(self)


# --- pure tensor functions -------------------------------------------------------------------

def qrange(bits: int) -> tuple[int, int]:
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def row_scales(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Symmetric per-row scales (R, 1) for w (R, C); all-zero rows get scale 1 (they stay zero)."""
    amax = w.detach().abs().amax(dim=1, keepdim=True)
    scale = amax / qrange(bits)[1]
    scale = torch.where(amax > 0, scale, torch.ones_like(scale))
    return scale.to(SCALE_DTYPE).to(w.dtype)  # the scale as stored, so q is computed against it


def quantize_rows(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """w (R, C) float -> (q (R, C) int8 in [qmin, qmax], scale (R, 1) fp16)."""
    scale = row_scales(w, bits)
    lo, hi = qrange(bits)
    q = torch.clamp(torch.round(w / scale), lo, hi).to(torch.int8)
    return q, scale.to(SCALE_DTYPE)


def fake_quantize_rows(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Quantize-dequantize with a straight-through gradient (QAT): same shape as w."""
    scale = row_scales(w, bits)
    lo, hi = qrange(bits)
    wq = torch.clamp(torch.round(w / scale), lo, hi) * scale
    return w + (wq - w).detach()


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """q (R, C) int8 in [-8, 7], C even -> (R, C/2) uint8: column 2j in the low nibble, 2j+1 high."""
    assert q.shape[1] % 2 == 0, "int4 packing needs an even row width"
    u = (q.to(torch.int16) + 8).to(torch.uint8)
    return u[:, 0::2] | (u[:, 1::2] << 4)


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """(…, C/2) uint8 -> (…, C) float32 in [-8, 7]. One uint8 -> fp32 cast, then floor, multiply,
    subtract and concatenate on floats: ops every runtime has (no bit shifts) and that XNNPACK
    delegates, where an int32 cast and integer division ran in ExecuTorch's portable kernels (2.3x
    slower at 10^6 items, bench/serving_scale.py). Exact: every value is an integer below 2^8."""
    p = packed.to(torch.float32)
    high = torch.floor(p * (1.0 / 16))
    low = p - high * 16
    both = torch.stack([low, high], dim=-1)  # (…, C/2, 2)
    return both.reshape(*packed.shape[:-1], packed.shape[-1] * 2) - 8


# --- modules ---------------------------------------------------------------------------------

class QuantizedItemTable(nn.Module):
    """The tied item table as integers, stored once: `lookup`, `weight` and `scores` like ItemTable.

    Buffers: `qweight` int8 (N, W) or, for int4, uint8 (N, W/2); `scale` fp16 (N, 1). W is D, or the
    rank r of a factorized table, whose fp32 `project` (r -> D) stays as it is (r·D is small).
    """

    def __init__(self, qweight: torch.Tensor, scale: torch.Tensor, bits: int, project: nn.Linear | None = None):
        super().__init__()
        self.bits = bits
        self.register_buffer("qweight", qweight)
        self.register_buffer("scale", scale)
        self.project = project
        self.rank = project.in_features if project is not None else 0
        self.embedding = None  # no float table any more (ServingModel checks for one)

    @property
    def num_rows(self) -> int:
        return self.qweight.shape[0]

    def permute_(self, order: torch.Tensor) -> None:
        """Relabel the items in place: new row i is old row order[i] (rows and their scales)."""
        self.qweight, self.scale = self.qweight[order], self.scale[order]

    @classmethod
    def from_table(cls, table: nn.Module, bits: int) -> QuantizedItemTable:
        w = table.embedding.weight.detach().float()
        q, scale = quantize_rows(w, bits)
        return cls(pack_int4(q) if bits == 4 else q, scale, bits, table.project)

    def _rows(self, q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        values = unpack_int4(q) if self.bits == 4 else q.to(torch.float32)
        return values * scale.to(torch.float32)

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        # ids (…) -> (…, D): gather the integer rows first, dequantize only those
        x = self._rows(self.qweight[ids], self.scale[ids])
        return self.project(x) if self.project is not None else x

    def weight(self) -> torch.Tensor:
        w = self._rows(self.qweight, self.scale)  # (N, W)
        return self.project(w) if self.project is not None else w

    def scores(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (…, D) -> (…, N); the per-row scale is applied after the integer-valued matmul."""
        if self.project is not None:
            hidden = hidden @ self.project.weight  # (…, r)
        values = unpack_int4(self.qweight) if self.bits == 4 else self.qweight.to(torch.float32)  # (N, W)
        return F.linear(hidden, values) * self.scale.to(torch.float32).reshape(-1)


class FakeQuantItemTable(nn.Module):
    """QAT stand-in for an ItemTable: trains the float table through per-row fake quantization."""

    def __init__(self, table: ItemTable, bits: int):
        super().__init__()
        self.bits = bits
        self.embedding = table.embedding
        self.project = table.project
        self.rank = table.rank

    def _table(self) -> torch.Tensor:
        return fake_quantize_rows(self.embedding.weight, self.bits)

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        x = F.embedding(ids, self._table())
        return self.project(x) if self.project is not None else x

    def weight(self) -> torch.Tensor:
        w = self._table()
        return self.project(w) if self.project is not None else w

    def scores(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.project is not None:
            hidden = hidden @ self.project.weight
        return F.linear(hidden, self._table())


class QuantizedLinear(nn.Module):
    """Weight-only int8 linear, per-output-channel scale: y = (x @ q^T) * s + b."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        q, scale = quantize_rows(linear.weight.detach().float(), 8)  # rows = output channels
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("qweight", q)  # (out, in) int8
        self.register_buffer("scale", scale.reshape(-1))  # (out,) fp16
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    @property
    def weight(self) -> torch.Tensor:  # dequantized (out, in), for code that reads .weight
        return self.qweight.to(torch.float32) * self.scale.to(torch.float32)[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x, self.qweight.to(torch.float32)) * self.scale.to(torch.float32)
        return y + self.bias if self.bias is not None else y


class QuantizedPositions(nn.Module):
    """Int8 position table, per-row scales; `.weight` (T, D) dequantizes like nn.Embedding's."""

    def __init__(self, positions: nn.Embedding):
        super().__init__()
        q, scale = quantize_rows(positions.weight.detach().float(), 8)
        self.register_buffer("qweight", q)  # (T, D) int8
        self.register_buffer("scale", scale)  # (T, 1) fp16

    @property
    def weight(self) -> torch.Tensor:
        return self.qweight.to(torch.float32) * self.scale.to(torch.float32)


class FakeQuantLinear(nn.Linear):
    """QAT stand-in for nn.Linear: int8 per-channel fake-quantized weight (straight-through)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, fake_quantize_rows(self.weight, 8), self.bias)


# --- the technique ---------------------------------------------------------------------------

def _block_linears(model: nn.Module):
    """(parent, attribute name, module) for every nn.Linear inside the transformer blocks."""
    for block in model.blocks:
        for parent in list(block.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.Linear):
                    yield parent, name, child


def prepare_qat_(model: nn.Module, cfg: QuantConfig) -> nn.Module:
    """Swap in fake-quantized modules (in place) so fine-tuning sees the rounding."""
    if cfg.table_bits < 32:
        set_base_table(model, FakeQuantItemTable(base_table(model), cfg.table_bits))
    if cfg.linear_bits < 32:
        for parent, name, linear in _block_linears(model):
            if type(linear) is nn.Linear:
                fq = FakeQuantLinear(linear.in_features, linear.out_features, bias=linear.bias is not None)
                fq.load_state_dict(linear.state_dict())
                setattr(parent, name, fq)
    return model


def quantize_(model: nn.Module, cfg: QuantConfig) -> nn.Module:
    """Post-training (or post-QAT) weight quantization, in place: integer table stored once, int8 linears.

    Low-rank linears (two nn.Linear) are quantized factor by factor. LayerNorms and the factorized
    table's small r×D projection stay fp32.
    """
    model.eval()
    if cfg.table_bits < 32:
        table = base_table(model)
        if cfg.table_bits == 4 and table.embedding.weight.shape[1] % 2:
            raise ToolkitError(f"QuantConfig.table_bits=4 needs an even table width, got {table.embedding.weight.shape[1]}")
        set_base_table(model, QuantizedItemTable.from_table(table, cfg.table_bits))
    if cfg.linear_bits < 32:
        for parent, name, linear in _block_linears(model):
            setattr(parent, name, QuantizedLinear(linear))
        if isinstance(model.positions, nn.Embedding):
            model.positions = QuantizedPositions(model.positions)
    return model
