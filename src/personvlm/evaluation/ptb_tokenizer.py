"""The COCO caption toolkit's tokenisation, in Python: Stanford PTBTokenizer (CoreNLP 3.4.1,
``-preserveLines -lowerCase``) followed by pycocoevalcap's punctuation filter.

Why reimplement it: BLEU/ROUGE-L/CIDEr-D numbers are only comparable with published ones when
the words are cut exactly as the toolkit cuts them ("man's" -> "man 's", "(black)" -> "-lrb-
black -rrb-", "don't" -> "do n't"), and shipping a Java jar and a JVM to compute a metric is
not acceptable. Only the token *boundaries* and the tokens that survive the filter matter,
because every token in ``PUNCTUATIONS`` is dropped afterwards; so the sentence-final period
games of the Java lexer reduce to "is this period part of an abbreviation or not".

Scope, checked against the jar: every one of the 3000 MSP60K validation captions (English with
some Chinese), the project's own captions, and the caption fixtures tokenise identically. Exotic
input the jar treats specially (SGML tags, URLs, single letters before sentence-initial words)
may differ.
"""

from __future__ import annotations

import re

# pycocoevalcap.tokenizer.ptbtokenizer.PUNCTUATIONS, verbatim. The upper-case bracket names never
# match the lower-cased output, so "-lrb-" etc. survive: that quirk is part of the reference.
PUNCTUATIONS = frozenset({"''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-",
                          ".", "?", "!", ",", ":", "-", "--", "...", ";"})

_SPACE = re.compile(r"[\s\u00a0\u2000-\u200a\u202f\u205f\u3000\ufeff]+")
_W = r"[^\W_]"
# A word: word characters joined by hyphens, slashes, periods, ampersands or @, and digit groups
# joined by commas or colons (1,000  5:30), never ending in a joiner.
_WORD = re.compile(rf"{_W}+(?:(?:[-/.&@]|(?<=\d)[,:](?=\d)){_W}+)*")
_SIGNED_NUMBER = re.compile(r"-\d+(?:[.,]\d+)*")
_CONTRACTION = re.compile(r"['\u2019](s|re|ve|ll|d|m)(?!\w)", re.IGNORECASE)
_NT = re.compile(r"['\u2019]t(?!\w)", re.IGNORECASE)
_O_APOSTROPHE = re.compile(rf"['\u2019]{_W}{{2,}}")
_APOSTROPHE_YEAR = re.compile(r"['\u2019]\d{2,}s?(?!\w)")
_ACRONYM = re.compile(r"[A-Za-z](?:\.[A-Za-z])*")
_BEFORE_THE = re.compile(r"\s+The\b")
_SPLIT_WORDS = {"cannot": 3, "gonna": 3, "gotta": 3, "wanna": 3, "lemme": 3, "gimme": 3}

# Abbreviations that keep their period (PTBLexer's ABBREV1/ABBREV2 classes, lower-cased), checked
# against the jar one by one; the second set only when written with a capital ("Mass.", not "mass.").
_ABBREVIATIONS = frozenset({
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "mon", "tue", "tues",
    "wed", "thu", "thurs", "fri", "ala", "ariz", "calif", "colo", "conn", "ct", "dak", "fla", "ga", "ind",
    "kan", "kans", "ky", "md", "mich", "minn", "mo", "mont", "neb", "nev", "okla", "penn", "tenn", "va", "vt",
    "wis", "wisc", "wyo", "inc", "co", "cos", "corp", "pty", "ptys", "pte", "ptes", "ltd", "plc", "rt",
    "bancorp", "dept", "bhd", "assn", "univ", "intl", "sys", "invt", "elec", "natl", "mfg", "mtg", "jr", "sr",
    "bros", "blvd", "rd", "esq", "etc", "al", "seq", "mr", "mrs", "ms", "dr", "drs", "prof", "profs", "sen",
    "sens", "rep", "reps", "atty", "attys", "lt", "col", "gen", "messrs", "gov", "govs", "adm", "rev", "maj",
    "sgt", "cpl", "pvt", "mt", "capt", "st", "ste", "ave", "pres", "lieut", "hon", "brig", "cmdr", "comdr",
    "pfc", "spc", "supt", "supts", "det", "mme", "mlle", "a.m", "p.m", "vs",
})
_CAPITALISED_ABBREVIATIONS = frozenset({
    "ark", "az", "del", "ill", "la", "mass", "miss", "ore", "pa", "tex", "wash",
})

