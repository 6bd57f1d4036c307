"""Constrained decoding for the ``compact`` caption style: a token-level automaton over the grammar.

Why an automaton and not "generate, then check": a small model trained on synthetic data will
sometimes wander off the grammar, and the product promises that 100% of compact captions parse.
Masking every step to the tokens that can still lead to a legal caption makes that a property of
the decoder instead of a hope.

The automaton has two levels:

* **Phrase level** mirrors ``parse_compact`` exactly. Its state is the parser's slot index plus
  the items already emitted in a repeatable slot (bags, held, pose). A phrase is assigned to the
  *first* slot at or after the current one that lists it, as the parser does (``dress`` is an
  upper garment unless the upper slot was already filled), so what we decode is what the parser
  reads back. Repeatable slots take distinct items in listed order; ``unknown bag`` only alone.
  The placeholder ``top`` exists only so a following lower-body ``dress`` is not read as an upper
  garment, so it must be followed by such a phrase. The result: every caption is canonical,
  ``to_compact(parse_compact(caption)) == caption``.
* **Token level** is a trie over the vocabulary's tokenisation of the phrases legal in the
  current phrase state; a complete phrase may be followed by the separator (``,``) or ``<eos>``.

``allowed_values`` restricts the captions to those whose *parsed values* are all allowed,
including the values implied by omission (skipping the person slot means gender ``unknown``).
The describer passes the attribute heads' decisions here so that caption and structure agree.
Every step also knows the minimum number of tokens needed to finish, so a row never runs into a
dead end or past ``max_new_tokens`` with half a phrase.

The grammar tables are built once per vocabulary (cached) and each automaton lazily, state by
state, so a constraint for one image costs well under a millisecond after the first.
"""

from __future__ import annotations

import contextlib
import math
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

import torch
from torch import Tensor

from personvlm.schema import BY_NAME, UNKNOWN, PersonDescription, parse_compact, to_compact
from personvlm.schema.compact import UPPER_PLACEHOLDER, compact_slots
from personvlm.schema.description import normalise

SEPARATOR = ","
EOS_ID = 2  # fixed by the vocabulary contract: <pad> <bos> <eos> <unk> <compact> <natural> are 0..5
UNK_ID = 3
INF = math.inf


class PhraseTokenizer(Protocol):
    """What the constraint needs from ``personvlm.data.vocab.Vocab``."""

    def encode(self, text: str, style: str | None = None, add_special: bool = True) -> list[int]: ...

    def __len__(self) -> int: ...


# --- the grammar over one vocabulary -----------------------------------------------------------
@dataclass(frozen=True)
class _Slot:
    name: str
    phrases: tuple[str, ...]  # the phrases the vocabulary covers, in listed order
    values: Mapping[str, Mapping[str, Any]]  # phrase -> {attribute: value}
    repeatable: bool
    blank: Mapping[str, Any]  # the values an omitted slot stands for
    # attribute -> value -> phrases saying it: restricting a slot is a few set intersections
    by_value: Mapping[str, Mapping[Any, frozenset[str]]]
    position: Mapping[str, int]  # phrase -> index in ``phrases``; for repeatable slots also item -> index


class _Grammar:
    """The compact grammar tokenised by one vocabulary: slots, phrase token ids, separator id."""

    def __init__(self, vocab: PhraseTokenizer) -> None:
        self.vocab_size = len(vocab)
        sep = vocab.encode(SEPARATOR, add_special=False)
        if len(sep) != 1 or sep[0] == UNK_ID:
            raise ValueError(f"the vocabulary must encode {SEPARATOR!r} as one known token, got ids {sep}")
        self.separator = sep[0]
        blank = parse_compact("").values()
        self.slots: list[_Slot] = []
        self.tokens: dict[str, tuple[int, ...]] = {}  # only phrases the vocabulary covers (no <unk>)
        self.slots_of: dict[str, list[int]] = {}  # phrase -> indices of every slot that lists it
        for index, (name, table, repeatable) in enumerate(compact_slots()):
            for phrase in table:
                self.slots_of.setdefault(phrase, []).append(index)
                if phrase not in self.tokens:
                    ids = tuple(vocab.encode(phrase, add_special=False))
                    if ids and UNK_ID not in ids:
                        self.tokens[phrase] = ids
            phrases = tuple(p for p in table if p in self.tokens)
            by_value: dict[str, dict[Any, set[str]]] = {}
            for phrase in phrases:
                for attribute, value in table[phrase].items():
                    by_value.setdefault(attribute, {}).setdefault(value, set()).add(phrase)
            position = {p: i for i, p in enumerate(phrases)}
            if repeatable:
                position |= {table[p][name][0]: i for p, i in list(position.items()) if table[p][name] != UNKNOWN}
            attributes = {a for values in table.values() for a in values}
            self.slots.append(_Slot(
                name, phrases, table, repeatable, {a: blank[a] for a in attributes},
                {a: {v: frozenset(ps) for v, ps in vs.items()} for a, vs in by_value.items()}, position))
        self._automata = lru_cache(maxsize=1024)(self._automaton)

    def _automaton(self, allowed: frozenset[tuple[str, frozenset[Any]]] | None) -> _Automaton:
        return _Automaton(self, dict(allowed) if allowed is not None else None)

    def first_slot(self, phrase: str, start: int) -> int:
        """The slot the parser assigns ``phrase`` to when its slot index is ``start``."""
        return next(i for i in self.slots_of[phrase] if i >= start)


