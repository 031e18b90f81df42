"""Synthetic samples for bench/dedup.py: varied, deterministic, with planted near-duplicates.

A sample is two sentences. Each sentence says who did what to which things, where
and when, in one of three sentence patterns, with every content word drawn from its own
pool (60 subjects, 60 verbs, 64 objects, 48 adjectives, 25 adverbs, 40 places, 30
times). Two originals share few words, but among tens of thousands many pairs share a
pattern and three or four words, which the model reads as close (docs/benchmarks.md,
Dedup): these pools are small for 100,000 samples. Every pooled word has a
synonym, and every pattern a second surface form (passive voice, phrases moved), so the
same facts can be said again in other words.

A share of the samples are planted duplicates of an earlier original:

- **near-verbatim**: the same text with edits a model's answer might carry (case, a typo,
  punctuation, a word dropped or doubled, line breaks);
- **paraphrase**: the same facts with about half the words swapped for synonyms and each sentence in
  its other surface form, sentences sometimes in another order.

Nothing is read from disk or the network; the seed fixes everything.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


def _pairs(text: str) -> list[tuple[str, str]]:
    """``word|synonym`` entries separated by commas."""
    return [tuple(entry.strip().split("|")) for entry in text.split(",")]  # type: ignore[misc]


SUBJECTS = _pairs(
    "carpenter|woodworker, baker|pastry cook, lawyer|attorney, nurse|care worker, pilot|aviator,"
    "farmer|grower, teacher|schoolmaster, plumber|pipe fitter, journalist|reporter,"
    "librarian|archivist, shopkeeper|merchant, mechanic|repair technician, architect|designer,"
    "gardener|groundskeeper, chemist|pharmacist, judge|magistrate, sailor|seaman,"
    "fisherman|angler, painter|artist, tailor|dressmaker, butcher|meat seller,"
    "electrician|wiring technician, banker|financier, surveyor|land assessor,"
    "landlord|property owner, tenant|renter, notary|public notary, auditor|inspector of accounts,"
    "beekeeper|apiarist, brewer|beer maker, potter|ceramicist, miner|quarry worker,"
    "firefighter|fireman, courier|delivery rider, shepherd|herdsman, clerk|office worker,"
    "detective|investigator, student|pupil, professor|lecturer, veterinarian|animal doctor,"
    "chef|head cook, surgeon|operating doctor, engineer|technician, translator|interpreter,"
    "locksmith|lock fitter, jeweller|goldsmith, florist|flower seller, cobbler|shoemaker,"
    "glazier|glass fitter, roofer|roofing worker, blacksmith|metalworker, ranger|park warden,"
    "dentist|tooth doctor, plasterer|wall finisher, caretaker|janitor, sculptor|carver,"
    "accountant|bookkeeper, pharmacist|dispenser, midwife|birth nurse, weaver|textile maker"
)
VERBS = _pairs(
    "repaired|fixed, bought|purchased, sold|traded away, delivered|shipped, inspected|examined,"
    "collected|gathered, cleaned|washed, ordered|requested, designed|planned, built|constructed,"
    "painted|coloured, counted|tallied, measured|sized up, packed|boxed, stored|kept,"
    "borrowed|took on loan, returned|gave back, loaded|filled up, unloaded|emptied,"
    "photographed|took pictures of, weighed|put on the scales, labelled|tagged,"
    "polished|shined, sorted|arranged, recorded|logged, replaced|swapped out, tested|tried out,"
    "moved|carried, hid|concealed, found|discovered, stacked|piled up, sharpened|honed,"
    "insured|covered, donated|gave away, rented|hired, auctioned|put up for auction,"
    "restored|renovated, tied|fastened, wrapped|covered up, mended|patched, heated|warmed,"
    "cooled|chilled, decorated|adorned, assembled|put together, dismantled|took apart,"
    "ordered back|recalled, catalogued|indexed, checked|verified, approved|signed off,"
    "rejected|turned down, seized|confiscated, smuggled|slipped in, exported|sent abroad,"
    "imported|brought in, guarded|watched over, valued|appraised, copied|duplicated,"
    "printed|ran off, translated|rendered, painted over|covered with paint"
)
OBJECTS = _pairs(
    "bicycles|bikes, lamps|lights, barrels|casks, ladders|stepladders, carpets|rugs,"
    "violins|fiddles, boats|small vessels, clocks|timepieces, cabinets|cupboards,"
    "mirrors|looking glasses, tractors|farm machines, umbrellas|parasols, kettles|boilers,"
    "helmets|hard hats, saddles|riding seats, lanterns|oil lamps, anchors|mooring weights,"
    "paintings|canvases, statues|sculptures, manuscripts|handwritten books, maps|charts,"
    "coins|pieces of money, rings|bands, necklaces|chains, tents|shelters, blankets|covers,"
    "tables|desks, chairs|seats, sofas|couches, pianos|keyboards, drums|percussion sets,"
    "telescopes|spyglasses, microscopes|lab scopes, engines|motors, tyres|wheels,"
    "windows|panes, doors|gates, roofs|rooftops, fences|railings, bridges|footbridges,"
    "crates|boxes, sacks|bags, bottles|flasks, jars|pots, baskets|hampers, trunks|chests,"
    "contracts|agreements, invoices|bills, deeds|title papers, ledgers|account books,"
    "passports|travel papers, tickets|passes, letters|messages, parcels|packages,"
    "beehives|hives, fishing nets|nets, hammers|mallets, saws|cutting blades, drills|borers,"
    "ovens|stoves, fridges|refrigerators, sinks|basins, taps|faucets, pipes|tubes"
)
ADJECTIVES = _pairs(
    "old|aged, new|brand-new, large|big, small|little, heavy|weighty, light|lightweight,"
    "red|crimson, blue|navy, green|olive, wooden|timber, metal|steel, broken|damaged,"
    "antique|vintage, cheap|inexpensive, expensive|costly, rare|uncommon, dusty|grimy,"
    "shiny|gleaming, narrow|slim, wide|broad, fragile|delicate, sturdy|solid, rusty|corroded,"
    "handmade|crafted, imported|foreign, local|regional, spare|extra, faulty|defective,"
    "stolen|pilfered, borrowed|loaned, painted|coated, carved|engraved, folded|creased,"
    "torn|ripped, waterproof|watertight, portable|movable, ancient|very old, modern|current,"
    "tiny|minute, huge|enormous, square|boxy, round|circular, oval|egg-shaped, striped|banded,"
    "spotted|dotted, polished|burnished, frozen|iced, warm|heated"
)
ADVERBS = _pairs(
    "quietly|silently, quickly|rapidly, carefully|cautiously, slowly|unhurriedly,"
    "secretly|covertly, proudly|with pride, reluctantly|unwillingly, eagerly|keenly,"
    "patiently|calmly, hastily|hurriedly, gently|softly, roughly|crudely, openly|publicly,"
    "neatly|tidily, clumsily|awkwardly, efficiently|productively, nervously|anxiously,"
    "happily|cheerfully, angrily|furiously, politely|courteously, boldly|bravely,"
    "wisely|sensibly, quietly again|once more in silence, repeatedly|again and again,"
    "finally|at last"
)
PLACES = [
    "Lisbon",
    "Oslo",
    "Vienna",
    "Lyon",
    "Porto",
    "Krakow",
    "Bologna",
    "Ghent",
    "Tallinn",
    "Seville",
    "Bergen",
    "Graz",
    "Leeds",
    "Utrecht",
    "Brno",
    "Cork",
    "Turin",
    "Malmo",
    "Aarhus",
    "Basel",
    "Nantes",
    "Split",
    "Riga",
    "Vilnius",
    "Gdansk",
    "Bremen",
    "Toledo",
    "Dublin",
    "Zurich",
    "Antwerp",
    "Leipzig",
    "Valencia",
    "Helsinki",
    "Salzburg",
    "Bordeaux",
    "Florence",
    "Geneva",
    "Munich",
    "Ljubljana",
    "Bratislava",
]
TIMES = _pairs(
    "on Monday|at the start of the week, on Friday|at the end of the week, last winter|"
    "during the previous winter, in early spring|at the beginning of spring,"
    "last summer|during the previous summer, in late autumn|towards the end of autumn,"
    "yesterday|the day before today, this morning|earlier today, at midnight|at twelve at night,"
    "at dawn|at first light, after lunch|in the early afternoon,"
    "before dinner|in the early evening,"
    "in March|during March, in July|during July, in October|during October, in December|during "
    "December, last year|the previous year, two weeks ago|a fortnight ago, on a rainy day|while it "
    "rained, during the festival|while the festival was on, on New Year's Eve|on the last night of "
    "the year, at the weekend|on Saturday and Sunday, in the holidays|during the vacation,"
    "after the storm|once the storm had passed, before the audit|ahead of the audit,"
    "after the auction|once the auction was over, during the strike|while the strike lasted,"
    "on the first of May|on May Day, at sunset|as the sun went down, at noon|at midday"
)
NUMBERS = [
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "fifteen",
    "twenty",
    "thirty",
    "forty",
]


@dataclass(frozen=True, slots=True)
class Sample:
    text: str
    planted: str  # "" for an original; "near-verbatim" or "paraphrase" for a planted copy
    source: int  # the index of the original it copies (-1 for an original)


@dataclass(frozen=True, slots=True)
class _Fact:
    """One sentence's content: pool indices and a pattern."""

    pattern: int
    subject: int
    verb: int
    count: str
    adjective: int
    obj: int
    adverb: int
    place: str
    time: int


