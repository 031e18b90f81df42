"""Agreement statistics against published worked examples, against the `krippendorff`
package on random data, and on the degenerate cases the docs define."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import random
from collections import Counter
from collections.abc import Sequence

import pytest

from datamill.protocol.task_schema_format import Question, QuestionKind
from datamill.review.agreement import (
    MAX_LISTED_PAIRS,
    AgreementReport,
    QuestionAgreement,
    compute_agreement,
)
from datamill.review.ratings import Rating, Value, ratings_of
from datamill.review.statistics import Level, NullReason

DECISION = Question(name="decision", kind=QuestionKind.decision)
RATING = Question(name="rating", kind=QuestionKind.rating, required=False)
DECISION_VALUES = ("approve", "reject")
COMMENT = Question(name="comment", kind=QuestionKind.text, required=False)
TAGS = Question(
    name="tags", kind=QuestionKind.labels, options=["spam", "toxic", "off"], multiple=True
)


def labels(*options: str, name: str = "label") -> Question:
    return Question(name=name, kind=QuestionKind.labels, options=list(options))


def from_rows(question: str, rows: Sequence[str], *, cast: type = str) -> list[Rating]:
    """Ratings from a reliability table: one row per reviewer, one column per item, '.' for
    missing (as Krippendorff's paper prints them)."""
    return [
        Rating(f"u{item:02}", f"r{reviewer:02}", question, cast(value))
        for reviewer, row in enumerate(rows)
        for item, value in enumerate(row.split())
        if value != "."
    ]


def from_two_by_two(both_yes: int, first_only: int, second_only: int, both_no: int) -> list[Rating]:
    """Two reviewers' decisions from the cells of a 2x2 table (approve is "yes")."""
    cells = [
        ("approve", "approve", both_yes),
        ("approve", "reject", first_only),
        ("reject", "approve", second_only),
        ("reject", "reject", both_no),
    ]
    ratings = []
    item = 0
    for first, second, count in cells:
        for _ in range(count):
            ratings.append(Rating(f"i{item}", "a", "decision", first))
            ratings.append(Rating(f"i{item}", "b", "decision", second))
            item += 1
    return ratings


def question(report: AgreementReport, name: str) -> QuestionAgreement:
    return next(q for q in report.questions if q.question == name)


# Published worked examples


@pytest.mark.parametrize(
    ("cells", "kappa"),
    [
        # Wikipedia, "Cohen's kappa", the simple example: p_o = 0.7, p_e = 0.5.
        ((20, 5, 10, 15), 0.4),
        # Wikipedia's two tables of equal agreement and different margins.
        ((45, 15, 25, 15), 0.1304),
        ((25, 35, 5, 35), 0.2593),
    ],
)
def test_cohen_kappa_of_textbook_tables(cells: tuple[int, int, int, int], kappa: float) -> None:
    report = compute_agreement(from_two_by_two(*cells), questions=[DECISION])
    cohen = question(report, "decision").cohen_kappa
    assert cohen.value == pytest.approx(kappa, abs=5e-5)
    assert cohen.pairs_used == 1
    assert [(p.reviewers, p.items) for p in cohen.pairs] == [(("a", "b"), sum(cells))]
    observed = question(report, "decision").observed_agreement
    assert observed.value == pytest.approx((cells[0] + cells[3]) / sum(cells))


# Fleiss (1971) as Wikipedia's "Fleiss' kappa" reproduces it: 10 items, 14 raters each,
# 5 categories; kappa = 0.210 (P-bar 0.378, P_e-bar 0.213).
FLEISS_TABLE = [
    (0, 0, 0, 0, 14),
    (0, 2, 6, 4, 2),
    (0, 0, 3, 5, 6),
    (0, 3, 9, 2, 0),
    (2, 2, 8, 1, 1),
    (7, 7, 0, 0, 0),
    (3, 2, 6, 3, 0),
    (2, 5, 3, 2, 2),
    (6, 5, 2, 1, 0),
    (0, 2, 2, 3, 7),
]


def test_fleiss_kappa_of_the_1971_example() -> None:
    options = ["c1", "c2", "c3", "c4", "c5"]
    ratings = []
    for item, row in enumerate(FLEISS_TABLE):
        values = [options[c] for c, n in enumerate(row) for _ in range(n)]
        # Raters differ from item to item: Fleiss' kappa does not follow raters.
        for slot, value in enumerate(values):
            ratings.append(Rating(f"i{item}", f"rater{(slot + 3 * item) % 20}", "label", value))
    report = compute_agreement(ratings, questions=[labels(*options)])
    fleiss = question(report, "label").fleiss_kappa
    assert fleiss.value == pytest.approx(0.2099, abs=5e-5)
    assert (fleiss.raters_per_item, fleiss.items_used) == (14, 10)


# Krippendorff, "Computing Krippendorff's Alpha-Reliability" (2011): 4 observers, 12 units,
# values 1-5 with missing data.
KRIPPENDORFF_TABLE = [
    "1 2 3 3 2 1 4 1 2 . . .",
    "1 2 3 3 2 2 4 1 2 5 . 3",
    ". 3 3 3 2 3 4 2 2 5 1 .",
    "1 2 3 3 2 4 4 1 2 5 1 .",
]


def test_krippendorff_alpha_nominal_of_the_paper() -> None:
    ratings = from_rows("label", KRIPPENDORFF_TABLE)
    report = compute_agreement(ratings, questions=[labels("1", "2", "3", "4", "5")])
    alpha = question(report, "label").krippendorff_alpha
    assert alpha.value == pytest.approx(0.743, abs=5e-4)
    # Unit 12 has one value, which is not pairable: 40 of the 41 values count.
    assert alpha.values == 40
    assert question(report, "label").level is Level.nominal


def test_krippendorff_alpha_ordinal_of_the_paper() -> None:
    ratings = from_rows("rating", KRIPPENDORFF_TABLE, cast=int)
    report = compute_agreement(ratings, questions=[RATING])
    alpha = question(report, "rating").krippendorff_alpha
    assert alpha.value == pytest.approx(0.815, abs=5e-4)
    assert question(report, "rating").level is Level.ordinal


def test_krippendorff_alpha_of_the_papers_binary_example() -> None:
    # The paper's first example: two observers, ten units, binary values; alpha = 0.095.
    rows = ["0 1 0 0 0 0 0 0 1 0", "1 1 1 0 0 1 0 0 0 0"]
    report = compute_agreement(from_rows("label", rows), questions=[labels("0", "1")])
    assert question(report, "label").krippendorff_alpha.value == pytest.approx(0.095, abs=5e-4)


# Against the krippendorff package and naive reimplementations, on random data


def random_ratings(
    rng: random.Random, *, items: int, reviewers: int, name: str, values: Sequence[Value]
) -> list[Rating]:
    ratings = []
    for item in range(items):
        truth = rng.choice(values)
        for reviewer in rng.sample(range(reviewers), rng.randint(1, min(reviewers, 5))):
            value = truth if rng.random() < 0.6 else rng.choice(values)
            ratings.append(Rating(f"i{item}", f"r{reviewer:02}", name, value))
    return ratings


def reference_alpha(ratings: list[Rating], domain: Sequence[Value], level: str) -> float:
    import krippendorff  # a dev dependency: the reference, not datamill's implementation

    reviewers = sorted({r.reviewer_id for r in ratings})
    items = sorted({r.item_id for r in ratings})
    table = [[math.nan] * len(items) for _ in reviewers]
    for r in ratings:
        table[reviewers.index(r.reviewer_id)][items.index(r.item_id)] = domain.index(r.value)
    return float(
        krippendorff.alpha(
            reliability_data=table,
            value_domain=list(range(len(domain))),
            level_of_measurement=level,
        )
    )


@pytest.mark.parametrize("seed", range(8))
def test_alpha_matches_the_krippendorff_package(seed: int) -> None:
    rng = random.Random(seed)
    options = ["a", "b", "c", "d"]
    nominal = random_ratings(rng, items=60, reviewers=7, name="label", values=options)
    ordinal = random_ratings(rng, items=60, reviewers=7, name="rating", values=[1, 2, 3, 4, 5])
    report = compute_agreement(nominal + ordinal, questions=[labels(*options), RATING])
    assert question(report, "label").krippendorff_alpha.value == pytest.approx(
        reference_alpha(nominal, options, "nominal"), abs=1e-9
    )
    assert question(report, "rating").krippendorff_alpha.value == pytest.approx(
        reference_alpha(ordinal, [1, 2, 3, 4, 5], "ordinal"), abs=1e-9
    )


def naive_kappa(pairs: list[tuple[Value, Value]]) -> float | None:
    n = len(pairs)
    observed = sum(a == b for a, b in pairs) / n
    first = Counter(a for a, _ in pairs)
    second = Counter(b for _, b in pairs)
    expected = sum(first[v] * second[v] for v in first) / (n * n)
    return None if expected == 1 else (observed - expected) / (1 - expected)


@pytest.mark.parametrize("seed", range(5))
def test_pairwise_and_per_reviewer_kappas_match_a_naive_count(seed: int) -> None:
    rng = random.Random(seed)
    ratings = random_ratings(rng, items=80, reviewers=6, name="rating", values=[1, 2, 3, 4, 5])
    report = compute_agreement(ratings, questions=[RATING], min_shared_items=1)
    answers: dict[str, dict[str, Value]] = {}
    for r in ratings:
        answers.setdefault(r.item_id, {})[r.reviewer_id] = r.value
    cohen = question(report, "rating").cohen_kappa
    expected_pairs = {}
    for a, b in itertools.combinations(sorted({r.reviewer_id for r in ratings}), 2):
        shared = [(v[a], v[b]) for v in answers.values() if a in v and b in v]
        if shared:
            expected_pairs[a, b] = (len(shared), naive_kappa(shared))
    assert cohen.pairs_total == len(expected_pairs)
    got = {p.reviewers: (p.items, p.value) for p in cohen.pairs}
    assert got.keys() == expected_pairs.keys()
    for key, (items, kappa) in expected_pairs.items():
        assert got[key][0] == items
        assert got[key][1] == pytest.approx(kappa, abs=1e-12)
    defined = [k for _, k in expected_pairs.values() if k is not None]
    assert cohen.value == pytest.approx(sum(defined) / len(defined), abs=1e-12)

    # Against the rest: every pair of this reviewer's rating and another's, pooled.
    for reviewer in report.reviewers:
        me = reviewer.reviewer_id
        pooled = [
            (v[me], w) for v in answers.values() if me in v for other, w in v.items() if other != me
        ]
        mine = reviewer.questions[0]
        assert mine.compared == len(pooled)
        if pooled:
            assert mine.observed_agreement.value == pytest.approx(
                sum(a == b for a, b in pooled) / len(pooled)
            )
            assert mine.cohen_kappa.value == pytest.approx(naive_kappa(pooled), abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_fleiss_and_observed_agreement_match_a_naive_count(seed: int) -> None:
    rng = random.Random(seed)
    ratings = random_ratings(rng, items=50, reviewers=5, name="decision", values=DECISION_VALUES)
    report = compute_agreement(ratings, questions=[DECISION])
    by_item: dict[str, list[Value]] = {}
    for r in ratings:
        by_item.setdefault(r.item_id, []).append(r.value)
    rated = [v for v in by_item.values() if len(v) >= 2]
    pairs = [(a, b) for v in rated for a, b in itertools.combinations(v, 2)]
    summary = question(report, "decision")
    assert summary.observed_agreement.pairs == len(pairs)
    assert summary.observed_agreement.value == pytest.approx(
        sum(a == b for a, b in pairs) / len(pairs)
    )
    sizes = Counter(len(v) for v in rated)
    top = max(sizes.values())
    size = max(s for s, n in sizes.items() if n == top)
    used = [v for v in rated if len(v) == size]
    p_bar = sum(
        (sum(c * c for c in Counter(v).values()) - size) / (size * (size - 1)) for v in used
    ) / len(used)
    shares = Counter(x for v in used for x in v)
    p_e = sum((c / (len(used) * size)) ** 2 for c in shares.values())
    assert summary.fleiss_kappa.raters_per_item == size
    assert summary.fleiss_kappa.items_used == len(used)
    assert summary.fleiss_kappa.value == pytest.approx((p_bar - p_e) / (1 - p_e), abs=1e-12)


# Perfect agreement


@pytest.mark.parametrize("seed", range(20))
def test_perfect_agreement_gives_one_wherever_defined(seed: int) -> None:
    rng = random.Random(seed)
    ratings = []
    for item in range(rng.randint(2, 40)):
        value = rng.randint(1, 5)
        tags = tuple(rng.sample(["spam", "toxic", "off"], rng.randint(0, 3)))
        for reviewer in rng.sample(range(8), rng.randint(1, 6)):
            ratings.append(Rating(f"i{item}", f"r{reviewer}", "rating", value))
            ratings.append(Rating(f"i{item}", f"r{reviewer}", "tags", tags))
    report = compute_agreement(ratings, questions=[RATING, TAGS], min_shared_items=1)
    for summary in report.questions:
        estimates = [
            summary.observed_agreement,
            summary.cohen_kappa,
            summary.fleiss_kappa,
            summary.krippendorff_alpha,
            *summary.cohen_kappa.pairs,
        ]
        for estimate in estimates:
            assert (estimate.value is None) != (estimate.reason is None)
            assert estimate.value in (None, 1.0)
        if summary.items_compared:
            assert summary.observed_agreement.value == 1.0
    # Where two values are pairable (on items with two ratings), alpha is defined: it is 1.
    by_item: dict[str, list[Value]] = {}
    for r in ratings:
        if r.question == "rating":
            by_item.setdefault(r.item_id, []).append(r.value)
    pairable = {v for values in by_item.values() if len(values) >= 2 for v in values}
    alpha = question(report, "rating").krippendorff_alpha
    assert alpha.value == (1.0 if len(pairable) > 1 else None)
    for reviewer in report.reviewers:
        for mine in reviewer.questions:
            assert mine.observed_agreement.value in (None, 1.0)
            assert mine.cohen_kappa.value in (None, 1.0)


# Degenerate cases: defined, never NaN


def as_json(report: AgreementReport) -> str:
    return json.dumps(dataclasses.asdict(report), allow_nan=False)


def test_no_ratings_gives_nulls_with_reasons() -> None:
    report = compute_agreement([], questions=[DECISION, RATING, COMMENT])
    assert (report.item_count, report.reviewer_count, report.rating_count) == (0, 0, 0)
    assert [q.question for q in report.questions] == ["decision", "rating"]
    for summary in report.questions:
        assert summary.observed_agreement.reason is NullReason.too_few_ratings
        assert summary.cohen_kappa.reason is NullReason.too_few_ratings
        assert summary.fleiss_kappa.reason is NullReason.too_few_ratings
        assert summary.fleiss_kappa.raters_per_item is None
        assert summary.krippendorff_alpha.reason is NullReason.too_few_ratings
        assert summary.gold.reason is NullReason.no_gold
    assert report.reviewers == ()
    as_json(report)


def test_one_reviewer_compares_with_no_one() -> None:
    ratings = [Rating(f"i{n}", "solo", "decision", ("approve", "reject")[n % 2]) for n in range(9)]
    report = compute_agreement(ratings, questions=[DECISION], final_decisions={"i0": "approve"})
    summary = question(report, "decision")
    assert (summary.items, summary.items_compared, summary.reviewers) == (9, 0, 1)
    assert summary.cohen_kappa.reason is NullReason.too_few_ratings
    assert summary.krippendorff_alpha.reason is NullReason.too_few_ratings
    (solo,) = report.reviewers
    assert (solo.reviews, solo.approved, solo.rejected) == (9, 5, 4)
    assert solo.questions[0].observed_agreement.reason is NullReason.no_other_reviewers
    assert solo.questions[0].cohen_kappa.reason is NullReason.no_other_reviewers
    assert (solo.final_decision.value, solo.final_decision.items) == (1.0, 1)
    as_json(report)


def test_identical_ratings_agree_fully_and_have_no_kappa() -> None:
    ratings = [
        Rating(f"i{n}", reviewer, "decision", "approve")
        for n in range(12)
        for reviewer in ("a", "b", "c")
    ]
    report = compute_agreement(ratings, questions=[DECISION])
    summary = question(report, "decision")
    assert summary.observed_agreement.value == 1.0
    for estimate in (summary.cohen_kappa, summary.fleiss_kappa, summary.krippendorff_alpha):
        assert estimate.value is None
        assert estimate.reason is NullReason.no_variation
    assert all(p.reason is NullReason.no_variation for p in summary.cohen_kappa.pairs)
    for reviewer in report.reviewers:
        assert reviewer.questions[0].observed_agreement.value == 1.0
        assert reviewer.questions[0].cohen_kappa.reason is NullReason.no_variation
    assert "NaN" not in as_json(report)


def test_a_question_with_one_option_has_no_variation() -> None:
    ratings = [Rating(f"i{n}", r, "label", "only") for n in range(3) for r in ("a", "b")]
    report = compute_agreement(ratings, questions=[labels("only")])
    summary = question(report, "label")
    assert summary.krippendorff_alpha.reason is NullReason.no_variation
    assert summary.fleiss_kappa.reason is NullReason.no_variation
    as_json(report)


def test_complete_disagreement_is_a_number_not_a_null() -> None:
    # Each reviewer always gives one value, the other one: p_e = 0, kappa = 0, alpha < 0.
    ratings = [Rating(f"i{n}", "a", "decision", "approve") for n in range(5)]
    ratings += [Rating(f"i{n}", "b", "decision", "reject") for n in range(5)]
    summary = question(compute_agreement(ratings, questions=[DECISION]), "decision")
    assert summary.observed_agreement.value == 0.0
    assert summary.cohen_kappa.value == 0.0
    assert summary.krippendorff_alpha.value is not None
    assert summary.krippendorff_alpha.value < 0


def test_pairs_sharing_too_few_items_are_left_out_of_the_mean() -> None:
    rng = random.Random(7)
    ratings = []
    # a and b share 12 items; c shares 3 with each of them.
    for n in range(12):
        ratings.append(Rating(f"i{n}", "a", "decision", rng.choice(DECISION_VALUES)))
        ratings.append(Rating(f"i{n}", "b", "decision", rng.choice(DECISION_VALUES)))
    for n in range(3):
        ratings.append(Rating(f"i{n}", "c", "decision", "approve"))
    ratings.append(Rating("i1", "a", "decision", "approve"))  # a later answer replaces
    ratings.append(Rating("i1", "b", "decision", "reject"))
    report = compute_agreement(ratings, questions=[DECISION], min_shared_items=10)
    cohen = question(report, "decision").cohen_kappa
    assert cohen.pairs_total == 3
    assert cohen.pairs_used == 1
    assert [p.reviewers for p in cohen.pairs] == [("a", "b")]
    assert cohen.value == cohen.pairs[0].value
    assert report.rating_count == 12 * 2 + 3

    strict = compute_agreement(ratings, questions=[DECISION], min_shared_items=13)
    assert question(strict, "decision").cohen_kappa.reason is NullReason.no_reviewer_pair
    assert question(strict, "decision").cohen_kappa.pairs == ()


def test_two_reviewers_give_their_kappa_however_few_items_they_share() -> None:
    ratings = from_two_by_two(2, 1, 0, 1)
    cohen = question(compute_agreement(ratings, questions=[DECISION]), "decision").cohen_kappa
    assert cohen.value == pytest.approx(0.5)
    assert cohen.pairs_used == 1


def test_the_listed_pairs_are_bounded() -> None:
    reviewers = [f"r{n:03}" for n in range(22)]  # 231 pairs
    ratings = [
        Rating(f"i{item}", reviewer, "decision", ("approve", "reject")[(item + n) % 2])
        for item in range(2)
        for n, reviewer in enumerate(reviewers)
    ]
    report = compute_agreement(ratings, questions=[DECISION], min_shared_items=1)
    cohen = question(report, "decision").cohen_kappa
    assert cohen.pairs_total == 231
    assert len(cohen.pairs) == MAX_LISTED_PAIRS


def test_invalid_ignored_and_text_answers_are_counted_not_used() -> None:
    ratings = [
        Rating("i1", "a", "rating", 4),
        Rating("i1", "b", "rating", 7),  # out of range
        Rating("i1", "c", "rating", True),  # a bool is not a rating
        Rating("i1", "d", "rating", "4"),  # nor a string
        Rating("i1", "a", "comment", "fine"),  # text: no agreement
        Rating("i1", "a", "mood", "happy"),  # not a question of the schema
        Rating("i1", "b", "tags", ["spam", "nope"]),  # an unknown option
        Rating("i1", "c", "tags", "spam"),  # a multiple labels answer is a list
        Rating("i1", "d", "tags", ["spam"]),
        Rating("i2", "a", "tags", {"spam": True}),  # unhashable: fits no question
    ]
    report = compute_agreement(ratings, questions=[RATING, COMMENT, TAGS])
    assert report.ignored_ratings == 2
    assert question(report, "rating").ratings == 1
    assert question(report, "rating").invalid_ratings == 3
    assert question(report, "tags[spam]").ratings == 1
    assert question(report, "tags[spam]").invalid_ratings == 3
    assert [q.question for q in report.questions] == [
        "rating",
        "tags[spam]",
        "tags[toxic]",
        "tags[off]",
    ]
    as_json(report)


def test_multiple_labels_are_one_yes_no_question_per_option() -> None:
    ratings = [
        Rating("i1", "a", "tags", ("spam", "toxic")),
        Rating("i1", "b", "tags", ("spam",)),
        Rating("i2", "a", "tags", ()),
        Rating("i2", "b", "tags", ("off",)),
    ]
    gold = {"i1": {"tags": ("spam",)}, "i2": {"tags": ()}}
    report = compute_agreement(ratings, questions=[TAGS], gold=gold)
    spam = question(report, "tags[spam]")
    assert (spam.option, spam.kind, spam.level) == ("spam", QuestionKind.labels, Level.nominal)
    assert spam.observed_agreement.value == 1.0
    assert question(report, "tags[toxic]").observed_agreement.value == 0.5
    assert question(report, "tags[off]").observed_agreement.value == 0.5
    # Gold: every rating of a gold item counts, per option.
    assert (spam.gold.items, spam.gold.reviews, spam.gold.correct) == (2, 4, 4)
    assert question(report, "tags[toxic]").gold.correct == 3


def test_the_per_reviewer_report() -> None:
    questions = [DECISION, RATING]
    answers = {
        # item: {reviewer: (decision, rating)}
        "i1": {"ann": ("approve", 5), "bob": ("approve", 4), "cid": ("reject", 2)},
        "i2": {"ann": ("reject", 1), "bob": ("reject", 1)},
        "i3": {"ann": ("approve", 3), "cid": ("approve", 3)},
        "i4": {"bob": ("reject", 2)},
    }
    ratings = [
        Rating(item, reviewer, name, value)
        for item, by_reviewer in answers.items()
        for reviewer, pair in by_reviewer.items()
        for name, value in zip(("decision", "rating"), pair, strict=True)
    ]
    gold = {"i1": {"decision": "approve", "rating": 5}, "i4": {"decision": "approve"}}
    final = {"i1": "approve", "i2": "reject", "i3": "approve", "i4": "bogus"}
    report = compute_agreement(ratings, questions=questions, gold=gold, final_decisions=final)
    assert [r.reviewer_id for r in report.reviewers] == ["ann", "bob", "cid"]
    ann, bob, cid = report.reviewers
    assert (ann.reviews, ann.approved, ann.rejected) == (3, 2, 1)
    assert (bob.reviews, bob.approved, bob.rejected) == (3, 1, 2)
    ann_decision = ann.questions[0]
    # ann's pairs: i1 with bob (agree) and cid (disagree), i2 with bob, i3 with cid (agree).
    assert ann_decision.compared == 4
    assert ann_decision.observed_agreement.value == 0.75
    assert (ann_decision.gold.items, ann_decision.gold.correct) == (1, 1)
    assert (bob.questions[0].gold.items, bob.questions[0].gold.correct) == (2, 1)
    assert bob.questions[0].gold.value == 0.5
    assert (cid.questions[0].gold.correct, cid.questions[0].gold.value) == (0, 0.0)
    assert ann.questions[1].gold.correct == 1
    assert bob.questions[1].gold.correct == 0
    # The final decision of i4 is not a decision: it is left out.
    assert (ann.final_decision.items, ann.final_decision.matching) == (3, 3)
    assert (bob.final_decision.items, bob.final_decision.matching) == (2, 2)
    assert (cid.final_decision.items, cid.final_decision.value) == (2, 0.5)

    summary = question(report, "decision")
    assert (summary.items, summary.items_compared, summary.reviewers) == (4, 3, 3)
    assert (summary.gold.items, summary.gold.reviews, summary.gold.correct) == (2, 4, 2)
    as_json(report)


def test_a_schema_without_a_decision_question_still_reports() -> None:
    ratings = [Rating("i1", "a", "rating", 3), Rating("i1", "b", "rating", 3)]
    report = compute_agreement(ratings, questions=[RATING], final_decisions={"i1": "approve"})
    for reviewer in report.reviewers:
        assert (reviewer.approved, reviewer.rejected) == (0, 0)
        assert reviewer.final_decision.reason is NullReason.no_final_decision


def test_min_shared_items_must_be_positive() -> None:
    with pytest.raises(ValueError, match="min_shared_items"):
        compute_agreement([], questions=[DECISION], min_shared_items=0)


def test_a_reviews_answers_become_its_ratings() -> None:
    reviews = [
        ("i1", "a", {"decision": "approve", "rating": 4, "comment": "good", "tags": ["spam"]}),
        ("i1", "b", {"decision": "reject", "rating": 4, "tags": []}),
    ]
    ratings = [r for item, who, answers in reviews for r in ratings_of(item, who, answers)]
    assert ratings[0] == Rating("i1", "a", "decision", "approve")
    report = compute_agreement(ratings, questions=[DECISION, RATING, COMMENT, TAGS])
    assert report.rating_count == 6
    assert report.ignored_ratings == 1
    assert question(report, "decision").observed_agreement.value == 0.0
    assert question(report, "rating").observed_agreement.value == 1.0
    assert question(report, "tags[spam]").observed_agreement.value == 0.0
