"""The hub: one reader of the events table per process, fanning each new event out to every
subscriber in memory (50 dashboards are one reader, not 50).

At most ``max_subscribers`` streams are served at once (`subscribe` refuses more with a 503),
and a resuming stream is replayed at most ``max_replay`` events, yielding to the event loop
as it goes, then told to reset: a crowd of reconnecting clients cannot starve the engine.

It reads only while someone subscribes. It is woken by this process's publisher after each
write, on PostgreSQL by ``NOTIFY`` from any process (a ``LISTEN`` connection), and polls
every ``poll_interval`` seconds otherwise (SQLite shared with a `batch run` or a worker in
another process; a lost ``LISTEN`` connection).

`stream()` is one subscriber's server-sent events: from a ``Last-Event-ID`` it replays the
events after it from the table, then follows with the live ones, each exactly once and in id
order (the table shows events in id order only, see `storage.events`). A subscriber that
falls too far behind is ended; its client reconnects with its last id and is replayed the
rest from the table, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from dataclasses import dataclass

import orjson

from datamill.clock import Clock, SystemClock, wait_event
from datamill.errors import ServerBusy
from datamill.storage import events as event_repo
from datamill.storage.database import Database
from datamill.storage.events import EventListener, EventRow

log = logging.getLogger("datamill.events")

PING = b": ping\n\n"
_PAGE = 500
_YIELD_EVERY = 100  # replayed frames between two turns of the event loop
RETRY_AFTER = 5  # seconds a refused client is asked to wait


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events a subscriber wants: these topics and batches (any when None), of this
    project and shared ones (every project's when None)."""

    topics: frozenset[str] | None = None
    batch_ids: frozenset[str] | None = None
    project_id: str | None = None

    def matches(self, row: EventRow) -> bool:
        return (
            (self.topics is None or row.topic in self.topics)
            and (self.batch_ids is None or row.batch_id in self.batch_ids)
            and (
                self.project_id is None
                or row.project_id is None
                or row.project_id == self.project_id
            )
        )


def encode_event(row: EventRow) -> bytes:
    """One server-sent event: ``id``, ``event`` (the topic) and ``data`` (the payload)."""
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (row.id, row.topic.encode(), row.payload.encode())


def _reset(reason: str, position: int, oldest: int | None) -> bytes:
    """The ``reset`` event: the client must reload its state; live events follow."""
    data = orjson.dumps({"reason": reason, "last_event_id": position, "oldest_event_id": oldest})
    return b"id: %d\nevent: reset\ndata: %s\n\n" % (position, data)


class _Subscriber:
    __slots__ = ("filter", "items", "limit", "overflowed", "ready")

    def __init__(self, event_filter: EventFilter, limit: int) -> None:
        self.filter = event_filter
        self.items: deque[tuple[int, bytes]] = deque()
        self.limit = limit
        self.overflowed = False
        self.ready = asyncio.Event()

    def push(self, event_id: int, frame: bytes) -> None:
        if self.overflowed:
            return
        if len(self.items) >= self.limit:
            # Too slow to keep up: it ends, and resumes from the table when it reconnects.
            self.overflowed = True
        else:
            self.items.append((event_id, frame))
        self.ready.set()


class Subscription:
    """One admitted stream: its frames, and `aclose()`, which ends it and frees its place
    (once, whether or not the stream ever started)."""

    def __init__(self, frames: AsyncGenerator[bytes, None], release: Callable[[], None]) -> None:
        self._frames = frames
        self._release = release
        self._closed = False

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> bytes:
        return await self._frames.__anext__()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._frames.aclose()
        finally:
            self._release()