def _fact(rng: random.Random) -> _Fact:
    return _Fact(
        pattern=rng.randrange(3),
        subject=rng.randrange(len(SUBJECTS)),
        verb=rng.randrange(len(VERBS)),
        count=rng.choice(NUMBERS),
        adjective=rng.randrange(len(ADJECTIVES)),
        obj=rng.randrange(len(OBJECTS)),
        adverb=rng.randrange(len(ADVERBS)),
        place=rng.choice(PLACES),
        time=rng.randrange(len(TIMES)),
    )


def _sentence(fact: _Fact, *, paraphrase: bool, rng: random.Random) -> str:
    """The fact in its pattern's first form, or (paraphrase) with synonyms in its second."""

    def word(pool: list[tuple[str, str]], index: int) -> str:
        # A paraphrase swaps about half the words for synonyms, as a light rewording does.
        return pool[index][1 if paraphrase and rng.random() < 0.5 else 0]

    s, v = word(SUBJECTS, fact.subject), word(VERBS, fact.verb)
    a, o = word(ADJECTIVES, fact.adjective), word(OBJECTS, fact.obj)
    d, t = word(ADVERBS, fact.adverb), word(TIMES, fact.time)
    n, p = fact.count, fact.place
    article = "an" if s[0] in "aeiou" else "a"
    forms = {
        0: (
            f"The {s} in {p} {d} {v} {n} {a} {o} {t}.",
            f"{t}, {n} {a} {o} were {d} {v} by the {s} in {p}.",
        ),
        1: (
            f"{t}, {article} {s} from {p} {v} {n} {a} {o}, {d}.",
            f"{n} {a} {o} were {v} {d} by {article} {s} from {p} {t}.",
        ),
        2: (
            f"In {p}, the local {s} {d} {v} {n} of the {a} {o} {t}.",
            f"The local {s} of {p} {v} {n} of the {a} {o}, {d}, {t}.",
        ),
    }
    text = forms[fact.pattern][1 if paraphrase else 0]
    return text[0].upper() + text[1:]


