"""`datamill review ...`: a dataset's review progress and settings, the next samples to
review, a review submitted, the reviewers' agreement, and Label Studio's annotations imported
(`cli.label_studio`), through the same services as the API.

The CLI works on the store directly, with no key: it reviews as ``--reviewer`` (default
``local``, the reviewer of local mode) and sees what a member sees.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.markup import escape

from datamill.cli import label_studio
from datamill.cli.common import print_columns, print_json, stdout
from datamill.cli.store import run_on_store
from datamill.protocol.reviews import ReviewCreate, ReviewSettingsUpdate, Rule
from datamill.runtime import Runtime

app = typer.Typer(
    help="Review datasets: progress, settings, the queue, reviews, agreement, Label Studio.",
    no_args_is_help=True,
)
app.command("import-label-studio")(label_studio.import_label_studio)

DatasetArgument = Annotated[
    str, typer.Argument(metavar="DATASET", help="a dataset id (ds_...) or name")
]
JsonOption = Annotated[bool, typer.Option("--json", help="print the API's JSON object")]
ReviewerOption = Annotated[
    str, typer.Option(help="review as this key id (default: local, as in local mode)")
]


@app.command()
def status(dataset: DatasetArgument, json: JsonOption = False) -> None:
    """DATASET's review settings, samples per review state and each reviewer's figures."""
    from datamill.render.reviews import progress_object

    async def work(runtime: Runtime) -> Any:
        dataset_id = await runtime.datasets.resolve(dataset)
        settings, progress = await runtime.reviews.progress(dataset_id)
        return progress_object(dataset_id, settings, progress)

    wire = run_on_store(work)
    if json:
        print_json(wire.model_dump(mode="json"))
        return
    s = wire.settings
    blind = "blind" if s.blind else "not blind"
    stdout.print(
        f"{wire.dataset_id}: overlap {s.overlap}, rule {s.rule.value}, {blind}, "
        f"reservations of {s.reservation_seconds} s"
    )
    print_columns([("state", "samples")] + [(k, str(v)) for k, v in wire.counts.items()], right=1)
    if wire.reviewers:
        stdout.print()
        print_columns(
            [("reviewer", "reviews", "approved", "rejected", "adjudicated", "reserved")]
            + [
                (
                    r.reviewer,
                    str(r.reviews),
                    str(r.approvals),
                    str(r.rejections),
                    str(r.adjudications),
                    str(r.open_reservations),
                )
                for r in wire.reviewers
            ],
            right=1,
        )


@app.command()
def agreement(
    dataset: DatasetArgument,
    sample_type: Annotated[
        str | None, typer.Option(help="only the samples of this sample type")
    ] = None,
    min_shared_items: Annotated[
        int, typer.Option(min=1, help="Cohen's kappa: pairs sharing at least this many samples")
    ] = 10,
    json: JsonOption = False,
) -> None:
    """How far DATASET's reviewers agree: per question (observed agreement, Cohen's and
    Fleiss' kappa, Krippendorff's alpha, gold) and per reviewer."""
    from datamill.render.agreement import agreement_report_object

    async def work(runtime: Runtime) -> Any:
        dataset_id = await runtime.datasets.resolve(dataset)
        report = await runtime.reviews.agreement(
            dataset_id,
            sample_type=sample_type,
            min_shared_items=min_shared_items,
        )
        return agreement_report_object(report, dataset_id=dataset_id)

    wire = run_on_store(work)
    if json:
        print_json(wire.model_dump(mode="json"))
        return
    stdout.print(
        f"{wire.dataset_id}: {wire.item_count} samples, {wire.reviewer_count} reviewers, "
        f"{wire.rating_count} answers"
    )
    print_columns(
        [("question", "compared", "agreement", "cohen", "fleiss", "alpha", "gold")]
        + [
            (
                q.question,
                str(q.items_compared),
                _figure(q.observed_agreement),
                _figure(q.cohen_kappa),
                _figure(q.fleiss_kappa),
                _figure(q.krippendorff_alpha),
                _figure(q.gold),
            )
            for q in wire.questions
        ],
        right=1,
    )
    decisions = {q.question for q in wire.questions if q.kind == "decision"}
    if wire.reviewers:
        stdout.print()
        print_columns(
            [("reviewer", "reviews", "approved", "rejected", "decision agreement", "with final")]
            + [
                (
                    r.reviewer_id,
                    str(r.reviews),
                    str(r.approved),
                    str(r.rejected),
                    _figure(
                        next(
                            (q.observed_agreement for q in r.questions if q.question in decisions),
                            None,
                        )
                    ),
                    _figure(r.final_decision),
                )
                for r in wire.reviewers
            ],
            right=1,
        )


def _figure(estimate: Any) -> str:
    """A statistic as a cell: its value to three places, or why there is none."""
    if estimate is None:
        return "-"
    if estimate.value is None:
        return f"- ({estimate.reason})" if estimate.reason else "-"
    return f"{estimate.value:.3f}"


@app.command()
def settings(
    dataset: DatasetArgument,
    overlap: Annotated[int | None, typer.Option(min=1, max=20, help="reviewers per sample")] = None,
    blind: Annotated[
        bool | None, typer.Option("--blind/--no-blind", help="hide others' reviews")
    ] = None,
    rule: Annotated[Rule | None, typer.Option(help="how the final state is decided")] = None,
    reservation_seconds: Annotated[
        int | None, typer.Option(min=10, max=7 * 86_400, help="how long `next` holds samples")
    ] = None,
    json: JsonOption = False,
) -> None:
    """Show DATASET's review settings, changing those given."""
    from datamill.render.reviews import settings_object

    given = {
        "overlap": overlap,
        "blind": blind,
        "rule": rule,
        "reservation_seconds": reservation_seconds,
    }
    body = ReviewSettingsUpdate(**{k: v for k, v in given.items() if v is not None})

    async def work(runtime: Runtime) -> Any:
        dataset_id = await runtime.datasets.resolve(dataset)
        if body.model_fields_set:
            return await runtime.reviews.update_settings(dataset_id, body)
        return await runtime.reviews.settings(dataset_id)

    wire = settings_object(run_on_store(work))
    if json:
        print_json(wire.model_dump(mode="json"))
        return
    print_columns(
        [
            ("overlap", str(wire.overlap)),
            ("blind", "yes" if wire.blind else "no"),
            ("rule", wire.rule.value),
            ("reservation_seconds", str(wire.reservation_seconds)),
        ]
    )


