"""The generation loop: one job driven by one runner until its targets are met.

Each round, the runner (its worker holding the job's claim):

1. records the answers its batches have recorded so far (partial results): each is parsed,
   filtered (`quality`), checked against the near-duplicate index, and recorded with
   `storage.generation.record_outcomes`, whose transaction accepts a sample only while its
   cell is short (a target is never exceeded by a stored sample);
2. stops when every cell is full (completed), a budget is spent (budget_exhausted), or the
   job was stopped;
3. tops up the requests in flight: each short cell gets ``deficit / acceptance`` requests
   (the acceptance rate learned from the job's own answers), never more in flight than
   ``deficit x (1 + loop.overshoot_margin)``, in one internal batch (`BatchService`,
   idempotency key ``gen:<job>:<n>``) that shows in the batch list; candidates waiting for
   the LLM judge go out in a batch of their own.

A runner that dies leaves nothing half done: requests and outcomes are recorded in the
same transactions as their effects, a batch created but not yet recorded as the job's is
adopted by the next runner (its key names the job), and answers recorded while no runner
ran are used when one comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from datamill.clock import Clock, wait_event
from datamill.engine.files import FileService
from datamill.engine.service import BatchService
from datamill.errors import Conflict, DatamillError, StorageError
from datamill.events.publisher import EventPublisher
from datamill.events.topics import Topic
from datamill.generation.confined import CheckItem, RenderItem, check_all, render_all
from datamill.generation.grounding import Chunk, chunk_documents, chunks_for
from datamill.generation.prompts import (
    judge_body,
    judge_prompt,
    request_body,
    sample_prompt,
    variation,
)
from datamill.generation.quality import Rejection, Verdict, judge_score
from datamill.generation.spec import GenerationSpec, parse_spec
from datamill.nlp.canonical import normalized_hash, sample_text
from datamill.protocol.batches import BatchCreate, BatchOptions
from datamill.readiness import ReadinessRegistry
from datamill.render.generation import progress_event, status_event, stuck_event
from datamill.storage import embeddings as embedding_repo
from datamill.storage import generation as repo
from datamill.storage import samples as sample_repo
from datamill.storage.database import Database
from datamill.storage.requests import CLOSING_MESSAGES
from datamill.storage.samples import NewSample, SampleFilter

if TYPE_CHECKING:
    from datamill.nlp.dedup import NearDuplicateIndex

log = logging.getLogger("datamill.generation")

# Answers recorded per transaction.
PAGE = 500
_NO_VERDICT = frozenset({Rejection.not_sent.value, Rejection.surplus.value})
# Outcomes of a run that end the job (or find it stopped): each publishes its status.
_ENDED = frozenset({"completed", "budget_exhausted", "failed", "stopped"})


@dataclass(frozen=True, slots=True)
class RunnerOptions:
    poll: float = 0.25  # seconds between rounds when nothing happened
    stuck_after: float = 300.0  # no answer recorded for this long: reported stuck
    progress_interval: float = 0.5  # at most one progress event per this many seconds


@dataclass
class RunnerDeps:
    database: Database
    batches: BatchService
    files: FileService
    events: EventPublisher
    clock: Clock
    # Where a job that needs the embedding model says so (the readiness check `embeddings`).
    readiness: ReadinessRegistry | None = None


class JobRunner:
    """Drives one job (`run`) while its worker holds the job's claim; `stop()` ends the run
    at the next round, leaving the job running for another runner (or this one, later)."""

    spec: GenerationSpec  # read from the job when its run starts

    def __init__(
        self, deps: RunnerDeps, job: repo.JobRecord, worker_id: str, options: RunnerOptions
    ) -> None:
        self.deps = deps
        self.job = job
        self.worker_id = worker_id  # the worker whose claim on the job this run is
        self.options = options
        self._positions: dict[int, tuple[str, str]] = {}
        self._chunks: list[Chunk] = []
        self._index: NearDuplicateIndex | None = None
        # The index key of each candidate kept by the index, by request id, until its sample
        # is recorded and its vector stored under the sample's id.
        self._index_keys: dict[int, str] = {}
        # Index key -> (sample id, content hash) of the stored samples the index keeps: where
        # the transformer vectors it computes later are stored.
        self._stored_keys: dict[str, tuple[str, str]] = {}
        self._stopping = asyncio.Event()
        self._run_started = deps.clock.now()
        self._accepted_at_start = job.accepted
        self._last_progress_event = 0.0
        self._stuck_reported = False
        self._changed: set[tuple[str, str]] = set()
        self._answers = 0  # this run's answers with a verdict, and those accepted
        self._accepted = 0
        self._idle_answers = 0  # answers with a verdict since this run's last new sample
        self._qualities: dict[int, dict[str, Any]] = {}  # the spec's filters, dumped

    def stop(self) -> None:
        self._stopping.set()

    # -- the loop ---------------------------------------------------------------------------

    async def run(self) -> str:
        """Returns how the run ended: completed, budget_exhausted, stopped, released, lost,
        failed, or interrupted (the store failed: the job stays running and claimed, for the
        worker's supervisor to take again, or any worker once this one stops or dies)."""
        try:
            outcome = await self._run()
        except StorageError:
            # A restart or a failover of the store is not the job's fault.
            log.exception("generation job %s: the store failed; left running", self.job.id)
            return "interrupted"
        except Exception as exc:
            log.exception("generation job %s failed", self.job.id)
            await self._finish("failed", error=f"{type(exc).__name__}: {exc}"[:2000])
            outcome = "failed"
        await repo.release_job(
            self.deps.database,
            self.job.id,
            worker_id=self.worker_id,
            now=self.deps.clock.now(),
            outcome=outcome,
        )
        if outcome in _ENDED:
            # After the release: the event shows the job as it stays (no runner, its time).
            try:
                await publish_status(self.deps, self.job.id)
            except StorageError:
                log.exception("generation job %s: its status event was not published", self.job.id)
        return outcome

    async def _run(self) -> str:
        # Validating a spec parses its templates: up to seconds for a large one, so not
        # on the event loop; a stored spec that no longer validates fails the job.
        self.spec = await asyncio.to_thread(parse_spec, self.job.spec)
        self._chunks = chunk_documents(self.spec.grounding) if self.spec.grounding else []
        cells = await self._cells()
        self._positions = {c.position: (c.topic, c.sample_type) for c in cells}
        await self._adopt_orphans()
        await self._fill_index()
        await publish_status(self.deps, self.job.id)
        while True:
            if self._stopping.is_set():
                return "released"
            now = self.deps.clock.now()
            held = await repo.claimed_job(self.deps.database, self.job.id, worker_id=self.worker_id)
            if held is None:
                return await self._lost_or_stopped()
            self.job = held
            moved = await self._consume()
            cells = await self._cells()
            if all(c.accepted >= c.target for c in cells):
                await self._finish("completed")
                return "completed"
            exhausted = self._budget_spent(cells) or self._without_progress(cells)
            if exhausted is not None:
                # Stop sending; what is in flight still counts, then the job ends.
                await self._cancel_batches()
                if not any(c.in_flight for c in cells):
                    await self._finish("budget_exhausted", stop_reason=exhausted)
                    return "budget_exhausted"
            else:
                await self._issue(cells)
            self._check_stuck(now)
            if not moved:
                await wait_event(self.deps.clock, self._stopping, self.options.poll)

    async def _lost_or_stopped(self) -> str:
        job = await repo.get_job(self.deps.database, self.job.id)
        if job is not None and job.status != repo.RUNNABLE:
            await self._cancel_batches()
            self.job = job
            return "stopped"
        return "lost"

    async def _finish(
        self, status: str, *, stop_reason: str | None = None, error: str | None = None
    ) -> None:
        now = self.deps.clock.now()
        if status != "failed":
            await self._cancel_batches()
        job = await repo.finish_job(
            self.deps.database, self.job.id, status, now=now, stop_reason=stop_reason, error=error
        )
        if job is not None:
            self.job = job
        if self._changed:
            await self._publish_progress(force=True)  # the last answers' cells

    # -- answers ----------------------------------------------------------------------------

    async def _consume(self) -> bool:
        """Record every answer recorded so far; True when there were any."""
        moved = False
        while True:
            answers = await repo.new_answers(self.deps.database, self.job.id, limit=PAGE)
            if not answers:
                break
            moved = True
            cells = {(c.topic, c.sample_type): c for c in await self._cells()}
            outcomes = await self._outcomes(answers, cells)
            recorded = await repo.record_outcomes(
                self.deps.database,
                job_id=self.job.id,
                dataset_id=self.job.dataset_id,
                outcomes=outcomes,
                now=self.deps.clock.now(),
            )
            self._changed.update((o.topic, o.sample_type) for o in outcomes)
            self._learn(recorded)
            await self._store_vectors(outcomes, recorded)
            if len(answers) < PAGE:
                break
        if moved:
            await self._publish_progress()
        return moved

    async def _outcomes(
        self, answers: Sequence[repo.Answer], cells: dict[tuple[str, str], repo.CellRecord]
    ) -> list[repo.Outcome]:
        outcomes: list[repo.Outcome] = []
        ready: list[tuple[repo.Answer, dict[str, Any]]] = []
        verdicts, unchecked = await self._verdicts(answers)
        for answer in answers:
            if answer.request_id in unchecked:
                continue  # left new: checked at the next pass
            outcome, candidate = self._judge_answer(answer, verdicts.get(answer.request_id))
            if outcome is not None:
                outcomes.append(outcome)
            elif candidate is not None:
                ready.append((answer, candidate))
        room = {key: cell.deficit for key, cell in cells.items()}
        keep: list[tuple[repo.Answer, dict[str, Any]]] = []
        for answer, candidate in ready:
            key = (answer.topic, answer.sample_type)
            if room.get(key, 0) <= 0:
                outcomes.append(self._outcome(answer, "reject", reason=Rejection.surplus))
                continue
            room[key] -= 1
            keep.append((answer, candidate))
        matches = await self._near_duplicates(keep)
        for (answer, candidate), match in zip(keep, matches, strict=True):
            if match is not None:
                reason = Rejection.duplicate if match == "exact" else Rejection.near_duplicate
                outcomes.append(self._outcome(answer, "reject", reason=reason))
                continue
            outcomes.append(self._outcome(answer, "accept", sample=self._sample(answer, candidate)))
        return outcomes

    async def _verdicts(
        self, answers: Sequence[repo.Answer]
    ) -> tuple[dict[int, Verdict], set[int]]:
        """The local filters' verdicts on the answers to sample requests, by request id:
        run apart (`confined`), since the spec's schema patterns and regexes are untrusted;
        and the answers left unchecked this time (`check_all`)."""
        asked: list[int] = []
        items: list[CheckItem] = []
        for answer in answers:
            if answer.kind == "judge" or not answer.ok or answer.body is None:
                continue
            try:
                body = orjson.loads(answer.body)
            except orjson.JSONDecodeError:
                continue
            sample_type = self.spec.sample_type(answer.sample_type)
            quality = self.spec.quality_for(sample_type)
            items.append(CheckItem(body, sample_type.output_schema, self._dumped(quality)))
            asked.append(answer.request_id)
        verdicts = await check_all(items)
        checked = {rid: v for rid, v in zip(asked, verdicts, strict=True) if v is not None}
        return checked, set(asked) - set(checked)

    def _dumped(self, quality: Any) -> dict[str, Any]:
        key = id(quality)
        if key not in self._qualities:
            self._qualities[key] = quality.model_dump(mode="json")
        return self._qualities[key]

    def _judge_answer(
        self, answer: repo.Answer, verdict: Verdict | None
    ) -> tuple[repo.Outcome | None, dict[str, Any] | None]:
        """An outcome now (rejected, or sent to the judge), or a candidate to accept."""
        if not answer.ok or answer.body is None:
            # A request its batch closed before sending it is no verdict on the prompt.
            closed = answer.error_code in CLOSING_MESSAGES or answer.error_code == "no_result"
            reason = Rejection.not_sent if closed else Rejection.request_failed
            return self._outcome(answer, "reject", reason=reason), None
        try:
            body = orjson.loads(answer.body)
        except orjson.JSONDecodeError:
            return self._outcome(answer, "reject", reason=Rejection.unparseable), None
        sample_type = self.spec.sample_type(answer.sample_type)
        quality = self.spec.quality_for(sample_type)
        if answer.kind == "judge":
            assert answer.candidate is not None
            score, _ = judge_score(body)
            assert quality.judge is not None
            if score is None or score < quality.judge.threshold:
                return self._outcome(answer, "reject", reason=Rejection.judge), None
            candidate = dict(answer.candidate)
            candidate["provenance"] = {**candidate.get("provenance", {}), "judge_score": score}
            return None, candidate
        assert verdict is not None
        if verdict.sample is None:
            return self._outcome(answer, "reject", reason=verdict.reason), None
        candidate = {"content": verdict.sample, "provenance": self._provenance(answer)}
        if quality.judge is not None:
            return self._outcome(answer, "judge", candidate=candidate), None
        return None, candidate

    def _provenance(self, answer: repo.Answer) -> dict[str, Any]:
        prompt = None
        with contextlib.suppress(orjson.JSONDecodeError, KeyError, IndexError, TypeError):
            prompt = orjson.loads(answer.request_body)["messages"][-1]["content"]
        return {
            "job_id": self.job.id,
            "spec": self.job.name,
            "spec_hash": self.job.spec_hash,
            "spec_version": self.job.spec_version,
            "template": answer.sample_type,
            "prompt": prompt,
            "deployment": answer.deployment,
            "batch_id": answer.batch_id,
            "request_id": answer.custom_id,
            "model": answer.model,
            "input_tokens": answer.input_tokens,
            "output_tokens": answer.output_tokens,
            "cost": answer.cost,
        }

    def _outcome(
        self,
        answer: repo.Answer,
        action: str,
        *,
        reason: Rejection | None = None,
        sample: NewSample | None = None,
        candidate: dict[str, Any] | None = None,
    ) -> repo.Outcome:
        return repo.Outcome(
            request_id=answer.request_id,
            topic=answer.topic,
            sample_type=answer.sample_type,
            action=action,
            cost=answer.cost,
            reason=reason.value if reason is not None else None,
            sample=sample,
            candidate=candidate,
        )

    def _sample(self, answer: repo.Answer, candidate: dict[str, Any]) -> NewSample:
        provenance = dict(candidate.get("provenance") or {})
        if answer.kind == "judge":
            # The sample's own call and its judge's: both are what the sample cost.
            provenance["cost"] = float(provenance.get("cost") or 0) + answer.cost
        content = candidate["content"]
        return NewSample(
            content=content,
            topic=answer.topic,
            sample_type=answer.sample_type,
            model=provenance.get("model") or self.spec.model,
            provenance=provenance,
            content_hash=normalized_hash(content),
        )

    async def _near_duplicates(
        self, candidates: Sequence[tuple[repo.Answer, dict[str, Any]]]
    ) -> list[str | None]:
        """Per candidate: None, or the kind of duplicate it is of a kept sample (or of an
        earlier candidate). The kept ones join the index."""
        if self._index is None or not candidates:
            return [None] * len(candidates)
        texts = [sample_text(c["content"]) for _, c in candidates]
        keys = [secrets.token_hex(8) for _ in candidates]
        matches = await self._index.acheck_and_add_many(texts, keys)
        for (answer, _), key, match in zip(candidates, keys, matches, strict=True):
            if match is None:
                self._index_keys[answer.request_id] = key
        return [None if m is None else str(m.kind) for m in matches]

    async def _store_vectors(
        self, outcomes: Sequence[repo.Outcome], recorded: Sequence[repo.Recorded]
    ) -> None:
        """Store the vectors of the samples just accepted (a resumed job reads them back
        instead of running the model); forget the index keys of the others."""
        if self._index is None:
            return
        hashes = {o.request_id: o.sample.content_hash for o in outcomes if o.sample is not None}
        keys: list[str] = []
        rows: list[tuple[str, str]] = []
        for outcome in recorded:
            key = self._index_keys.pop(outcome.request_id, None)
            content_hash = hashes.get(outcome.request_id)
            if key is None or outcome.result != "accepted" or outcome.sample_id is None:
                continue
            if content_hash is None:
                continue
            keys.append(key)
            rows.append((outcome.sample_id, content_hash))
        if keys:
            vectors = self._index.vectors_of(keys)
            await embedding_repo.store_vectors(
                self.deps.database,
                [
                    embedding_repo.StoredVector(sample_id, content_hash, vector)
                    for (sample_id, content_hash), vector in zip(rows, vectors, strict=True)
                ],
                model=self._index.embedder.name,
                now=self.deps.clock.now(),
            )
            self._stored_keys.update(zip(keys, rows, strict=True))
        await self._store_confirmed()

    async def _store_confirmed(self) -> None:
        """Store the transformer vectors the index computed for stored samples."""
        if self._index is None or self._index.confirm is None:
            return
        taken = self._index.take_confirmed()
        if taken:
            await embedding_repo.store_confirmed(
                self.deps.database,
                self._index.confirm,
                taken,
                self._stored_keys,
                now=self.deps.clock.now(),
            )

    async def _fill_index(self) -> None:
        if not self.spec.dedup.near:
            return
        from datamill.nlp.dedup import NearDuplicateIndex
        from datamill.nlp.embeddings import check_shared_model, shared_embedder
        from datamill.nlp.static_embeddings import shared_static_embedder

        if self.deps.readiness is not None:
            self.deps.readiness.register("embeddings", check_shared_model)
        self._index = NearDuplicateIndex(
            shared_static_embedder(),
            confirm=shared_embedder(),
            threshold=self.spec.dedup.threshold,
            lexical_threshold=self.spec.dedup.lexical_threshold,
        )
        async for page in self._dataset_pages():
            await fill_from_store(self.deps.database, self._index, page, now=self.deps.clock.now())
            self._stored_keys.update((s.id, (s.id, s.content_hash)) for s in page)

    async def _dataset_pages(self) -> AsyncIterator[list[sample_repo.SampleRecord]]:
        after: int | None = None
        while True:
            page, more = await sample_repo.list_samples(
                self.deps.database,
                self.job.dataset_id,
                SampleFilter(),
                after_seq=after,
                limit=1000,
                order="asc",
            )
            if page:
                yield page
            if not more or not page:
                return
            after = page[-1].seq

    # -- requests ---------------------------------------------------------------------------

    def _learn(self, recorded: Sequence[repo.Recorded]) -> None:
        """Count this run's verdicts: answers sent to the judge, surplus and requests never
        sent say nothing about how often an answer is good."""
        for outcome in recorded:
            if outcome.result in ("stale", "judge", "surplus") or outcome.reason in _NO_VERDICT:
                continue
            self._answers += 1
            self._accepted += outcome.result == "accepted"
            self._idle_answers = 0 if outcome.result == "accepted" else self._idle_answers + 1

    def acceptance(self) -> float:
        """The share of this run's answers that became samples (a prior of one answer in
        one), never under ``loop.min_acceptance``."""
        rate = (self._accepted + 1) / (self._answers + 1)
        return max(self.spec.loop.min_acceptance, rate)

    def plan(
        self, cells: Sequence[repo.CellRecord], job: repo.JobRecord
    ) -> dict[tuple[str, str], int]:
        """How many requests each short cell gets now."""
        rate = self.acceptance()
        margin = self.spec.loop.overshoot_margin
        wanted: dict[tuple[str, str], int] = {}
        for cell in cells:
            if cell.deficit <= 0:
                continue
            ceiling = math.ceil(cell.deficit * (1 + margin))
            # Rounded, not ceiled: at 98% acceptance one short sample wants one request.
            count = min(max(1, round(cell.deficit / rate)), ceiling) - cell.in_flight
            if count > 0:
                wanted[(cell.topic, cell.sample_type)] = count
        return wanted

    async def _issue(self, cells: Sequence[repo.CellRecord]) -> None:
        await self._issue_judgements()
        wanted = self.plan(cells, self.job)
        if not wanted:
            return
        budget = self.spec.loop.batch_size
        if self.job.budget_requests is not None:
            budget = min(budget, self.job.budget_requests - self.job.requests)
        by_key = {(c.topic, c.sample_type): c for c in cells}
        renders: list[tuple[str, str, RenderItem]] = []
        issued: list[repo.IssuedRequest] = []
        # Spread the batch over the cells: one request per short cell per pass.
        next_index = {key: by_key[key].requests for key in wanted}
        while budget > 0 and any(wanted.values()):
            for key in list(wanted):
                if budget <= 0 or wanted[key] <= 0:
                    continue
                cell = by_key[key]
                index = next_index[key]
                next_index[key] += 1
                wanted[key] -= 1
                budget -= 1
                custom_id = f"g{cell.position}-{index}"
                renders.append((custom_id, cell.sample_type, self._prompt(cell, index)))
                issued.append(repo.IssuedRequest(cell.topic, cell.sample_type, "sample", custom_id))
        if issued:
            prompts = await render_all([item for _, _, item in renders])
            lines = [
                self._line(custom_id, request_body(self.spec, self.spec.sample_type(kind), prompt))
                for (custom_id, kind, _), prompt in zip(renders, prompts, strict=True)
            ]
            await self._submit(lines, issued, judge_rows=[])

    async def _issue_judgements(self) -> None:
        queued = await repo.queued_judgements(
            self.deps.database, self.job.id, self.spec.loop.batch_size
        )
        if not queued:
            return
        renders = [
            judge_prompt(self.spec, self.spec.sample_type(kind), topic, candidate["content"])
            for _, topic, kind, candidate in queued
        ]
        prompts = await render_all(renders)
        lines = []
        rows = []
        for (request_id, _, kind, _), prompt in zip(queued, prompts, strict=True):
            custom_id = f"j{request_id}"
            body = judge_body(self.spec, self.spec.sample_type(kind), prompt)
            lines.append(self._line(custom_id, body))
            rows.append((request_id, custom_id))
        await self._submit(lines, [], judge_rows=rows)

    def _prompt(self, cell: repo.CellRecord, index: int) -> RenderItem:
        sample_type = self.spec.sample_type(cell.sample_type)
        name = f"{cell.topic}|{cell.sample_type}"
        chosen = variation(name, index, self.job.id)
        chunks: list[Chunk] = []
        if self.spec.grounding is not None:
            chunks = chunks_for(
                self._chunks, self.spec.grounding.chunks_per_prompt, cell=name, index=index
            )
        return sample_prompt(sample_type, cell.topic, chunks, chosen)

    @staticmethod
    def _line(custom_id: str, body: dict[str, Any]) -> bytes:
        return (
            orjson.dumps(
                {
                    "custom_id": custom_id,
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": body,
                }
            )
            + b"\n"
        )

    async def _submit(
        self,
        lines: list[bytes],
        issued: list[repo.IssuedRequest],
        *,
        judge_rows: list[tuple[int, str]],
    ) -> None:
        data = b"".join(lines)

        async def content() -> AsyncIterator[bytes]:
            yield data

        key = f"gen:{self.job.id}:{secrets.token_hex(8)}"
        file = await self.deps.files.upload(
            content(),
            filename=f"{self.job.name}.generation.jsonl",
            purpose="batch",
            project_id=self.job.project_id,
        )
        remaining = None
        if self.job.budget_usd is not None:
            remaining = max(self.job.budget_usd - self.job.cost, 1e-9)
        batch = await self.deps.batches.create(
            BatchCreate(
                input_file_id=file.id,
                endpoint="/v1/chat/completions",
                completion_window="24h",
                metadata={"datamill_generation_job": self.job.id},
                datamill=BatchOptions(budget_usd=remaining),
            ),
            project_id=self.job.project_id,
            idempotency_key=key,
        )
        await repo.add_batch_requests(
            self.deps.database, self.job.id, batch.id, issued=issued, judged=judge_rows
        )

    async def _adopt_orphans(self) -> None:
        """Record as the job's the requests of batches a dead runner created but did not
        record (see the module's docstring)."""
        database = self.deps.database
        orphans = await repo.orphan_batches(database, self.job.id, project_id=self.job.project_id)
        for batch_id in orphans:
            # A batch's requests never change, and only this job's runner adopts its batches.
            custom_ids = await repo.batch_custom_ids(database, batch_id)
            issued = []
            judged = []
            for custom_id in custom_ids:
                if custom_id.startswith("j"):
                    judged.append((int(custom_id[1:]), custom_id))
                    continue
                position = int(custom_id[1:].split("-")[0])
                topic, sample_type = self._positions[position]
                issued.append(repo.IssuedRequest(topic, sample_type, "sample", custom_id))
            await repo.add_batch_requests(
                database, self.job.id, batch_id, issued=issued, judged=judged
            )
            log.info(
                "job %s: adopted batch %s (%d requests)", self.job.id, batch_id, len(custom_ids)
            )

    async def _cancel_batches(self) -> None:
        batch_ids = await repo.open_batches(self.deps.database, self.job.id)
        for batch_id in batch_ids:
            with contextlib.suppress(Conflict, DatamillError):
                await self.deps.batches.cancel(batch_id, project_id=self.job.project_id)

    # -- budgets, progress and events -------------------------------------------------------

    def _budget_spent(self, cells: Sequence[repo.CellRecord]) -> str | None:
        job = self.job
        if job.budget_usd is not None and job.cost >= job.budget_usd:
            return "budget_usd"
        if job.budget_requests is not None and job.requests >= job.budget_requests:
            return "budget_requests"
        if job.budget_seconds is not None:
            running = job.elapsed + (self.deps.clock.now() - self._run_started)
            if running >= job.budget_seconds:
                return "budget_seconds"
        return None

    def _without_progress(self, cells: Sequence[repo.CellRecord]) -> str | None:
        """``no_progress`` once ``loop.max_idle_rounds`` rounds' worth of answers in a row
        (a round: what one top-up sends, ``ceil(deficit x (1 + overshoot_margin))`` over
        the short cells, at most ``batch_size``) brought no new sample: a model that only
        repeats itself, or a filter nothing passes, would otherwise run for ever."""
        loop = self.spec.loop
        if loop.max_idle_rounds == 0:
            return None
        wanted = sum(
            math.ceil(c.deficit * (1 + loop.overshoot_margin)) for c in cells if c.deficit > 0
        )
        round_size = max(1, min(loop.batch_size, wanted))
        return "no_progress" if self._idle_answers >= loop.max_idle_rounds * round_size else None

    async def _cells(self) -> list[repo.CellRecord]:
        return await repo.list_cells(self.deps.database, self.job.id)

    def _check_stuck(self, now: float) -> None:
        last = max(self.job.progress_at or 0.0, self._run_started)
        stuck = now - last > self.options.stuck_after
        if stuck and not self._stuck_reported:
            self._stuck_reported = True
            self.deps.events.publish(
                Topic.generation,
                stuck_event(
                    self.job, since=last, message=f"no answer recorded for {now - last:.0f} s"
                ),
                project_id=self.job.project_id,
            )
        elif not stuck:
            self._stuck_reported = False

    def eta(self, job: repo.JobRecord, target: int) -> float | None:
        """Seconds to go at this run's pace of accepted samples; None before the first."""
        ran = self.deps.clock.now() - self._run_started
        done = job.accepted - self._accepted_at_start
        if done <= 0 or ran <= 0:
            return None
        return max(0.0, target - job.accepted) / (done / ran)

    async def _publish_progress(self, *, force: bool = False) -> None:
        now = self.deps.clock.now()
        if not force and now - self._last_progress_event < self.options.progress_interval:
            return
        self._last_progress_event = now
        found = await repo.get_job_with_cells(self.deps.database, self.job.id)
        if found is None:
            return
        job, cells = found
        self.job = job
        changed = [c for c in cells if (c.topic, c.sample_type) in self._changed]
        self._changed.clear()
        self.deps.events.publish(
            Topic.generation,
            progress_event(job, cells, changed, self.eta(job, sum(c.target for c in cells))),
            project_id=job.project_id,
        )


async def fill_from_store(
    database: Database,
    index: NearDuplicateIndex,
    samples: Sequence[sample_repo.SampleRecord],
    *,
    now: float,
) -> None:
    """Keep ``samples`` in ``index`` under their ids: the vectors stored for their
    contents are read back (the confirming model's too), only the others are embedded (and
    then stored)."""
    found = await embedding_repo.sample_vectors(
        database, index.embedder, samples, now=now, confirm=index.confirm
    )
    await asyncio.to_thread(
        index.add_many,
        found.texts,
        [s.id for s in samples],
        vectors=found.vectors,
        confirmed=found.confirmed,
    )


async def publish_status(deps: RunnerDeps, job_id: str) -> None:
    """Publish the job's ``status`` event: the job as `GET /api/generation/jobs/{job_id}`
    returns it, read now."""
    found = await repo.get_job_with_cells(deps.database, job_id)
    if found is not None:
        deps.events.publish(Topic.generation, status_event(*found), project_id=found[0].project_id)