class EventHub:
    def __init__(
        self,
        database: Database,
        *,
        poll_interval: float = 0.5,
        listen_poll_interval: float = 5.0,
        ping_interval: float = 15.0,
        queue_limit: int = 2000,
        max_subscribers: int = 100,
        max_replay: int = 10_000,
        clock: Clock | None = None,
    ) -> None:
        self._database = database
        self.max_subscribers = max_subscribers
        self.max_replay = max_replay
        self._admitted = 0  # streams handed out by `subscribe` and not closed yet
        self._clock = clock or SystemClock()
        self.poll_interval = poll_interval
        self.listen_poll_interval = listen_poll_interval
        self.ping_interval = ping_interval
        self._queue_limit = queue_limit
        self._subscribers: set[_Subscriber] = set()
        self._last_id = 0  # the highest id fanned out
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._joined = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: EventListener | None = None
        self._next_listen = 0.0
        self._closing = False
        self.reads = 0  # table reads of new events, for the benchmarks

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def wake(self) -> None:
        """New events were written (in this process, or NOTIFY from another)."""
        self._wake.set()

    @property
    def admitted(self) -> int:
        """Streams handed out by `subscribe` and not closed yet."""
        return self._admitted

    # -- one subscriber -------------------------------------------------------------------------

    def subscribe(self, event_filter: EventFilter, *, after: int | None) -> Subscription:
        """A place among the ``max_subscribers`` streams, with its `stream`; `ServerBusy`
        (a 503 with ``Retry-After``) when every place is taken. Close it to free its place."""
        if self._admitted >= self.max_subscribers:
            raise ServerBusy(
                f"the event stream serves {self.max_subscribers} clients at once and all are "
                f"connected; retry in {RETRY_AFTER} s (DATAMILL_EVENTS_MAX_SUBSCRIBERS)",
                code="too_many_subscribers",
                retry_after=RETRY_AFTER,
            )
        self._admitted += 1
        return Subscription(self.stream(event_filter, after=after), self._release)

    def _release(self) -> None:
        self._admitted -= 1

    async def stream(
        self, event_filter: EventFilter, *, after: int | None
    ) -> AsyncGenerator[bytes, None]:
        """A subscriber's server-sent events: replayed after ``after`` (None: live only),
        then live, then a comment ping after every ``ping_interval`` seconds of silence."""
        if self._closing:
            return
        subscriber, position = await self._register(event_filter)
        try:
            if after is None:
                # The stream's position, without an event: a client's reconnect resumes here.
                yield b": subscribed\nid: %d\n\n" % position
                seen = position
            else:
                reset = await self._reset_for(after, position)
                if reset is not None:
                    yield reset
                    seen = position
                else:
                    yield b": subscribed\n\n"
                    async for frame in self._replay(event_filter, after, position):
                        yield frame
                    seen = max(after, position)
            async for frame in self._live(subscriber, seen):
                yield frame
        finally:
            self._subscribers.discard(subscriber)

    async def _register(self, event_filter: EventFilter) -> tuple[_Subscriber, int]:
        async with self._lock:
            if not self._subscribers:
                # Nobody read while nobody listened: start from the newest event.
                self._last_id = await event_repo.last_event_id(self._database)
            subscriber = _Subscriber(event_filter, self._queue_limit)
            self._subscribers.add(subscriber)
            position = self._last_id
        self._joined.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="event-hub")
        return subscriber, position

    async def _reset_for(self, after: int, position: int) -> bytes | None:
        """The ``reset`` event when events after ``after`` were pruned (or ``after`` is no
        id of this store): the client must reload its state; None when it can resume."""
        bounds = await event_repo.event_bounds(self._database)
        if bounds is None:
            reason = "unknown_event_id" if after > 0 else None
        else:
            oldest, newest = bounds
            if after < oldest - 1:
                reason = "events_pruned"
            elif after > newest:
                reason = "unknown_event_id"
            else:
                reason = None
        if reason is None:
            return None
        return _reset(reason, position, bounds and bounds[0])

    async def _replay(
        self, event_filter: EventFilter, after: int, upto: int
    ) -> AsyncIterator[bytes]:
        """The events after ``after`` up to ``upto`` from the table, at most ``max_replay``
        of them: with more, a ``reset`` (``replay_too_long``) ends the replay instead."""
        topics = sorted(event_filter.topics) if event_filter.topics is not None else None
        batch_ids = sorted(event_filter.batch_ids) if event_filter.batch_ids is not None else None
        replayed = 0
        while after < upto:
            page = min(_PAGE, self.max_replay - replayed + 1)
            rows = await event_repo.read_events(
                self._database,
                after=after,
                upto=upto,
                topics=topics,
                batch_ids=batch_ids,
                project_id=event_filter.project_id,
                limit=page,
            )
            for row in rows:
                if replayed == self.max_replay:
                    yield _reset("replay_too_long", upto, None)
                    return
                yield encode_event(row)
                replayed += 1
                if replayed % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # the engine runs between two stretches
            if len(rows) < page:
                return
            after = rows[-1].id

    async def _live(self, subscriber: _Subscriber, seen: int) -> AsyncIterator[bytes]:
        while not self._closing:
            if subscriber.items:
                event_id, frame = subscriber.items.popleft()
                if event_id > seen:  # the replay already sent it
                    seen = event_id
                    yield frame
                continue
            if subscriber.overflowed:
                log.warning("an event stream client fell behind; it was ended to resume")
                return
            subscriber.ready.clear()
            if not await wait_event(self._clock, subscriber.ready, self.ping_interval):
                yield PING

    # -- the one reader -------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        while not self._closing:
            if not self._subscribers:
                self._joined.clear()
                await self._joined.wait()
                continue
            await self._ensure_listener(loop.time())
            live = self._listener is not None and not self._listener.closed
            interval = self.listen_poll_interval if live else self.poll_interval
            await wait_event(self._clock, self._wake, interval)
            self._wake.clear()
            try:
                await self._read_new()
                failures = 0
            except Exception:
                failures += 1
                log.exception("reading new events failed")
                await self._clock.sleep(min(0.1 * 2**failures, 5.0))

    async def _read_new(self) -> None:
        async with self._lock:
            while self._subscribers:
                rows = await event_repo.read_events(
                    self._database, after=self._last_id, limit=_PAGE
                )
                self.reads += 1
                self._fan_out(rows)
                if len(rows) < _PAGE:
                    return

    def _fan_out(self, rows: Iterable[EventRow]) -> None:
        for row in rows:
            frame = encode_event(row)  # once, shared by every subscriber
            for subscriber in self._subscribers:
                if subscriber.filter.matches(row):
                    subscriber.push(row.id, frame)
            self._last_id = row.id

    async def _ensure_listener(self, now: float) -> None:
        """On PostgreSQL, a LISTEN connection while subscribers exist; a lost one is opened
        again, at most every ``listen_poll_interval`` seconds (polling meanwhile)."""
        if self._database.dialect != "postgresql" or now < self._next_listen:
            return
        if self._listener is not None and not self._listener.closed:
            return
        self._next_listen = now + self.listen_poll_interval
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        try:
            self._listener = await EventListener.open(
                self._database, on_event=self.wake, on_lost=self.wake
            )
        except Exception as exc:
            log.warning(
                "cannot LISTEN for events (%s); polling every %g s", exc, self.poll_interval
            )

    # -- shutting down --------------------------------------------------------------------------

    def close_streams(self) -> None:
        """End every stream now (the server is shutting down: open streams would hold it)."""
        self._closing = True
        for subscriber in self._subscribers:
            subscriber.ready.set()
        self._joined.set()
        self._wake.set()

    async def aclose(self) -> None:
        self.close_streams()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