@app.command("next")
def next_samples(
    dataset: DatasetArgument,
    limit: Annotated[int, typer.Option(min=1, max=100, help="samples to reserve")] = 1,
    reviewer: ReviewerOption = "local",
    json: JsonOption = False,
) -> None:
    """Reserve DATASET's next samples to review (assigned ones first) and print them."""
    from datamill.render.reviews import review_item
    from datamill.review.service import Reviewer

    async def work(runtime: Runtime) -> Any:
        dataset_id = await runtime.datasets.resolve(dataset)
        items, expires_at = await runtime.reviews.next_samples(
            dataset_id, Reviewer(reviewer, sees_all=True), limit=limit
        )
        return [review_item(item) for item in items], expires_at

    items, expires_at = run_on_store(work)
    if json:
        print_json(
            {
                "object": "dataset.review_reservation",
                "reviewer": reviewer,
                "expires_at": None if expires_at is None else int(expires_at),
                "data": [item.model_dump(mode="json") for item in items],
            }
        )
        return
    if not items:
        stdout.print("nothing left to review")
        return
    for item in items:
        content = orjson.dumps(item.sample.content, option=orjson.OPT_INDENT_2).decode()
        stdout.print(f"[bold]{item.sample.id}[/] ({item.review_state})")
        stdout.print(escape(content), highlight=False)
    questions = ", ".join(q.name for q in items[0].questions)
    stdout.print(f"\nquestions: {questions}; reserved for {len(items)} sample(s)")


@app.command()
def submit(
    dataset: DatasetArgument,
    sample_id: Annotated[str, typer.Argument(metavar="SAMPLE_ID")],
    answer: Annotated[
        list[str],
        typer.Option(
            "--answer", help='QUESTION=VALUE, repeated (a JSON value: 5, ["a","b"]; else text)'
        ),
    ],
    reason: Annotated[str | None, typer.Option(help="why (a reject needs one)")] = None,
    content_file: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="a JSON file: the edited content"),
    ] = None,
    adjudication: Annotated[
        bool, typer.Option("--adjudication", help="decide a disputed sample")
    ] = False,
    reviewer: ReviewerOption = "local",
    json: JsonOption = False,
) -> None:
    """Submit a review of SAMPLE_ID (replacing the reviewer's earlier one)."""
    from datamill.render.reviews import review_object
    from datamill.review.service import Reviewer

    answers = dict(_answer(item) for item in answer)
    content = None
    if content_file is not None:
        try:
            content = orjson.loads(content_file.read_bytes())
        except orjson.JSONDecodeError as exc:
            raise typer.BadParameter(f"not JSON: {exc}", param_hint="--content-file") from None
    try:
        body = ReviewCreate(
            answers=answers, reason=reason, content=content, adjudication=adjudication
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None

    async def work(runtime: Runtime) -> Any:
        dataset_id = await runtime.datasets.resolve(dataset)
        return await runtime.reviews.submit(
            dataset_id, sample_id, body, Reviewer(reviewer, sees_all=True)
        )

    written = run_on_store(work)
    assert written.record is not None
    if json:
        print_json(
            {
                "object": "dataset.review_written",
                "review": review_object(written.record).model_dump(mode="json"),
                "review_state": written.review_state,
                "created": written.created,
            }
        )
        return
    what = "reviewed" if written.created else "already reviewed so"
    stdout.print(f"{sample_id}: {what}; review state {written.review_state}")


def _answer(item: str) -> tuple[str, Any]:
    name, sep, value = item.partition("=")
    if not sep or not name:
        raise typer.BadParameter(f"{item!r} is not QUESTION=VALUE", param_hint="--answer")
    try:
        return name, orjson.loads(value)
    except orjson.JSONDecodeError:
        return name, value
