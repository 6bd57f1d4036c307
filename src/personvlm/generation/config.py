"""GenerationConfig: how captions are decoded, validated up front so a bad setting fails at once."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GenerationConfig:
    """Decoding settings.

    ``num_beams > 1`` selects beam search, else ``do_sample`` chooses sampling over greedy.
    Beam hypotheses are ranked by ``sum log p / length ** length_penalty`` (length counts the
    generated tokens with ``<eos>``), so ``length_penalty > 0`` favours longer captions.
    ``early_stopping`` ends a beam search row once ``num_beams`` hypotheses are finished; otherwise
    it also waits until no running beam can still beat the worst finished one.
    ``repetition_penalty`` (> 1 discourages) divides positive / multiplies negative logits of
    tokens already generated; ``no_repeat_ngram_size`` forbids repeating any generated n-gram.
    Sampling row ``i`` draws from its own generator seeded ``seed + i``, so a row's caption does
    not depend on which other rows share the batch (``seed=None``: nondeterministic).
    ``suppress_tokens`` are never generated: by default the special tokens other than ``<eos>``
    (``<pad> <bos> <unk> <compact> <natural>``), so every caption is words of the vocabulary.
    """

    max_new_tokens: int = 64
    num_beams: int = 1
    length_penalty: float = 1.0
    early_stopping: bool = False
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0  # 0 = no top-k filtering
    top_p: float = 1.0  # 1.0 = no nucleus filtering
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    use_cache: bool = True  # False recomputes the whole prefix each step (the reference for tests)
    seed: int | None = None
    suppress_tokens: tuple[int, ...] = (0, 1, 3, 4, 5)

    def __post_init__(self) -> None:
        checks = (
            (self.max_new_tokens >= 1, "max_new_tokens", "an integer >= 1"),
            (self.num_beams >= 1, "num_beams", "an integer >= 1"),
            (not (self.do_sample and self.num_beams > 1), "do_sample",
             "False when num_beams > 1 (beam search is deterministic)"),
            (self.temperature > 0, "temperature", "> 0"),
            (self.top_k >= 0, "top_k", ">= 0 (0 disables it)"),
            (0 < self.top_p <= 1, "top_p", "in (0, 1]"),
            (self.repetition_penalty > 0, "repetition_penalty", "> 0 (1.0 disables it)"),
            (self.no_repeat_ngram_size >= 0, "no_repeat_ngram_size", ">= 0 (0 disables it)"),
            (all(t >= 0 for t in self.suppress_tokens), "suppress_tokens", "token ids >= 0"),
        )
        for ok, name, expected in checks:
            if not ok:
                raise ValueError(f"GenerationConfig.{name}: expected {expected}, got {getattr(self, name)!r}")
