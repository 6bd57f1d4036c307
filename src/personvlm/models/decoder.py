"""The caption decoder: a pre-LayerNorm transformer with causal self-attention and cross-attention
to the visual tokens, tied input/output embeddings, and a KV cache.

One code path serves training (whole sequence, empty cache) and generation (one new token per
step on a filled cache): attention always reads "past keys + new keys", so cached and uncached
decoding compute the same numbers and cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class LayerCache:
    """Keys/values of one decoder layer: self-attention grows per token; cross-attention is
    computed once from the visual tokens and reused for every later step."""

    self_k: Tensor | None = None
    self_v: Tensor | None = None
    cross_k: Tensor | None = None
    cross_v: Tensor | None = None


@dataclass
class KVCache:
    """Per-layer attention state for incremental decoding; tensors are ``[B, heads, T, head_dim]``."""

    layers: list[LayerCache] = field(default_factory=list)

    @classmethod
    def empty(cls, n_layers: int) -> KVCache:
        return cls([LayerCache() for _ in range(n_layers)])

    @property
    def length(self) -> int:
        """Number of tokens already decoded (the position of the next token)."""
        first = self.layers[0].self_k if self.layers else None
        return 0 if first is None else first.shape[2]

    def reorder(self, index: Tensor) -> KVCache:
        """Select/reorder batch rows in place (beam search keeps the surviving beams); returns self."""
        for layer in self.layers:
            for name in ("self_k", "self_v", "cross_k", "cross_v"):
                t = getattr(layer, name)
                if t is not None:
                    setattr(layer, name, t.index_select(0, index))
        return self


class Attention(nn.Module):
    """Multi-head attention through ``F.scaled_dot_product_attention`` (fused kernels on CPU and GPU)."""

    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, width)
        self.dropout = dropout

    def _split(self, x: Tensor) -> Tensor:
        b, t, d = x.shape
        return x.view(b, t, self.heads, d // self.heads).transpose(1, 2)

    def keys_values(self, x: Tensor) -> tuple[Tensor, Tensor]:
        k, v = self.kv(x).chunk(2, dim=-1)
        return self._split(k), self._split(v)

    def attend(self, x: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, causal: bool = False) -> Tensor:
        q = self._split(self.q(x))
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=causal, dropout_p=self.dropout if self.training else 0.0
        )
        b, h, t, hd = y.shape
        return self.out(y.transpose(1, 2).reshape(b, t, h * hd))


def _causal_mask(new: int, past: int, device: torch.device) -> Tensor | None:
    """Boolean mask letting new token i see the ``past`` cached tokens and new tokens <= i.

    ``None`` for a single new token (it may see everything cached).
    """
    if new == 1:
        return None
    rows = torch.arange(new, device=device).unsqueeze(1) + past
    cols = torch.arange(past + new, device=device).unsqueeze(0)
    return cols <= rows


class DecoderLayer(nn.Module):
    """Pre-LN block: x += SelfAttn(LN x); x += CrossAttn(LN x, visual); x += MLP(LN x).

    ``causal=False`` lets every position see every other one: the attribute heads' query blocks
    (``heads.AttributeHeads``), whose queries have no order, are this block without the mask.
    """

    def __init__(self, width: int, heads: int, mlp_ratio: int, dropout: float, causal: bool = True) -> None:
        super().__init__()
        self.causal = causal
        self.ln_self = nn.LayerNorm(width)
        self.self_attn = Attention(width, heads, dropout)
        self.ln_cross = nn.LayerNorm(width)
        self.cross_attn = Attention(width, heads, dropout)
        self.ln_mlp = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, mlp_ratio * width), nn.GELU(), nn.Linear(mlp_ratio * width, width), nn.Dropout(dropout)
        )

    def forward(self, x: Tensor, visual: Tensor, cache: LayerCache) -> Tensor:
        h = self.ln_self(x)
        k, v = self.self_attn.keys_values(h)
        past = 0
        if cache.self_k is not None:
            past = cache.self_k.shape[2]
            k = torch.cat([cache.self_k, k], dim=2)
            v = torch.cat([cache.self_v, v], dim=2)
        cache.self_k, cache.self_v = k, v
        new = x.shape[1]
        if not self.causal:
            x = x + self.self_attn.attend(h, k, v)
        elif past == 0 and new > 1:
            x = x + self.self_attn.attend(h, k, v, causal=True)
        else:
            x = x + self.self_attn.attend(h, k, v, mask=_causal_mask(new, past, x.device))

        if cache.cross_k is None:
            cache.cross_k, cache.cross_v = self.cross_attn.keys_values(visual)
        x = x + self.cross_attn.attend(self.ln_cross(x), cache.cross_k, cache.cross_v)
        return x + self.mlp(self.ln_mlp(x))


class CaptionDecoder(nn.Module):
    """Token + learned position embeddings, N decoder layers, final LN, output tied to the embedding."""

    def __init__(self, vocab_size: int, width: int, layers: int, heads: int, mlp_ratio: int,
                 max_len: int, dropout: float) -> None:
        super().__init__()
        self.max_len = max_len
        self.tok = nn.Embedding(vocab_size, width)
        self.pos = nn.Embedding(max_len, width)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(DecoderLayer(width, heads, mlp_ratio, dropout) for _ in range(layers))
        self.ln_f = nn.LayerNorm(width)
        nn.init.normal_(self.tok.weight, std=0.02)
        nn.init.normal_(self.pos.weight, std=0.02)

    def forward(self, input_ids: Tensor, visual: Tensor, cache: KVCache | None = None) -> tuple[Tensor, KVCache]:
        """Logits ``[B, T, V]`` for ``input_ids`` (the tokens after those already in ``cache``)."""
        if cache is None:
            cache = KVCache.empty(len(self.blocks))
        past, new = cache.length, input_ids.shape[1]
        if past + new > self.max_len:
            raise ValueError(f"sequence of {past + new} tokens exceeds the decoder's max_len {self.max_len}")
        pos = torch.arange(past, past + new, device=input_ids.device)
        x = self.drop(self.tok(input_ids) + self.pos(pos))
        for block, layer_cache in zip(self.blocks, cache.layers, strict=True):
            x = block(x, visual, layer_cache)
        logits = F.linear(self.ln_f(x), self.tok.weight)  # tied embeddings
        return logits, cache