_GRAMMARS: dict[int, tuple[weakref.ref[Any], _Grammar]] = {}


def _grammar(vocab: PhraseTokenizer) -> _Grammar:
    """One grammar per live vocabulary object (tokenising ~1000 phrases once, not per call).

    Keyed by identity and dropped when the vocabulary is collected, so a new vocabulary that
    happens to reuse the address never gets a stale grammar.
    """
    key = id(vocab)
    hit = _GRAMMARS.get(key)
    if hit is not None and hit[0]() is vocab:
        return hit[1]
    grammar = _Grammar(vocab)
    with contextlib.suppress(TypeError):  # not weak-referenceable: correct, just rebuilt per constraint
        _GRAMMARS[key] = (weakref.ref(vocab, lambda _: _GRAMMARS.pop(key, None)), grammar)
    return grammar


# --- the phrase-level automaton for one set of allowed values -----------------------------------
# (parser slot index, items emitted in that repeatable slot, or the placeholder awaiting its phrase)
PhraseState = tuple[int, tuple[str, ...]]
_INITIAL: PhraseState = (0, ())


@dataclass(eq=False)
class _Node:
    """A trie node: the tokens that continue a legal phrase from here, or the phrase ending here."""

    children: dict[int, _Node] = field(default_factory=dict)
    dist: float = INF  # fewest tokens (including <eos>) to finish the caption from here
    phrase: str | None = None
    next_state: PhraseState | None = None  # the phrase state after ``phrase``
    choices: list[tuple[int, float]] | None = None  # (legal next token, fewest tokens to finish after it)
    ids: list[int] = field(default_factory=list)  # the legal next tokens
    max_rest: float = 0  # with more tokens left than this, the budget rules nothing out


