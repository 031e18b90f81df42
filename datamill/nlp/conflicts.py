"""Content tokens: what two near-identical texts must share to say the same thing.

A sentence embedding reads "What is the capital of France?" and "... of Spain?" as the
same question (cosine 0.9 and more): templated near-misses differ only in an entity, a
number, a date, a negation or a key term, and that is where cosine similarity alone loses
its precision. `ContentTokens` keeps those few tokens of a text; `conflicting` says that two
texts cannot be duplicates of each other, whatever their cosine:

- **substitution**: each text has a number, an entity (a capitalised word inside a
  sentence: names, places, months, weekdays) or a rare word (one the model's vocabulary
  splits into pieces, and no stop word) that the other lacks. One-sided differences are
  not conflicts: a paraphrase may drop a detail ("within 30 days" / "within a month") or
  add a common word;
- **negation**: one text is negated (an odd number of "not", "no", "never", "n't"...) and
  the other is not.

Words are compared lower-cased, without a possessive "'s" and a plural "s", so "France's"
matches "France". Number words up to twenty and the tens are read as digits.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from dataclasses import dataclass

from datamill.nlp.embeddings import tokenizer_path


def _split(words: str) -> list[str]:
    return words.split()


_WORD = re.compile(r"[0-9]+(?:[.,:/][0-9]+)*|[^\W\d_]+(?:'[^\W\d_]+)?")
_SENTENCE_END = re.compile(r"[.!?:;\n]")
_NEGATIONS = frozenset(
    _split("not no never none nobody nothing neither nor cannot without n't fail lack unable refus")
)
_NUMBER_WORDS = {
    word: str(value)
    for value, word in enumerate(
        _split(
            "zero one two three four five six seven eight nine ten eleven twelve thirteen "
            "fourteen fifteen sixteen seventeen eighteen nineteen twenty"
        )
    )
} | {
    word: str(value)
    for value, word in zip(
        range(30, 100, 10), _split("thirty forty fifty sixty seventy eighty ninety"), strict=True
    )
}
_COMPOUND = re.compile(
    r"\b(twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)-"
    r"(one|two|three|four|five|six|seven|eight|nine)\b",
    re.IGNORECASE,
)
# Function words: never an entity or a key term, even capitalised or rare.
_STOP = frozenset(
    _split(
        """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is
    it its itself just let me more most my myself of off on once only or other our ours out
    over own please same she should so some such than that the their them then there these
    they this those through to too under until up very was we were what when where which while
    who whom why will with would you your yours yourself kindly hi hello thanks thank dear
    may might must shall also within inside across around behind beyond near per via onto
    upon toward towards among along"""
    )
)


# Content words two texts share (Jaccard) at and above which a negation on one side only,
# or a rare word swapped for another, is a contradiction; below it, a rewording.
OVERLAP = 0.5
# ... and at most this many content words in one text and not the other.
MAX_DIFFERENT = 4
# Two replaced spans at least this alike (difflib ratio of their characters) are a typo.
TYPO_RATIO = 0.8
# The longest span (in words, each side) a template's slot fills.
MAX_SLOT_WORDS = 2


@functools.cache
def _vocabulary() -> frozenset[str]:
    """The whole words of the model's WordPiece vocabulary (no ``##`` pieces)."""
    with tokenizer_path().open(encoding="utf-8") as handle:
        vocab = json.load(handle)["model"]["vocab"]
    return frozenset(word for word in vocab if not word.startswith("##"))


def _stem(word: str) -> str:
    """Lower case, no possessive, and a crude suffix strip: "covered", "covers" and
    "cover" are one word here, as are "dictionaries" and "dictionary"."""
    word = word.lower()
    if word.endswith("'s"):
        word = word[:-2]
    if word in _NUMBER_WORDS:
        return _NUMBER_WORDS[word]
    if len(word) > 4 and word.endswith(("ies", "ied")):
        return word[:-3] + "y"
    for suffix in ("ing", "ed", "es", "s", "e"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix) and not word.endswith("ss"):
            return word[: -len(suffix)]
    return word


@dataclass(frozen=True, slots=True)
class ContentTokens:
    """The words, numbers, entities and rare words of one text, and its negation parity."""

    words: frozenset[str]  # every word, stemmed: what "the other text has" is checked against
    numbers: frozenset[str]
    entities: frozenset[str]
    rare: frozenset[str]
    initials: frozenset[str]  # of runs of capitalised words: "United Kingdom" -> "uk"
    negated: bool
    content: frozenset[str]  # the words less stop words and negations
    sequence: tuple[str, ...]  # every word in order, lower-cased


