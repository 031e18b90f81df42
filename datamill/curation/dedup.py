"""Near-duplicate removal over a dataset: the whole of it, or the samples of an import, a
batch, a job or any filter.

The selected live samples are read in pages in creation order and go through one
`NearDuplicateIndex` (exact, lexical, then semantic with the content-token check of
`nlp.conflicts`); the earliest of each group is kept, so a later copy is the one deleted.
Live samples outside the selection are put in the index first, without being checked: the
selection is compared with them, and they are never deleted.

The index searches static vectors (`nlp.static_embeddings`) and asks the transformer only
about the pairs they find (`nlp.dedup`). Vectors of both come from `storage.embeddings` when
the sample's content was embedded before (by a generation job or an earlier run); the
others are computed (the static ones in batches, the transformer's when a pair needs them)
and stored. The models and the index run in worker threads (`asyncio.to_thread`), so a
long run never blocks the server's event loop.

Guarantees: a dry run changes nothing; otherwise the duplicates are soft-deleted with the
reason in their metadata (``metadata.dedup``: ``duplicate_of``, ``kind``, ``score``,
``threshold``) and `restore` brings them back. Running twice finds nothing new the second
time: deleted samples are not read again, and every kept one was kept before.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from datamill.curation.lookups import DatasetLookups
from datamill.protocol.datasets import SampleFilterBody, Visibility
from datamill.protocol.dedup import DedupDuplicate, DedupGroup, DedupReport, DedupRequest
from datamill.storage import samples as sample_repo
from datamill.storage.embeddings import SampleVectors, sample_vectors, store_confirmed
from datamill.storage.samples import SampleFilter, SampleRecord
from datamill.storage.schema import DEFAULT_PROJECT_ID

if TYPE_CHECKING:
    from datamill.nlp.dedup import DuplicateMatch, NearDuplicateIndex

# Samples read, embedded and decided at a time.
PAGE = 1024
# A progress callback: (samples done, samples to do).
Progress = Callable[[int, int], None]


class Deduplicating(DatasetLookups):
    async def dedup(
        self,
        dataset_id: str,
        request: DedupRequest,
        *,
        project_id: str = DEFAULT_PROJECT_ID,
        progress: Progress | None = None,
    ) -> DedupReport:
        """Find the near-duplicates among the samples ``request`` selects (and of the rest
        of the dataset), and unless it is a dry run, delete them. See the module."""
        from datamill.nlp.dedup import DEFAULT_THRESHOLD, NearDuplicateIndex
        from datamill.nlp.embeddings import shared_embedder
        from datamill.nlp.static_embeddings import shared_static_embedder

        await self._dataset(dataset_id, project_id)
        selection = self._selection(request)
        threshold = request.threshold if request.threshold is not None else DEFAULT_THRESHOLD
        index = NearDuplicateIndex(
            shared_static_embedder(), confirm=shared_embedder(), threshold=threshold
        )
        run = _Run(self, dataset_id, index)
        total = await sample_repo.count_samples(self._db, dataset_id, selection)
        if selection != SampleFilter():
            # The rest of the live dataset: compared with, never deleted.
            async for page in self._live_pages(dataset_id, SampleFilter()):
                others = [s for s in page if not await run.selected(s, selection)]
                await run.keep(others)
        done = 0
        groups: dict[str, list[DedupDuplicate]] = {}
        async for page in self._live_pages(dataset_id, selection):
            for sample, match in zip(page, await run.decide(page), strict=True):
                if match is not None:
                    groups.setdefault(match.key, []).append(
                        DedupDuplicate(
                            sample_id=sample.id, kind=match.kind.value, score=match.score
                        )
                    )
            done += len(page)
            if progress is not None:
                progress(done, total)
        duplicates = sum(len(found) for found in groups.values())
        deleted = 0
        if not request.dry_run and duplicates:
            reasons = {
                duplicate.sample_id: {
                    "duplicate_of": kept,
                    "kind": duplicate.kind,
                    "score": round(duplicate.score, 4),
                    "threshold": threshold,
                    "at": self._clock.now(),
                }
                for kept, found in groups.items()
                for duplicate in found
            }
            deleted = await sample_repo.delete_duplicates(
                self._db, dataset_id, reasons, now=self._clock.now()
            )
        return DedupReport(
            dataset_id=dataset_id,
            dry_run=request.dry_run,
            threshold=threshold,
            scanned=done,
            compared_with=run.kept_outside,
            duplicates=duplicates,
            deleted=deleted,
            embedded=run.embedded,
            reused=run.reused,
            confirmed=run.confirmed,
            groups=[DedupGroup(kept=kept, duplicates=found) for kept, found in groups.items()],
        )

    def _selection(self, request: DedupRequest) -> SampleFilter:
        fields = request.model_fields_set - {"dry_run", "threshold"}
        if not fields:
            return SampleFilter()
        body = SampleFilterBody(**{name: getattr(request, name) for name in fields})
        return self._body_filter(body)

    async def _live_pages(
        self, dataset_id: str, where: SampleFilter
    ) -> AsyncIterator[list[SampleRecord]]:
        """The live samples ``where`` selects, oldest first, a page at a time."""
        live = replace(where, visibility=Visibility.exclude)
        after: int | None = None
        while True:
            page, more = await sample_repo.list_samples(
                self._db, dataset_id, live, after_seq=after, limit=PAGE, order="asc"
            )
            if page:
                yield page
            if not more or not page:
                return
            after = page[-1].seq


class _Run:
    """One dedup run's index, and the vectors it read or computed."""

    def __init__(self, owner: Deduplicating, dataset_id: str, index: NearDuplicateIndex) -> None:
        self._owner = owner
        self._dataset_id = dataset_id
        self.index = index
        self.embedded = 0
        self.reused = 0
        self.confirmed = 0
        self._contents: dict[str, tuple[str, str]] = {}  # sample id -> (id, content hash)
        self.kept_outside = 0
        self._selected_ids: set[str] | None = None

    async def selected(self, sample: SampleRecord, where: SampleFilter) -> bool:
        """Whether ``sample`` is in the selection (read once, by id)."""
        if self._selected_ids is None:
            self._selected_ids = set()
            async for page in self._owner._live_pages(self._dataset_id, where):
                self._selected_ids.update(s.id for s in page)
        return sample.id in self._selected_ids

    async def keep(self, samples: list[SampleRecord]) -> None:
        if not samples:
            return
        found = await self._vectors(samples)
        await asyncio.to_thread(
            self.index.add_many,
            found.texts,
            [s.id for s in samples],
            vectors=found.vectors,
            confirmed=found.confirmed,
        )
        self.kept_outside += len(samples)

    async def decide(self, samples: list[SampleRecord]) -> list[DuplicateMatch | None]:
        found = await self._vectors(samples)
        decided = await asyncio.to_thread(
            self.index.check_and_add_many,
            found.texts,
            [s.id for s in samples],
            vectors=found.vectors,
            confirmed=found.confirmed,
        )
        await self._store_confirmed()
        return decided

    async def _vectors(self, samples: list[SampleRecord]) -> SampleVectors:
        found = await sample_vectors(
            self._owner._db,
            self.index.embedder,
            samples,
            now=self._owner._clock.now(),
            confirm=self.index.confirm,
        )
        self._contents.update((s.id, (s.id, s.content_hash)) for s in samples)
        self.embedded += found.embedded
        self.reused += found.reused
        return found

    async def _store_confirmed(self) -> None:
        """Store the transformer's vectors the index computed (a later run reads them)."""
        taken = self.index.take_confirmed()
        if taken and self.index.confirm is not None:
            self.confirmed += len(taken)
            await store_confirmed(
                self._owner._db,
                self.index.confirm,
                taken,
                self._contents,
                now=self._owner._clock.now(),
            )