def _edit(rng: random.Random, text: str) -> str:
    """Near-verbatim: one or two edits of the kind a model's answer carries."""
    for _ in range(rng.choice((1, 1, 2))):
        words = text.split(" ")
        kind = rng.randrange(6)
        at = rng.randrange(len(words))
        if kind == 0:
            text = text.lower()
        elif kind == 1 and len(words[at]) > 3:  # two letters swapped
            word = words[at]
            cut = rng.randrange(len(word) - 1)
            words[at] = word[:cut] + word[cut + 1] + word[cut] + word[cut + 2 :]
            text = " ".join(words)
        elif kind == 2:
            text = text.replace(",", "").replace(".", "", 1)
        elif kind == 3 and len(words) > 8:
            del words[at]
            text = " ".join(words)
        elif kind == 4:
            words.insert(at, words[at])
            text = " ".join(words)
        else:
            text = "  " + text.replace(". ", ".\n") + " "
    return text


def generate(count: int, *, planted_share: float = 0.1, seed: int = 2026) -> list[Sample]:
    """``count`` samples; about ``planted_share`` of them planted copies of an earlier
    original, half near-verbatim and half paraphrases."""
    rng = random.Random(seed)
    samples: list[Sample] = []
    originals: list[tuple[int, tuple[_Fact, ...]]] = []
    for index in range(count):
        if originals and rng.random() < planted_share:
            source, facts = rng.choice(originals)
            if rng.random() < 0.5:
                samples.append(Sample(_edit(rng, samples[source].text), "near-verbatim", source))
                continue
            sentences = [_sentence(f, paraphrase=True, rng=rng) for f in facts]
            if rng.random() < 0.5:
                sentences.reverse()
            samples.append(Sample(" ".join(sentences), "paraphrase", source))
            continue
        facts = (_fact(rng), _fact(rng))
        text = " ".join(_sentence(f, paraphrase=False, rng=rng) for f in facts)
        originals.append((index, facts))
        samples.append(Sample(text, "", -1))
    return samples