def _compound_numbers(text: str) -> str:
    """ "seventy-two" as "72"."""

    def number(match: re.Match[str]) -> str:
        tens, units = (_NUMBER_WORDS[word.lower()] for word in match.group(1, 2))
        return str(int(tens) + int(units))

    return _COMPOUND.sub(number, text)


def content_tokens(text: str) -> ContentTokens:
    """The `ContentTokens` of ``text``."""
    vocabulary = _vocabulary()
    text = _compound_numbers(text)
    initials: set[str] = set()
    run = ""
    words: set[str] = set()
    numbers: set[str] = set()
    entities: set[str] = set()
    rare: set[str] = set()
    sequence: list[str] = []
    negations = 0
    sentence_start = True
    position = 0
    for match in _WORD.finditer(text):
        if _SENTENCE_END.search(text, position, match.start()):
            sentence_start = True
        position = match.end()
        raw = match.group()
        sequence.append(raw.lower())
        if raw.lower().endswith("n't"):
            negations += 1
        stem = _stem(raw)
        words.add(stem)
        if stem in _NEGATIONS:
            negations += 1
        if raw[0].isupper() and raw.isalpha():
            run += raw[0].lower()
        else:
            if len(run) > 1:
                initials.add(run)
            run = ""
        if stem.isdigit() or raw[0].isdigit():
            numbers.add(stem)
        elif stem not in _STOP:
            if raw[0].isupper() and not sentence_start:
                entities.add(stem)
            elif raw.lower() not in vocabulary and stem not in vocabulary and len(stem) > 3:
                rare.add(stem)
        sentence_start = False
    if len(run) > 1:
        initials.add(run)
    return ContentTokens(
        words=frozenset(words),
        numbers=frozenset(numbers),
        entities=frozenset(entities),
        rare=frozenset(rare),
        initials=frozenset(initials),
        negated=negations % 2 == 1,
        content=frozenset(words - _STOP - _NEGATIONS),
        sequence=tuple(sequence),
    )


def conflicting(one: ContentTokens, other: ContentTokens, *, swaps: bool = True) -> bool:
    """True when the texts differ in a way no paraphrase does: a substituted number or
    entity; in two texts sharing most of their words, a substituted rare word or a negation
    on one side; with ``swaps``, also one span of words replaced in an otherwise identical text
    (a template's slot filled twice; a paraphrase rewords or reorders more than that, and a
    typo's span is alike: the lexical test, which catches typos, passes ``swaps=False``)."""
    for kind in ("numbers", "entities"):
        mine: frozenset[str] = getattr(one, kind)
        theirs: frozenset[str] = getattr(other, kind)
        # An acronym matches the initials of the other's capitalised words ("UK").
        if (mine - other.words - other.initials) and (theirs - one.words - one.initials):
            return True
    union = one.content | other.content
    differ = len(one.content ^ other.content)
    # Rare words and negations count where the texts are nearly the same words: a
    # paraphrase rewords ("fireman" / "firefighter", "closed" / "does not open").
    if union and differ <= MAX_DIFFERENT and 1 - differ / len(union) >= OVERLAP:
        if one.negated != other.negated:
            return True
        if (one.rare - other.words) and (other.rare - one.words):
            return True
    return swaps and _one_slot_replaced(one.sequence, other.sequence)


def _one_slot_replaced(one: tuple[str, ...], other: tuple[str, ...]) -> bool:
    """The two word sequences are the same but for one replaced span, and the span is no
    typo (its two sides differ in more than a few characters)."""
    matcher = difflib.SequenceMatcher(None, one, other, autojunk=False)
    changes = [op for op in matcher.get_opcodes() if op[0] != "equal"]
    if len(changes) != 1 or changes[0][0] != "replace":
        return False
    _, i1, i2, j1, j2 = changes[0]
    if i2 - i1 > MAX_SLOT_WORDS or j2 - j1 > MAX_SLOT_WORDS:
        return False  # a longer span replaced is a rewording
    if all(word in _STOP for word in one[i1:i2]) or all(word in _STOP for word in other[j1:j2]):
        return False  # "What is" / "Which city is": function words reworded
    mine, theirs = " ".join(one[i1:i2]), " ".join(other[j1:j2])
    return difflib.SequenceMatcher(None, mine, theirs).ratio() < TYPO_RATIO
