"""Full-text search over samples: one query syntax, the index each store has for it.

SQLite: an FTS5 table with external content (``samples_fts``, rowid = ``samples.seq``) kept
in sync by triggers. PostgreSQL: a stored generated ``tsvector`` column with a GIN index.
Both index ``samples.text``, which `nlp.canonical.search_text` wrote as words of letters
and digits, so FTS5's ``unicode61`` tokenizer and PostgreSQL's ``simple`` configuration see
the same words; queries are folded the same way before they reach either.

The syntax (`parse_search`): plain words, all required; ``"quoted phrases"``, words next to
each other in this order; ``-word`` or ``-"phrase"`` excludes. Case, accents' composition
and punctuation are folded as in the text, so ``e-mail`` is the phrase ``"e mail"``. At
least one word or phrase must be required.

These objects live outside `schema.metadata` (SQLAlchemy has no notion of them): they are
created here on a new store and by migration 0008, and `is_search_object` keeps them out of
schema comparisons. An SQLite "batch" migration that rebuilds ``samples`` drops the
triggers with the old table: such a migration must create them again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, func, literal_column, select, table
from sqlalchemy.engine import Connection

from datamill.errors import InvalidRequest
from datamill.nlp.canonical import search_words
from datamill.storage.database import Dialect
from datamill.storage.schema import samples

SQLITE_SEARCH_DDL = (
    "CREATE VIRTUAL TABLE samples_fts USING fts5(text, content='samples', "
    "content_rowid='seq', tokenize='unicode61 remove_diacritics 0')",
    "CREATE TRIGGER samples_fts_insert AFTER INSERT ON samples BEGIN "
    "INSERT INTO samples_fts (rowid, text) VALUES (new.seq, new.text); END",
    # External content: FTS5 removes a row's words given the text it indexed.
    "CREATE TRIGGER samples_fts_delete AFTER DELETE ON samples BEGIN "
    "INSERT INTO samples_fts (samples_fts, rowid, text) VALUES ('delete', old.seq, old.text); "
    "END",
    "CREATE TRIGGER samples_fts_update AFTER UPDATE OF text ON samples BEGIN "
    "INSERT INTO samples_fts (samples_fts, rowid, text) VALUES ('delete', old.seq, old.text); "
    "INSERT INTO samples_fts (rowid, text) VALUES (new.seq, new.text); END",
)

POSTGRES_SEARCH_DDL = (
    "ALTER TABLE samples ADD COLUMN search_vector tsvector "
    "GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, \"text\")) STORED",
    "CREATE INDEX ix_samples_search ON samples USING gin (search_vector)",
)

# FTS5 keeps an index in shadow tables named after its own.
SQLITE_SEARCH_TABLES = frozenset(
    {
        "samples_fts",
        "samples_fts_data",
        "samples_fts_idx",
        "samples_fts_docsize",
        "samples_fts_config",
    }
)
_POSTGRES_SEARCH_NAMES = frozenset({"search_vector", "ix_samples_search"})

MAX_QUERY_CHARS = 1000
MAX_QUERY_TERMS = 32


def create_search_objects(sync: Connection) -> None:
    """Create the store's search index over ``samples`` (which must exist)."""
    ddl = POSTGRES_SEARCH_DDL if sync.dialect.name == "postgresql" else SQLITE_SEARCH_DDL
    for statement in ddl:
        sync.exec_driver_sql(statement)


def search_tables(dialect: str) -> frozenset[str]:
    """The tables the search index adds to the store."""
    return SQLITE_SEARCH_TABLES if dialect == "sqlite" else frozenset()


def is_search_object(name: str | None, type_: str) -> bool:
    """Whether a reflected table, column or index belongs to the search index."""
    if name is None:
        return False
    if type_ == "table":
        return name in SQLITE_SEARCH_TABLES
    return type_ in {"column", "index"} and name in _POSTGRES_SEARCH_NAMES


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A parsed query: phrases (word tuples) required, and phrases excluded. A single word
    is a phrase of one."""

    required: tuple[tuple[str, ...], ...]
    excluded: tuple[tuple[str, ...], ...] = ()

    def fts5(self) -> str:
        """The query in FTS5's MATCH syntax; every phrase quoted, so nothing is an operator."""
        query = "(" + " AND ".join(_quoted(phrase) for phrase in self.required) + ")"
        return "".join([query, *(f" NOT {_quoted(phrase)}" for phrase in self.excluded)])

    def websearch(self) -> str:
        """The query for PostgreSQL's ``websearch_to_tsquery``: quoted phrases again, so
        ``or`` is a word there too."""
        terms = [_quoted(phrase) for phrase in self.required]
        terms += [f"-{_quoted(phrase)}" for phrase in self.excluded]
        return " ".join(terms)


def _quoted(phrase: tuple[str, ...]) -> str:
    # Words are letters and digits only: no quote inside needs escaping.
    return '"' + " ".join(phrase) + '"'


# A term: an optional minus, then a quoted phrase (closing quote optional) or a bare word.
_TERM = re.compile(r'(-?)(?:"([^"]*)"?|([^\s"]+))')


def parse_search(query: str, *, param: str = "q") -> SearchQuery:
    """Parse the search syntax; a 400 naming ``param`` when nothing is left to look for."""
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidRequest(
            f"the search query is longer than {MAX_QUERY_CHARS} characters",
            param=param,
            code="invalid_search",
        )
    required: list[tuple[str, ...]] = []
    excluded: list[tuple[str, ...]] = []
    for match in _TERM.finditer(query):
        minus, quoted, bare = match.groups()
        words = tuple(search_words(quoted if quoted is not None else bare))
        if not words:
            continue  # punctuation only: nothing the index holds
        (excluded if minus else required).append(words)
    if len(required) + len(excluded) > MAX_QUERY_TERMS:
        raise InvalidRequest(
            f"the search query has more than {MAX_QUERY_TERMS} words and phrases",
            param=param,
            code="invalid_search",
        )
    if not required:
        raise InvalidRequest(
            "the search query needs at least one word or phrase to look for "
            "(exclusions alone match nothing)",
            param=param,
            code="invalid_search",
        )
    return SearchQuery(tuple(required), tuple(excluded))


def search_condition(dialect: Dialect, query: SearchQuery) -> ColumnElement[bool]:
    """A WHERE clause on ``samples`` keeping the rows that match ``query``."""
    if dialect == "postgresql":
        tsquery = func.websearch_to_tsquery(
            literal_column("'simple'::regconfig"), query.websearch()
        )
        return literal_column("samples.search_vector").op("@@", is_comparison=True)(tsquery)
    index: ColumnElement[Any] = literal_column("samples_fts")
    matching: Select[Any] = select(literal_column("rowid")).select_from(table("samples_fts"))
    return samples.c.seq.in_(matching.where(index.op("MATCH", is_comparison=True)(query.fts5())))
