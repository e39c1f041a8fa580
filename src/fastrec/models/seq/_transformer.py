"""Pre-LN Transformer encoder over left-padded item sequences, shared by SASRec (causal) and BERT4Rec (bidirectional).

Attention runs through ``torch.nn.functional.scaled_dot_product_attention`` with a boolean mask that is exact for
padding: a real position attends only to real positions (and, when causal, only to earlier ones and itself), so the
outputs at real positions do not depend on how much padding a batch carries. A padding position attends only to
itself, which keeps every softmax row finite; its output is never read.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["TransformerEncoder", "attention_mask", "positions_from_end"]


def attention_mask(valid: Tensor, causal: bool) -> Tensor:
    """Boolean mask [B, 1, L, L], True where query i may attend to key j: key j is a real item (and j <= i when
    causal); every position may attend to itself."""
    length = valid.shape[1]
    eye = torch.eye(length, dtype=torch.bool, device=valid.device)
    mask = valid[:, None, None, :]
    if causal:
        mask = mask & torch.ones(length, length, dtype=torch.bool, device=valid.device).tril()
    return mask | eye


def positions_from_end(length: int, device: torch.device) -> Tensor:
    """Position ids of a left-padded batch of width ``length``: 0 for the last column (the most recent item), 1 for
    the one before, ...; the same for any width, so trimming padding columns never changes a result."""
    return torch.arange(length - 1, -1, -1, device=device)


class _Block(nn.Module):
    """x + Dropout(MHA(LN(x))), then x + Dropout(FFN(LN(x)))."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float, attn_dropout: float, activation: str):
        super().__init__()
        self.heads = heads
        self.attn_dropout = attn_dropout
        self.ln1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim)
        self.ff1 = nn.Linear(dim, ffn_dim)
        self.ff2 = nn.Linear(ffn_dim, dim)
        self.act = nn.GELU() if activation == "gelu" else nn.ReLU()
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.attn_dropout if self.training else 0.0)
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(b, n, d)))
        return x + self.drop(self.ff2(self.drop(self.act(self.ff1(self.ln2(x))))))


class TransformerEncoder(nn.Module):
    """Stacked pre-LN self-attention blocks with a final LayerNorm.

    Args:
        dim: model width (divisible by ``heads``).
        heads: attention heads.
        layers: number of blocks.
        ffn_dim: hidden width of the position-wise feed-forward layer.
        dropout: dropout on the residual branches and inside the feed-forward layer.
        attn_dropout: dropout on the attention weights.
        activation: ``"relu"`` (SASRec) or ``"gelu"`` (BERT4Rec).
        causal: each position sees only itself and earlier positions (SASRec) or the whole sequence (BERT4Rec).
    """

    def __init__(self, dim: int, heads: int, layers: int, ffn_dim: int, dropout: float, attn_dropout: float,
                 activation: str, causal: bool) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} must be divisible by heads={heads}")
        if activation not in ("relu", "gelu"):
            raise ValueError(f"activation must be 'relu' or 'gelu', got {activation!r}")
        self.causal = causal
        self.blocks = nn.ModuleList(_Block(dim, heads, ffn_dim, dropout, attn_dropout, activation)
                                    for _ in range(layers))
        self.ln = nn.LayerNorm(dim)

    def forward(self, x: Tensor, valid: Tensor) -> Tensor:
        """x: [B, L, dim] input embeddings; valid: bool [B, L] (False at padding). Returns [B, L, dim]."""
        mask = attention_mask(valid, self.causal)
        for block in self.blocks:
            x = block(x, mask)
        return self.ln(x)