_BRACKETS = {"(": "-LRB-", ")": "-RRB-", "[": "-LSB-", "]": "-RSB-", "{": "-LCB-", "}": "-RCB-"}
_QUOTES = {"\u201c": "``", "\u201d": "''", "\u2018": "`", "\u2019": "'", "`": "`"}
_DASHES = ("--", "\u2014", "\u2013")


def _word_tokens(word: str) -> list[str]:
    """Split the words PTB treats as two (cannot -> can not, gonna -> gon na)."""
    cut = _SPLIT_WORDS.get(word.lower())
    return [word[:cut], word[cut:]] if cut else [word]


def _double_quote(line: str, i: int) -> str:
    """A straight double quote opens after a space, bracket or line start, closes otherwise."""
    return "``" if i == 0 or line[i - 1].isspace() or line[i - 1] in "([{" else "''"


def ptb_tokens(line: str) -> list[str]:
    """PTB tokens of one line, lower-cased, before the punctuation filter."""
    out: list[str] = []
    i, n = 0, len(line)
    while i < n:
        space = _SPACE.match(line, i)
        if space:
            i = space.end()
            continue
        ch = line[i]
        word = _WORD.match(line, i)
        if word:
            text, end = word.group(), word.end()
            # "don't" -> "do" + "n't"
            if text[-1] in "nN" and len(text) > 1 and _NT.match(line, end):
                out += _word_tokens(text[:-1])
                out.append("n't")
                i = end + 2
                continue
            # o'clock, O'Neil: one letter, apostrophe, a word.
            if len(text) == 1 and _O_APOSTROPHE.match(line, end):
                tail = _WORD.match(line, end + 1)
                assert tail is not None
                out.append(text + "'" + tail.group())
                i = tail.end()
                continue
            if end < n and line[end] == ".":
                text, end = _attach_period(line, text, end)
            out += _word_tokens(text)
            i = end
            continue
        if ch in "'\u2019":
            m = _CONTRACTION.match(line, i) if out and not line[i - 1].isspace() else None
            if m is None and (i == 0 or line[i - 1].isspace()):
                m = _APOSTROPHE_YEAR.match(line, i)
            if m:
                out.append("'" + m.group()[1:])
                i = m.end()
                continue
            out.append("'")
            i += 1
            continue
        if ch == "-":
            m = _SIGNED_NUMBER.match(line, i)
            if m and (i == 0 or not line[i - 1].isalnum()):
                out.append(m.group())
                i = m.end()
                continue
        dash = next((d for d in _DASHES if line.startswith(d, i)), None)
        if dash:
            out.append("--")
            i += len(dash)
            continue
        if line.startswith("...", i) or ch == "\u2026":
            out.append("...")
            i += 1 if ch == "\u2026" else 3
            continue
        if ch == "*":
            stars = re.match(r"\*+", line[i:])
            assert stars is not None
            out.append(stars.group())
            i += len(stars.group())
            continue
        if ch == '"':
            out.append(_double_quote(line, i))
        elif ch in _BRACKETS:
            out.append(_BRACKETS[ch])
        elif ch in _QUOTES:
            out.append(_QUOTES[ch])
        else:
            out.append(ch)
        i += 1
    return [t.lower() for t in out]


def _attach_period(line: str, word: str, dot: int) -> tuple[str, int]:
    """Keep a following period on known abbreviations and acronyms (``etc.``, ``e.g.``, ``J.``);
    leave it as its own token (later filtered) everywhere else, and after a single letter that
    ends a sentence ("... plan b. The ...")."""
    lower = word.lower()
    if lower in _ABBREVIATIONS or (lower in _CAPITALISED_ABBREVIATIONS and word[0].isupper()):
        return word + ".", dot + 1
    if _ACRONYM.fullmatch(word) and not (len(word) == 1 and _BEFORE_THE.match(line, dot + 1)):
        return word + ".", dot + 1
    return word, dot


def tokenize(caption: str) -> list[str]:
    """The words pycocoevalcap scores for one caption: PTB tokens minus punctuation."""
    return [t for t in ptb_tokens(caption.replace("\n", " ")) if t not in PUNCTUATIONS]


def tokenize_joined(caption: str) -> str:
    """``tokenize`` joined by single spaces: the exact string the COCO scorers receive."""
    return " ".join(tokenize(caption))
