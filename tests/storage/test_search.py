"""Full-text search: the query syntax, and the same matches on SQLite (FTS5) and PostgreSQL
(tsvector) for the same queries."""

from __future__ import annotations

import pytest

from datamill.errors import InvalidRequest
from datamill.nlp.canonical import MAX_SEARCH_WORDS, search_text
from datamill.protocol.datasets import Visibility
from datamill.storage import samples as repo
from datamill.storage.database import Database
from datamill.storage.samples import NewSample, SampleFilter
from datamill.storage.search import SearchQuery, parse_search
from tests.storage.test_samples import insert, new_dataset

CORPUS = {
    "prime": {"q": "What is a prime number?", "a": "A number with exactly two divisors."},
    "primes": {"q": "List the PRIME numbers below 10", "a": "2, 3, 5 and 7."},
    "minister": {"q": "Who was the first prime minister?", "a": "Robert Walpole, in 1721."},
    "email": {"q": "How do I write an e-mail?", "a": "Open your mail client; write."},
    "french": {"q": "Où est l'école?", "a": "L'ÉCOLE est à côté de la gare."},
    "or": {"q": "Tea or coffee?", "a": "Either, or neither."},
    "code": {"q": "What does snake_case mean?", "a": "words_joined_by_underscores, v2.1"},
    "nested": {"turns": [{"role": "user", "text": "number please"}, {"score": 42}]},
}

CASES = [
    ("prime", {"prime", "primes", "minister"}),
    ("PRIME", {"prime", "primes", "minister"}),
    ("prime number", {"prime"}),  # every word required
    ('"prime number"', {"prime"}),
    ('"prime numbers"', {"primes"}),  # a phrase: adjacent, in order
    ('"number prime"', set()),
    ("prime -minister", {"prime", "primes"}),
    ('prime -"prime minister"', {"prime", "primes"}),
    ("prime -number -numbers", {"minister"}),
    ("e-mail", {"email"}),  # folded like the text: the phrase "e mail"
    ('"e mail"', {"email"}),
    ("mail", {"email"}),
    ("école", {"french"}),
    ("ÉCOLE", {"french"}),
    ("ecole", set()),  # accents are kept, on both stores
    ("or", {"or"}),  # a word, not an operator
    ("tea or", {"or"}),
    ("tea OR walpole", set()),
    ("AND", {"primes"}),  # a word too: "2, 3, 5 and 7"
    ("NOT", set()),
    ("snake case", {"code"}),
    ("underscores v2", {"code"}),
    ('"v2 1"', {"code"}),
    ("number", {"prime", "nested"}),
    ("42", {"nested"}),
    ("user", {"nested"}),  # string values are indexed...
    ("role", set()),  # ...keys are not
    ('"1721', {"minister"}),  # an unclosed quote runs to the end
    ("prime*", {"prime", "primes", "minister"}),  # no prefix search: '*' is punctuation
    ("nothing-like-this", set()),
]


@pytest.fixture
async def corpus(database: Database) -> tuple[Database, str, dict[str, str]]:
    dataset = await new_dataset(database)
    names = list(CORPUS)
    ids = await insert(database, dataset, [NewSample(content=CORPUS[name]) for name in names])
    return database, dataset, {sample_id: name for sample_id, name in zip(ids, names, strict=True)}


async def matches(corpus, query: str) -> set[str]:
    database, dataset, names = corpus
    records, _ = await repo.list_samples(
        database, dataset, SampleFilter(search=parse_search(query)), limit=100
    )
    return {names[record.id] for record in records}


async def test_queries_match_the_same_samples_on_both_stores(corpus):
    # One parametrized run per store; the expectations are the same for both.
    found = {query: await matches(corpus, query) for query, _ in CASES}

    assert found == dict(CASES)


async def test_deleted_samples_are_searchable_only_when_asked_for(corpus):
    database, dataset, names = corpus
    [prime] = [sample_id for sample_id, name in names.items() if name == "prime"]
    await repo.delete_samples(database, dataset, SampleFilter(ids=(prime,)), now=1)
    deleted = SampleFilter(search=parse_search("divisors"), visibility=Visibility.only)
    only, _ = await repo.list_samples(database, dataset, deleted)

    assert await matches(corpus, "divisors") == set()
    assert [record.id for record in only] == [prime]


async def test_the_index_follows_a_changed_text(corpus):
    # The review workflow will edit samples: the FTS5 triggers (or the generated column)
    # keep the index in step.
    from sqlalchemy import update

    from datamill.storage.schema import samples

    database, _, names = corpus
    [walpole] = [sample_id for sample_id, name in names.items() if name == "minister"]
    async with database.write() as conn:
        await conn.execute(
            update(samples)
            .where(samples.c.id == walpole)
            .values(text=search_text({"q": "Who was Pitt the Younger?"}))
        )

    assert await matches(corpus, "walpole") == set()
    assert await matches(corpus, "younger pitt") == {"minister"}


async def test_long_texts_are_indexed_up_to_the_word_limit(database: Database):
    dataset = await new_dataset(database)
    words = [f"w{i}" for i in range(MAX_SEARCH_WORDS + 100)]
    await insert(database, dataset, [NewSample(content={"text": " ".join(words)})])

    async def count(query: str) -> int:
        return await repo.count_samples(database, dataset, SampleFilter(search=parse_search(query)))

    assert await count(f'"w{MAX_SEARCH_WORDS - 2} w{MAX_SEARCH_WORDS - 1}"') == 1
    assert await count(f"w{MAX_SEARCH_WORDS}") == 0


def test_the_syntax_parses_words_phrases_and_exclusions():
    query = parse_search('Prime "Prime  Minister" -walpole -"e-mail" x_y ¡')

    assert query == SearchQuery(
        required=(("prime",), ("prime", "minister"), ("x", "y")),
        excluded=(("walpole",), ("e", "mail")),
    )
    assert query.fts5() == '("prime" AND "prime minister" AND "x y") NOT "walpole" NOT "e mail"'
    assert query.websearch() == '"prime" "prime minister" "x y" -"walpole" -"e mail"'


@pytest.mark.parametrize(
    "query", ["", "   ", "-excluded", '-"only this"', "!!! ???", "x" * 1001, " ".join("w" * 33)]
)
def test_a_query_with_nothing_to_look_for_is_refused_naming_q(query: str):
    with pytest.raises(InvalidRequest) as caught:
        parse_search(query)

    assert caught.value.param == "q"
    assert caught.value.code == "invalid_search"