class _Automaton:
    """Phrase states, their legal next phrases and distances to the end, for one ``allowed_values``.

    Everything is computed on first use and memoised: a constraint only pays for the states its
    rows actually visit.
    """

    def __init__(self, grammar: _Grammar, allowed: dict[str, frozenset[Any]] | None) -> None:
        self.g = grammar
        self.allowed = allowed or {}
        self._options: dict[PhraseState, list[tuple[str, PhraseState]]] = {}
        self._tries: dict[PhraseState, _Node] = {}
        self._first: dict[PhraseState, float] = {}
        self._accepts: dict[PhraseState, bool] = {}
        self._ok_phrases = [self._legal_phrases(slot) for slot in grammar.slots]
        # skippable_to[k]: the first slot at or after k whose omission is not allowed (len(slots) if none)
        self._skippable_to = [len(grammar.slots)] * (len(grammar.slots) + 1)
        for k in reversed(range(len(grammar.slots))):
            self._skippable_to[k] = self._skippable_to[k + 1] if self._values_ok(grammar.slots[k].blank) else k

    # values ------------------------------------------------------------------------------------
    def _values_ok(self, values: Mapping[str, Any]) -> bool:
        return all(v in self.allowed[a] for a, v in values.items() if a in self.allowed)

    def _legal_phrases(self, slot: _Slot) -> tuple[str, ...]:
        """The slot's phrases whose values are all allowed (repeatable slots: checked item by item)."""
        restricted = [a for a in slot.by_value if a in self.allowed] if not slot.repeatable else []
        if not restricted:
            return slot.phrases
        legal = frozenset.intersection(*(
            frozenset().union(*(slot.by_value[a].get(v, frozenset()) for v in self.allowed[a])) for a in restricted))
        return tuple(sorted(legal, key=slot.position.__getitem__))

    def _set_ok(self, slot: _Slot, items: tuple[str, ...], growing: bool) -> bool:
        """Whether ``items`` (in listed order) is an allowed set, or can grow by later items into one."""
        allowed = self.allowed.get(slot.name)
        if allowed is None:
            return True
        have = set(items)
        last = slot.position[items[-1]]
        for candidate in allowed:
            if candidate == UNKNOWN or not have <= set(candidate):
                continue
            rest = set(candidate) - have
            if not rest or growing and all(slot.position.get(x, -1) > last for x in rest):
                return True
        return False

    def _leave_ok(self, state: PhraseState, target: int) -> bool:
        """Whether moving from ``state`` to slot ``target`` leaves allowed values behind."""
        k, items = state
        if items:
            if not self.g.slots[k].repeatable:
                return False  # a placeholder waits for its phrase
            if not self._set_ok(self.g.slots[k], items, growing=False):
                return False
            k += 1
        return target <= self._skippable_to[k]

    # transitions --------------------------------------------------------------------------------
    def accepts(self, state: PhraseState) -> bool:
        """Whether the caption may end in ``state``."""
        if state not in self._accepts:
            self._accepts[state] = self._leave_ok(state, len(self.g.slots))
        return self._accepts[state]

    def options(self, state: PhraseState) -> list[tuple[str, PhraseState]]:
        """Every legal next phrase from ``state`` and the state after it (dead ends included)."""
        if state in self._options:
            return self._options[state]
        k, items = state
        out: list[tuple[str, PhraseState]] = []
        if items and not self.g.slots[k].repeatable:  # after the placeholder: only what it disambiguates
            out = [(p, (k + 1, ())) for p in self._ok_phrases[k] if p in self.g.slots[k - 1].values]
        else:
            for s in range(k, len(self.g.slots)):
                if s > k and not self._leave_ok(state, s):
                    break
                for phrase in self._ok_phrases[s]:
                    if self.g.first_slot(phrase, k) == s:
                        nxt = self._step(state, s, phrase)
                        if nxt is not None:
                            out.append((phrase, nxt))
        self._options[state] = out
        return out

    def _step(self, state: PhraseState, s: int, phrase: str) -> PhraseState | None:
        slot = self.g.slots[s]
        if phrase == UPPER_PLACEHOLDER:
            return (s + 1, (phrase,))
        if not slot.repeatable:
            return (s + 1, ())
        (value,) = slot.values[phrase].values()
        items = state[1] if s == state[0] else ()
        if value == UNKNOWN:
            ok = not items and UNKNOWN in self.allowed.get(slot.name, {UNKNOWN})
            return (s + 1, ()) if ok else None
        if items and slot.position[phrase] <= slot.position[items[-1]]:
            return None
        grown = (*items, value[0])
        return (s, grown) if self._set_ok(slot, grown, growing=True) else None

    # distances ----------------------------------------------------------------------------------
    def first_dist(self, state: PhraseState) -> float:
        """Fewest tokens to finish from ``state`` when a phrase must come next (after a separator)."""
        if state not in self._first:
            self._first[state] = min((len(self.g.tokens[p]) + self.end_dist(nxt) for p, nxt in self.options(state)),
                                     default=INF)
        return self._first[state]

    def end_dist(self, state: PhraseState) -> float:
        """Fewest tokens to finish right after a phrase that led to ``state``."""
        return 1 if self.accepts(state) else 1 + self.first_dist(state)

    def trie(self, state: PhraseState) -> _Node:
        """The token trie of the phrases that can follow in ``state`` and still finish."""
        if state in self._tries:
            return self._tries[state]
        root = _Node()
        for phrase, nxt in self.options(state):
            end = self.end_dist(nxt)
            if end == INF:
                continue
            ids = self.g.tokens[phrase]
            node = root
            for depth, token in enumerate(ids):
                node.dist = min(node.dist, len(ids) - depth + end)
                node = node.children.setdefault(token, _Node())
            if node.phrase is None:  # two phrases with one tokenisation: the parser's first wins
                node.phrase, node.next_state = phrase, nxt
                node.dist = min(node.dist, end)
        self._tries[state] = root
        return root


# --- the public constraint --------------------------------------------------------------------
@dataclass(frozen=True)
class ConstraintState:
    """Where one row is: its phrase state and its position in that state's token trie."""

    phrase_state: PhraseState
    node: _Node
    finished: bool = False


def _freeze_allowed(allowed_values: Mapping[str, Iterable[Any]]) -> frozenset[tuple[str, frozenset[Any]]]:
    frozen = []
    for name, values in allowed_values.items():
        if name not in BY_NAME:
            raise ValueError(f"allowed_values: unknown attribute {name!r}; expected one of {tuple(BY_NAME)}")
        if isinstance(values, str):
            raise ValueError(f"allowed_values[{name!r}]: expected a set of values, got the string {values!r}")
        frozen.append((name, frozenset(normalise(name, v) for v in values)))
    return frozenset(frozen)


def _chain(ids: list[int]) -> _Node:
    """A trie with the single path ``ids`` then ``<eos>``, its choices precomputed."""
    node = _Node(choices=[(EOS_ID, 0)], ids=[EOS_ID])
    for i in reversed(range(len(ids))):
        rest = len(ids) - i  # tokens still needed after ids[i]: the rest of ids, then <eos>
        node = _Node(children={ids[i]: node}, choices=[(ids[i], rest)], ids=[ids[i]], max_rest=rest)
    return node


