"""Word-level caption vocabulary.

Captions use a small, controlled vocabulary (schema words plus MSP60K's phrasing), so whole words
beat sub-word pieces here: fewer decoding steps, and constrained decoding can map every schema
phrase to exact token sequences. Lower-cased; punctuation is its own token ("visible)." ->
``visible ) .``) while hyphenated words ("long-sleeved", "t-shirt") and apostrophes ("person's")
stay one token, because they are one schema word.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
STYLE_TOKENS = {"compact": "<compact>", "natural": "<natural>"}
SPECIALS: tuple[str, ...] = (PAD, BOS, EOS, UNK, STYLE_TOKENS["compact"], STYLE_TOKENS["natural"])

_TOKEN = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*|[^\sa-z0-9]")
_NO_SPACE_BEFORE = set(",.;:!?)]}%")
_NO_SPACE_AFTER = set("([{")


class VocabError(ValueError):
    """A vocabulary file that cannot be used; the message names the file and what was expected."""


def tokenize(text: str) -> list[str]:
    """Lower-case word/punctuation tokens: ``"A red T-shirt (visible)."`` -> a red t-shirt ( visible ) ."""
    return _TOKEN.findall(text.lower())


def detokenize(tokens: Iterable[str]) -> str:
    """Join tokens with English spacing (no space before ``,.)``, none after ``(``)."""
    out = ""
    for tok in tokens:
        if out and not (tok in _NO_SPACE_BEFORE or out[-1] in _NO_SPACE_AFTER):
            out += " "
        out += tok
    return out


class Vocab:
    """Token <-> id table; ids 0..5 are ``<pad> <bos> <eos> <unk> <compact> <natural>``."""

    pad_id, bos_id, eos_id, unk_id = 0, 1, 2, 3

    def __init__(self, tokens: Iterable[str]) -> None:
        tokens = list(tokens)
        if tuple(tokens[: len(SPECIALS)]) != SPECIALS:
            raise VocabError(f"a vocabulary must start with the special tokens {SPECIALS}")
        if len(set(tokens)) != len(tokens):
            dupes = sorted(t for t, n in Counter(tokens).items() if n > 1)
            raise VocabError(f"duplicate tokens in vocabulary: {dupes[:10]}")
        self.itos: list[str] = tokens
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(tokens)}

    @classmethod
    def build(cls, texts: Iterable[str], min_freq: int = 1, max_size: int | None = None) -> Vocab:
        """Most frequent words first (ties alphabetical, so builds are deterministic).

        ``max_size`` counts the special tokens too, so it is the embedding table's size.
        """
        counts = Counter(tok for text in texts for tok in tokenize(text))
        words = sorted((w for w, n in counts.items() if n >= min_freq and w not in SPECIALS),
                       key=lambda w: (-counts[w], w))
        if max_size is not None:
            words = words[: max(0, max_size - len(SPECIALS))]
        return cls([*SPECIALS, *words])

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def style_id(self, style: str) -> int:
        if style not in STYLE_TOKENS:
            raise ValueError(f"unknown caption style {style!r}; expected one of {tuple(STYLE_TOKENS)}")
        return self.stoi[STYLE_TOKENS[style]]

    def tokenize(self, text: str) -> list[str]:
        return tokenize(text)

    def encode(self, text: str, style: str | None = None, add_special: bool = True) -> list[int]:
        """``<bos> [<style>] words... <eos>`` (just the words when ``add_special`` is false)."""
        ids = [self.stoi.get(tok, self.unk_id) for tok in tokenize(text)]
        if not add_special:
            return ids
        head = [self.bos_id] + ([self.style_id(style)] if style else [])
        return [*head, *ids, self.eos_id]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``: stops at ``<eos>``, drops ``<pad>/<bos>``/style tokens, keeps ``<unk>``."""
        words: list[str] = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            tok = self.itos[i] if 0 <= i < len(self.itos) else UNK
            if tok in SPECIALS and tok != UNK:
                continue
            words.append(tok)
        return detokenize(words)

    def oov_rate(self, texts: Iterable[str]) -> float:
        """Share of word tokens in ``texts`` that are not in the vocabulary (0.0 for no tokens)."""
        total = oov = 0
        for text in texts:
            for tok in tokenize(text):
                total += 1
                oov += tok not in self.stoi
        return oov / total if total else 0.0

    # --- files --------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"tokens": self.itos}, ensure_ascii=False, indent=0) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: vocabulary file not found")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise VocabError(f"{path}: not valid JSON ({exc})") from None
        tokens = data.get("tokens") if isinstance(data, dict) else None
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise VocabError(f'{path}: expected {{"tokens": [str, ...]}}')
        try:
            return cls(tokens)
        except VocabError as exc:
            raise VocabError(f"{path}: {exc}") from None
