"""The database schema, one definition for SQLite and PostgreSQL.

Timestamps are seconds since the epoch (float). Public ids are text (``file-…``, ``batch_…``);
``seq`` columns give a stable creation order for cursor pagination. Request and result bodies
are bytes, kept verbatim.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

DEFAULT_PROJECT_ID = "proj_default"

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL wants 64 bits.
Id64 = BigInteger().with_variant(Integer(), "sqlite")

projects = Table(
    "projects",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_at", Float, nullable=False),
    Index(None, "name", unique=True),
)

# An API key: only its SHA-256 is kept (the key is shown once, when created), with the
# prefix it starts with so people can tell their keys apart. Each key is bound to one
# project and one role; it may expire, be revoked, and carry request and spend limits.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("project_id", String(64), ForeignKey("projects.id"), nullable=False),
    Column("role", String(16), nullable=False),
    Column("name", String(200), nullable=True),
    Column("prefix", String(32), nullable=False),
    Column("sha256", String(64), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=True),
    Column("revoked_at", Float, nullable=True),
    Column("last_used_at", Float, nullable=True),
    Column("requests_per_minute", Integer, nullable=True),
    Column("spend_per_day", Float, nullable=True),  # USD
    Index(None, "project_id", "created_at"),
)

blobs = Table(
    "blobs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("project_id", String(64), ForeignKey("projects.id"), nullable=False),
    Column("size", BigInteger, nullable=False, server_default=text("0")),
    Column("chunks", Integer, nullable=False, server_default=text("0")),
    # False while chunks are being written; an incomplete blob is never served.
    Column("complete", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", Float, nullable=False),
)

blob_chunks = Table(
    "blob_chunks",
    metadata,
    Column("blob_id", String(64), ForeignKey("blobs.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("data", LargeBinary, nullable=False),
)

files = Table(
    "files",
    metadata,
    Column("seq", Id64, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("project_id", String(64), ForeignKey("projects.id"), nullable=False),
    Column("filename", String(512), nullable=False),
    Column("purpose", String(32), nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("lines", Integer, nullable=True),
    Column("sha256", String(64), nullable=True),
    Column("status", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=True),
    Index(None, "project_id", "purpose", "seq"),
    Index(None, "sha256"),
    Index(None, "expires_at"),
)

batches = Table(
    "batches",
    metadata,
    Column("seq", Id64, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("project_id", String(64), ForeignKey("projects.id"), nullable=False),
    Column("endpoint", String(64), nullable=False),
    Column("model", String(256), nullable=True),
    Column("input_file_id", String(64), nullable=False),
    Column("completion_window", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    # The status a finalizing batch ends in: completed, expired or cancelled.
    Column("target_status", String(16), nullable=True),
    Column("metadata", JSON, nullable=True),
    Column("options", JSON, nullable=True),
    Column("errors", JSON, nullable=True),
    Column("output_file_id", String(64), nullable=True),
    Column("error_file_id", String(64), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("in_progress_at", Float, nullable=True),
    Column("expires_at", Float, nullable=True),
    Column("finalizing_at", Float, nullable=True),
    Column("completed_at", Float, nullable=True),
    Column("failed_at", Float, nullable=True),
    Column("expired_at", Float, nullable=True),
    Column("cancelling_at", Float, nullable=True),
    Column("cancelled_at", Float, nullable=True),
    Column("total_count", Integer, nullable=False, server_default=text("0")),
    Column("completed_count", Integer, nullable=False, server_default=text("0")),
    Column("failed_count", Integer, nullable=False, server_default=text("0")),
    Column("input_tokens", BigInteger, nullable=False, server_default=text("0")),
    Column("cached_tokens", BigInteger, nullable=False, server_default=text("0")),
    Column("output_tokens", BigInteger, nullable=False, server_default=text("0")),
    Column("reasoning_tokens", BigInteger, nullable=False, server_default=text("0")),
    # Last time a result was recorded: the stuck-batch check reads it.
    Column("progress_at", Float, nullable=True),
    # The worker validating or finalizing the batch; released when that worker dies.
    Column("claimed_by", String(64), nullable=True),
    # A client's Idempotency-Key (and `batch run`'s resume key): one batch per key.
    Column("idempotency_key", String(255), nullable=True),
    # How the batch runs: online (calls leased by workers) or native (delegated to the
    # provider's own batch API). Resolved once, when validation ends.
    Column("mode", String(8), nullable=False, server_default=text("'online'")),
    # USD spent so far (the results' costs), moved with the counters.
    Column("cost", Float, nullable=False, server_default=text("0")),
    # Why the batch stopped sending before every request ran (budget_exhausted), if it did.
    Column("stop_reason", String(32), nullable=True),
    # The API key that created the batch (its spend counts against the key's limit).
    Column("key_id", String(64), nullable=True),
    # The X-Request-ID of the HTTP request that created the batch: the workers' log lines
    # about the batch carry it (datamill/logs.py).
    Column("request_id", String(128), nullable=True),
    Index(None, "project_id", "idempotency_key", unique=True),
    Index(None, "key_id", "created_at"),
    Index(None, "project_id", "seq"),
    Index(None, "status"),
)

requests = Table(
    "requests",
    metadata,
    Column("id", Id64, primary_key=True, autoincrement=True),
    Column("batch_id", String(64), ForeignKey("batches.id", ondelete="CASCADE"), nullable=False),
    Column("line", Integer, nullable=False),
    Column("custom_id", String(512), nullable=False),
    Column("body", LargeBinary, nullable=False),
    # pending -> leased -> done; a retry inside a live worker keeps the lease. Requests of
    # native batches go pending -> native (in an upstream job) -> done, or back to pending.
    Column("state", String(8), nullable=False, server_default=text("'pending'")),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("lease_owner", String(64), nullable=True),  # the claiming worker's id
    Column("leased_at", Float, nullable=True),
    Column("not_before", Float, nullable=False, server_default=text("0")),
    # The native job holding the request while its state is 'native'.
    Column("native_job_id", String(64), nullable=True),
    Index(None, "batch_id", "custom_id"),
    # Pending requests are leased in line order, and the first pending line bounds the part
    # of the output that is final already (output drafts).
    Index(
        "ix_requests_pending",
        "batch_id",
        "line",
        sqlite_where=text("state = 'pending'"),
        postgresql_where=text("state = 'pending'"),
    ),
    # Few rows (what workers hold now): releasing a worker's leases scans them all, and the
    # first leased line of a batch is one lookup.
    Index(
        "ix_requests_leased",
        "batch_id",
        "line",
        sqlite_where=text("state = 'leased'"),
        postgresql_where=text("state = 'leased'"),
    ),
    # Partial: online batches never pay for it when they stage a million rows.
    Index(
        "ix_requests_native_job",
        "native_job_id",
        sqlite_where=text("native_job_id IS NOT NULL"),
        postgresql_where=text("native_job_id IS NOT NULL"),
    ),
)

results = Table(
    "results",
    metadata,
    # One result per request, enforced here: recording is idempotent (first answer wins).
    Column(
        "request_id",
        Id64,
        ForeignKey("requests.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("batch_id", String(64), nullable=False),
    Column("line", Integer, nullable=False),
    Column("custom_id", String(512), nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("body", LargeBinary, nullable=True),
    Column("provider_request_id", String(128), nullable=True),
    Column("error_code", String(64), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("deployment", String(128), nullable=True),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("input_tokens", Integer, nullable=False, server_default=text("0")),
    Column("cached_tokens", Integer, nullable=False, server_default=text("0")),
    Column("output_tokens", Integer, nullable=False, server_default=text("0")),
    Column("reasoning_tokens", Integer, nullable=False, server_default=text("0")),
    Column("finished_at", Float, nullable=False),
    # True when the result came through a provider's native batch API (billed at its batch
    # prices).
    Column("native", Boolean, nullable=False, server_default=text("false")),
    # The model the request asked for (an alias, say), and what it cost in USD.
    Column("model", String(256), nullable=True),
    Column("cost", Float, nullable=False, server_default=text("0")),
    Index(None, "batch_id", "ok", "line"),
    Index(None, "finished_at"),
)

# One gateway call (/v1/chat/completions, /v1/embeddings) as it ended: usage and cost.
gateway_calls = Table(
    "gateway_calls",
    metadata,
    Column("id", Id64, primary_key=True, autoincrement=True),
    Column("project_id", String(64), nullable=False),
    Column("model", String(256), nullable=False),
    Column("deployment", String(128), nullable=True),
    Column("endpoint", String(64), nullable=False),
    Column("stream", Boolean, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("error_code", String(64), nullable=True),
    Column("input_tokens", Integer, nullable=False),
    Column("cached_tokens", Integer, nullable=False),
    Column("output_tokens", Integer, nullable=False),
    Column("reasoning_tokens", Integer, nullable=False),
    Column("cost", Float, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("first_token_ms", Float, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("key_id", String(64), nullable=True),  # the API key that made the call
    Index(None, "created_at"),
    Index(None, "key_id", "created_at"),
)

# A response object the gateway answered on /v1/responses with ``store`` true, kept verbatim
# for GET /v1/responses/{id}; with the input items that led to it (the earlier turns' too),
# so that a request naming it as ``previous_response_id`` continues the conversation.
stored_responses = Table(
    "stored_responses",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("project_id", String(64), nullable=False),
    Column("model", String(256), nullable=False),
    Column("deployment", String(128), nullable=True),
    Column("body", LargeBinary, nullable=False),
    Column("input", LargeBinary, nullable=False),  # a JSON array of input items
    Column("created_at", Float, nullable=False),
    Index(None, "created_at"),
)

# The part of a running batch's output (or error) file written before the batch ends: its
# blob's complete chunks, and the rendered bytes after them (``carry``). Every line up to
# ``through_line`` is in those; finalization continues from there instead of from line 1.
output_drafts = Table(
    "output_drafts",
    metadata,
    Column("batch_id", String(64), ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True),
    Column("kind", String(8), primary_key=True),  # output | errors
    Column("blob_id", String(64), nullable=False),
    Column("owner", String(64), nullable=False),  # the worker extending it (or finalizing)
    Column("chunks", Integer, nullable=False),
    Column("through_line", Integer, nullable=False),
    Column("carry", LargeBinary, nullable=False),
    Column("lines", Integer, nullable=False),
    Column("size", BigInteger, nullable=False),
)

native_jobs = Table(
    "native_jobs",
    metadata,
    # One upstream batch of a native-mode batch: some of its requests, on one deployment.
    Column("id", String(64), primary_key=True),
    Column("batch_id", String(64), ForeignKey("batches.id", ondelete="CASCADE"), nullable=False),
    Column("deployment", String(128), nullable=False),
    # submitting -> running -> done. A submitting job's requests are stored and the upstream
    # may or may not have them; running: the upstream id is stored and the job is polled.
    Column("state", String(16), nullable=False),
    Column("upstream_id", String(256), nullable=True),
    # The upstream's last reported state: running, ended, failed or cancelled.
    Column("upstream_state", String(16), nullable=True),
    Column("request_count", Integer, nullable=False, server_default=text("0")),
    Column("created_at", Float, nullable=False),
    Column("submitted_at", Float, nullable=True),
    Column("polled_at", Float, nullable=True),
    Column("ended_at", Float, nullable=True),
    Column("next_poll_at", Float, nullable=False, server_default=text("0")),
    Column("cancel_requested_at", Float, nullable=True),
    # The one worker acting on the job; released when it finishes a step or dies.
    Column("claimed_by", String(64), nullable=True),
    Column("claimed_at", Float, nullable=True),
    Column("attempts", Integer, nullable=False, server_default=text("0")),  # submits sent
    Column("last_error", Text, nullable=True),
    Index(None, "batch_id"),
    Index(None, "state", "next_poll_at"),
)

workers = Table(
    "workers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("version", String(32), nullable=False),
    # running -> stopped (clean exit) or dead (heartbeat lost; its leases were taken over).
    Column("status", String(16), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
    Column("stopped_at", Float, nullable=True),
    Column("current_batch_id", String(64), nullable=True),
    Column("in_flight", Integer, nullable=False, server_default=text("0")),
    Column("completed", BigInteger, nullable=False, server_default=text("0")),
    Column("failed", BigInteger, nullable=False, server_default=text("0")),
    Index(None, "status", "heartbeat_at"),
)


# A named, curated collection of samples. Deleting one only hides it (deleted_at).
datasets = Table(
    "datasets",
    metadata,
    Column("seq", Id64, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("project_id", String(64), ForeignKey("projects.id"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("description", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("deleted_at", Float, nullable=True),
    # The task schema (by name) of its samples whose sample_type names none.
    Column("task_schema", String(100), nullable=True),
    # A name is taken by a live dataset only: a deleted one's name can be used again.
    Index(
        "uq_datasets_live_name",
        "project_id",
        "name",
        unique=True,
        sqlite_where=text("deleted_at IS NULL"),
        postgresql_where=text("deleted_at IS NULL"),
    ),
    Index(None, "project_id", "seq"),
)

# One sample of a dataset: its content, where it came from, and its review state. Full-text
# search is added per store by `storage/search.py` (FTS5 table or tsvector column).
samples = Table(
    "samples",
    metadata,
    Column("seq", Id64, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("dataset_id", String(64), ForeignKey("datasets.id"), nullable=False),
    Column("topic", String(200), nullable=True),
    Column("sample_type", String(100), nullable=True),
    Column("status", String(16), nullable=False, server_default=text("'accepted'")),
    Column("content", JSON(none_as_null=True), nullable=False),
    # The content's words as the search index holds them (`nlp.canonical.search_text`).
    Column("text", Text, nullable=False),
    # `nlp.canonical.normalized_hash`: equal for exact duplicates.
    Column("content_hash", String(64), nullable=False),
    Column("model", String(256), nullable=True),
    # spec, spec_version, template, prompt, deployment, batch_id, request_id, source...
    Column("provenance", JSON(none_as_null=True), nullable=True),
    Column("metadata", JSON(none_as_null=True), nullable=True),
    # Columns rather than provenance fields, so stats add them up in SQL.
    Column("input_tokens", Integer, nullable=False, server_default=text("0")),
    Column("output_tokens", Integer, nullable=False, server_default=text("0")),
    Column("cost", Float, nullable=False, server_default=text("0")),
    # Uniform in [0, 1), drawn at insert: random samples are an index range from a random
    # point, not a sort of the whole dataset.
    Column("random_key", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("deleted_at", Float, nullable=True),
    # Copies of ``provenance.batch_id`` and ``provenance.job_id``, for the filters' indexes.
    Column("batch_id", String(256), nullable=True),
    Column("job_id", String(256), nullable=True),
    # The review's outcome so far (`review.rules.ReviewState`), and its current reviews
    # (adjudications aside): recomputed in the transaction of each review written.
    Column("review_state", String(16), nullable=False, server_default=text("'unreviewed'")),
    Column("review_count", Integer, nullable=False, server_default=text("0")),
    # At most one live sample per content in a dataset; deleted ones do not count.
    Index(
        "uq_samples_live_hash",
        "dataset_id",
        "content_hash",
        unique=True,
        sqlite_where=text("deleted_at IS NULL"),
        postgresql_where=text("deleted_at IS NULL"),
    ),
    Index(None, "dataset_id", "seq"),
    # Coverage (live samples per topic x type x status), stats, and the topic filter.
    Index(
        "ix_samples_live_cells",
        "dataset_id",
        "topic",
        "sample_type",
        "status",
        sqlite_where=text("deleted_at IS NULL"),
        postgresql_where=text("deleted_at IS NULL"),
    ),
    Index(None, "dataset_id", "sample_type"),
    Index(None, "dataset_id", "model"),
    Index(None, "dataset_id", "random_key"),
    # A batch's or a generation job's samples (most samples have one or the other).
    Index(
        "ix_samples_batch_id",
        "dataset_id",
        "batch_id",
        sqlite_where=text("batch_id IS NOT NULL"),
        postgresql_where=text("batch_id IS NOT NULL"),
    ),
    Index(
        "ix_samples_job_id",
        "dataset_id",
        "job_id",
        sqlite_where=text("job_id IS NOT NULL"),
        postgresql_where=text("job_id IS NOT NULL"),
    ),
    # The review queue and the review_state filter: live samples by state, in order.
    Index(
        "ix_samples_review_queue",
        "dataset_id",
        "review_state",
        "seq",
        sqlite_where=text("deleted_at IS NULL"),
        postgresql_where=text("deleted_at IS NULL"),
    ),
    # The few deleted samples, for listing and restoring them.
    Index(
        "ix_samples_deleted",
        "dataset_id",
        "deleted_at",
        sqlite_where=text("deleted_at IS NOT NULL"),
        postgresql_where=text("deleted_at IS NOT NULL"),
    ),
)

# Task schemas (`datamill.task_schemas`): one row per version of a project's schema. An
# update adds the next version; deleting one marks every version of it (``deleted_at``); a
# schema created again under that name goes on from the highest version, never reusing one.
task_schemas = Table(
    "task_schemas",
    metadata,
    Column("seq", Id64, primary_key=True, autoincrement=True),
    Column("project_id", String(64), ForeignKey("projects.id"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("version", Integer, nullable=False),
    Column("definition", JSON, nullable=False),  # the `TaskSchema`, as JSON
    Column("created_at", Float, nullable=False),
    Column("created_by", String(64), nullable=True),  # the caller's key id; None: local
    Column("deleted_at", Float, nullable=True),
    UniqueConstraint("project_id", "name", "version"),
)

# Every version of an edited sample (`storage.sample_history`): version 1 is the sample
# as it was created (written at its first change), each edit or restore adds the next.
sample_history = Table(
    "sample_history",
    metadata,
    Column("seq", Id64, primary_key=True, autoincrement=True),
    Column("sample_id", String(64), ForeignKey("samples.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("action", String(16), nullable=False),  # created, edited, restored
    Column("restored_from", Integer, nullable=True),  # the version a restore brought back
    Column("topic", String(200), nullable=True),
    Column("sample_type", String(100), nullable=True),
    Column("content", JSON(none_as_null=True), nullable=False),
    Column("metadata", JSON(none_as_null=True), nullable=True),
    Column("changed_by", String(64), nullable=True),  # the caller's key id; None: local
    Column("changed_at", Float, nullable=False),
    UniqueConstraint("sample_id", "version"),
)

# A dataset's review settings (`review.rules.ReviewSettings`); none: the defaults.
review_settings = Table(
    "review_settings",
    metadata,
    Column("dataset_id", String(64), ForeignKey("datasets.id"), primary_key=True),
    Column("overlap", Integer, nullable=False),
    Column("blind", Boolean, nullable=False),
    Column("rule", String(16), nullable=False),
    Column("reservation_seconds", Integer, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# Every review ever written: a reviewer's current one per sample has ``current`` true; one
# it replaced stays, ``replaced_at`` set (the sample's review history).
reviews = Table(
    "reviews",
    metadata,
    Column("seq", Id64, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("dataset_id", String(64), ForeignKey("datasets.id"), nullable=False),
    Column("sample_id", String(64), ForeignKey("samples.id"), nullable=False),
    Column("reviewer", String(64), nullable=False),  # an API key's id; "local" in local mode
    Column("answers", JSON(none_as_null=True), nullable=False),
    Column("decision", String(16), nullable=False),  # approve, reject: the decision answer
    Column("reason", Text, nullable=True),
    # Its content edit (or that of the reviewer's review it replaced) changed the sample.
    Column("edited", Boolean, nullable=False),
    Column("adjudication", Boolean, nullable=False),
    Column("current", Boolean, nullable=False),
    Column("idempotency_key", String(200), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("replaced_at", Float, nullable=True),
    Index(None, "sample_id", "reviewer", "current"),
    Index(None, "dataset_id", "reviewer"),
    Index(None, "dataset_id", "seq"),
)

# Who holds a sample in the review queue: an assignment (no expiry) and/or a reservation
# (until ``expires_at``); one row per sample and reviewer, gone once that reviewer reviews.
review_claims = Table(
    "review_claims",
    metadata,
    Column("sample_id", String(64), ForeignKey("samples.id"), primary_key=True),
    Column("reviewer", String(64), primary_key=True),
    Column("dataset_id", String(64), ForeignKey("datasets.id"), nullable=False),
    Column("assigned", Boolean, nullable=False),
    Column("expires_at", Float, nullable=True),  # the reservation's end; None: not reserved
    Index(None, "dataset_id", "reviewer"),
)

# A gold sample's expected answers (reviewers never see them).
review_gold = Table(
    "review_gold",
    metadata,
    Column("sample_id", String(64), ForeignKey("samples.id"), primary_key=True),
    Column("dataset_id", String(64), ForeignKey("datasets.id"), nullable=False),
    Column("answers", JSON(none_as_null=True), nullable=False),
    Column("set_by", String(64), nullable=True),
    Column("set_at", Float, nullable=False),
    Index(None, "dataset_id"),
)


# A sample's embedding (`storage.embeddings`), written when it is first embedded: one row
# per sample and model, for the content whose `normalized_hash` it holds (an edit changes
# the sample's hash, so a stale vector is never used). The vector is float16 bytes.
sample_embeddings = Table(
    "sample_embeddings",
    metadata,
    Column("sample_id", String(64), ForeignKey("samples.id"), primary_key=True),
    Column("model", String(100), primary_key=True),
    Column("content_hash", String(64), nullable=False),
    Column("vector", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
)

# The server's event stream (`GET /api/events`): each change worth showing live, in the
# order it was written. ``id`` is the event's SSE id: AUTOINCREMENT on SQLite (and a sequence
# on PostgreSQL) so an id is never handed out twice, even after old events are pruned.
events = Table(
    "events",
    metadata,
    Column("id", Id64, primary_key=True, autoincrement=True),
    Column("topic", String(32), nullable=False),
    Column("batch_id", String(64), nullable=True),
    # The project whose subscribers see it; None: every project's (deployments, workers).
    Column("project_id", String(64), nullable=True),
    # The event's JSON, as sent: the stream copies it without decoding it.
    Column("payload", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Index(None, "batch_id", "id"),
    Index(None, "topic", "id"),
    Index(None, "created_at"),
    sqlite_autoincrement=True,
)


# A generation job (`datamill.generation`): its spec as given, where its samples go, what it
# may spend and has spent, and which runner drives it (a lease renewed by heartbeat).
generation_jobs = Table(
    "generation_jobs",
    metadata,
    Column("seq", Id64, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("project_id", String(64), ForeignKey("projects.id"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("dataset_id", String(64), ForeignKey("datasets.id"), nullable=False),
    # running (a runner drives it, or will) | stopped | completed | budget_exhausted | failed
    Column("status", String(24), nullable=False),
    Column("stop_reason", String(32), nullable=True),
    Column("error", Text, nullable=True),
    # The spec as validated (JSON), its text as given (YAML or JSON), its hash and format.
    Column("spec", JSON, nullable=False),
    Column("spec_text", Text, nullable=True),
    Column("spec_hash", String(64), nullable=False),
    Column("spec_version", Integer, nullable=False),
    # The topics resolved when the job was created (a generated topic tree is kept here).
    Column("topics", JSON, nullable=False),
    Column("budget_usd", Float, nullable=True),
    Column("budget_requests", BigInteger, nullable=True),
    Column("budget_seconds", Float, nullable=True),
    # Totals over the cells, moved in the same transactions as them.
    Column("cost", Float, nullable=False, server_default=text("0")),
    Column("requests", BigInteger, nullable=False, server_default=text("0")),
    Column("accepted", BigInteger, nullable=False, server_default=text("0")),
    Column("rejected", BigInteger, nullable=False, server_default=text("0")),
    Column("duplicates", BigInteger, nullable=False, server_default=text("0")),
    Column("surplus", BigInteger, nullable=False, server_default=text("0")),
    # Seconds of running time of the runs that ended (the time budget counts it).
    Column("elapsed", Float, nullable=False, server_default=text("0")),
    # The id of the worker driving the job (its claim, kept by its heartbeat: leasing.py).
    Column("runner", String(64), nullable=True),
    # Unused since claims are kept by heartbeats; left in place rather than rebuilt away.
    Column("lease_expires_at", Float, nullable=True),
    Column("run_started_at", Float, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("finished_at", Float, nullable=True),
    # Last time a sample was accepted or rejected: the stuck check reads it.
    Column("progress_at", Float, nullable=True),
    # `datamill generate`'s resume key: one job per spec and dataset.
    Column("idempotency_key", String(255), nullable=True),
    Index(None, "project_id", "idempotency_key", unique=True),
    Index(None, "project_id", "seq"),
    Index(None, "status"),
)

# One topic x sample type cell of a job: its target and what became of its answers.
generation_cells = Table(
    "generation_cells",
    metadata,
    Column(
        "job_id",
        String(64),
        ForeignKey("generation_jobs.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("topic", String(200), primary_key=True),
    Column("sample_type", String(100), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("target", Integer, nullable=False),
    # Never above target: moved only by `UPDATE ... WHERE accepted < target`.
    Column("accepted", Integer, nullable=False, server_default=text("0")),
    Column("rejected", Integer, nullable=False, server_default=text("0")),
    Column("duplicates", Integer, nullable=False, server_default=text("0")),
    Column("surplus", Integer, nullable=False, server_default=text("0")),
    Column("requests", Integer, nullable=False, server_default=text("0")),
    Column("cost", Float, nullable=False, server_default=text("0")),
)

# Rejections of a cell by reason (`generation.quality.Rejection`).
generation_rejections = Table(
    "generation_rejections",
    metadata,
    Column(
        "job_id",
        String(64),
        ForeignKey("generation_jobs.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("topic", String(200), primary_key=True),
    Column("sample_type", String(100), primary_key=True),
    Column("reason", String(32), primary_key=True),
    Column("count", Integer, nullable=False),
)

# Each request a job issued (a sample, or a judge's score of a candidate), until its
# outcome is recorded: the open ones are the job's requests in flight.
generation_requests = Table(
    "generation_requests",
    metadata,
    Column("id", Id64, primary_key=True, autoincrement=True),
    Column(
        "job_id", String(64), ForeignKey("generation_jobs.id", ondelete="CASCADE"), nullable=False
    ),
    Column("topic", String(200), nullable=False),
    Column("sample_type", String(100), nullable=False),
    Column("kind", String(8), nullable=False),  # sample | judge
    # queued (a judge request not in a batch yet) -> open (in a batch) -> done
    Column("state", String(8), nullable=False),
    Column("batch_id", String(64), nullable=True),
    Column("custom_id", String(512), nullable=True),
    # A judge request's candidate sample and its provenance, accepted if the score passes.
    Column("candidate", JSON, nullable=True),
    Index(
        "ix_generation_requests_live",
        "job_id",
        "state",
        sqlite_where=text("state != 'done'"),
        postgresql_where=text("state != 'done'"),
    ),
    Index(None, "batch_id", "custom_id"),
)

# One run of a job: who drove it, when, and how it ended.
generation_runs = Table(
    "generation_runs",
    metadata,
    Column("seq", Id64, primary_key=True, autoincrement=True),
    Column(
        "job_id", String(64), ForeignKey("generation_jobs.id", ondelete="CASCADE"), nullable=False
    ),
    Column("runner", String(64), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float, nullable=True),
    Column("outcome", String(32), nullable=True),
    Column("accepted_before", BigInteger, nullable=False),
    Column("accepted_after", BigInteger, nullable=True),
    Index(None, "job_id", "seq"),
)


# PostgreSQL compresses large values with pglz by default; lz4 (PostgreSQL 14+, when built
# with it) writes a 1 MiB chunk of JSONL 3x faster for about the same size. Run by migration
# 0003 and on stores created at the head; a server without lz4 keeps pglz.
POSTGRES_BLOB_COMPRESSION = """
DO $$ BEGIN
    EXECUTE 'ALTER TABLE blob_chunks ALTER COLUMN data SET COMPRESSION lz4';
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value OR syntax_error THEN NULL;
END $$
"""

# A webhook endpoint of a project (`datamill.webhooks`): where its events are POSTed, signed
# with its secret (Standard Webhooks). ``event_types`` (JSON list) filters them; empty: all.
# A 410 answer disables it (``enabled`` false, ``disabled_reason`` says why).
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("seq", Id64, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("project_id", String(64), ForeignKey("projects.id"), nullable=False),
    Column("url", Text, nullable=False),
    Column("description", String(200), nullable=True),
    Column("secret", String(128), nullable=False),
    Column("event_types", JSON, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("disabled_reason", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index(None, "project_id", "seq"),
)

# One message to one endpoint and its attempts. ``id`` is the message's ``webhook-id``
# (``msg_…``), the same on every attempt and replay. ``event_key`` names what it reports
# (``batch.completed:batch_…``): unique per endpoint, so nothing is enqueued twice.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("seq", Id64, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column(
        "endpoint_id",
        String(64),
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("project_id", String(64), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("event_key", String(200), nullable=False),
    Column("payload", Text, nullable=False),
    # pending (an attempt is due at next_attempt_at) | delivered | failed
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", Float, nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("delivered_at", Float, nullable=True),
    Index(None, "endpoint_id", "event_key", unique=True),
    Index(None, "endpoint_id", "seq"),
    Index(None, "status", "next_attempt_at"),
    Index(None, "created_at"),
)

# How far the webhook producer has read the events table (one row, ``name`` 'events').
webhook_cursor = Table(
    "webhook_cursor",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("event_id", BigInteger, nullable=False),
)