class CompactConstraint:
    """Restricts decoding to compact captions that ``parse_compact`` reads back.

    ``allowed_values`` maps attribute names to the values the caption may express (multi-label
    attributes: the allowed *sets*, e.g. ``{("backpack",), ()}``, or ``"unknown"``); attributes
    not named are free. Phrases the vocabulary cannot spell (a word maps to ``<unk>``) are never
    generated. Raises ValueError when no caption satisfies the restriction.
    """

    def __init__(self, vocab: PhraseTokenizer, allowed_values: Mapping[str, Iterable[Any]] | None = None) -> None:
        grammar = _grammar(vocab)
        self._automaton = grammar._automata(None if allowed_values is None else _freeze_allowed(allowed_values))
        self.separator_id = grammar.separator
        self.vocab_size = grammar.vocab_size
        self._root = self._automaton.trie(_INITIAL)
        # An empty caption is legal only when nothing can be said at all.
        first = self._automaton.first_dist(_INITIAL)
        self._min_tokens = first if first < INF or not self._automaton.accepts(_INITIAL) else 1
        if self._min_tokens == INF:
            raise ValueError(f"no compact caption over this vocabulary satisfies allowed_values={allowed_values!r}")

    @classmethod
    def agreeing_with(cls, vocab: PhraseTokenizer, description: PersonDescription) -> CompactConstraint:
        """The constraint whose only legal caption parses to exactly ``description``'s values.

        Under exact values the grammar admits one caption, the canonical ``to_compact(description)``,
        so this pins it token by token: microseconds per image instead of an automaton per new
        description. If the vocabulary cannot spell it, the general automaton decides (and raises
        ValueError as no caption fits).
        """
        ids = vocab.encode(to_compact(description), add_special=False)
        if UNK_ID in ids:
            return cls(vocab, {name: {value} for name, value in description.values().items()})
        grammar = _grammar(vocab)
        pinned = cls.__new__(cls)
        pinned._automaton = grammar._automata(None)
        pinned.separator_id, pinned.vocab_size = grammar.separator, grammar.vocab_size
        pinned._root, pinned._min_tokens = _chain(ids), len(ids) + 1
        return pinned

    def start(self) -> ConstraintState:
        return ConstraintState(_INITIAL, self._root)

    def min_tokens(self) -> int:
        """The length (with ``<eos>``) of the shortest legal caption: ``max_new_tokens`` must allow it."""
        return int(self._min_tokens)

    def _choices(self, state: ConstraintState) -> list[tuple[int, float]]:
        """``(token, fewest tokens to finish after it)`` for each legal next token (cached per node)."""
        node = state.node
        if node.choices is not None:
            return node.choices
        out = [(token, child.dist) for token, child in node.children.items() if child.dist < INF]
        if node.phrase is not None:
            assert node.next_state is not None
            if self._automaton.accepts(node.next_state):
                out.append((EOS_ID, 0))
            rest = self._automaton.first_dist(node.next_state)
            if rest < INF:
                out.append((self.separator_id, rest))
        elif not node.children and self._automaton.accepts(state.phrase_state):
            out.append((EOS_ID, 0))  # only at the start, when no phrase fits the allowed values
        node.choices, node.ids = out, [t for t, _ in out]
        node.max_rest = max((rest for _, rest in out), default=0)
        return out

    def allowed_ids(self, state: ConstraintState, budget: int) -> list[int]:
        """The tokens allowed next, given ``budget`` tokens left (this one included); do not modify."""
        choices = self._choices(state)
        if state.node.max_rest < budget:
            return state.node.ids
        return [t for t, rest in choices if rest < budget]

    def allowed_mask(self, state: ConstraintState, budget: int) -> Tensor:
        """``allowed_ids`` as a bool mask ``[V]``, for callers stepping one row at a time."""
        mask = torch.zeros(self.vocab_size, dtype=torch.bool)
        mask[self.allowed_ids(state, budget)] = True
        return mask

    def advance(self, state: ConstraintState, token: int) -> ConstraintState:
        """The state after emitting ``token``; raises ValueError for a token the mask forbids."""
        node = state.node
        if token in node.children:
            return ConstraintState(state.phrase_state, node.children[token])
        if token == EOS_ID and any(t == EOS_ID for t, _ in self._choices(state)):
            return ConstraintState(state.phrase_state, node, finished=True)
        if token == self.separator_id and node.phrase is not None:
            assert node.next_state is not None
            return ConstraintState(node.next_state, self._automaton.trie(node.next_state))
        raise ValueError(f"token {token} is not allowed by the compact grammar here")
