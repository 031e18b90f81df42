"""Preview before spending: one request per sample type (for one topic), run now through
the gateway, shown as the prompt, the raw answer, the parsed sample and why it would be
rejected, with the estimated cost of the whole job.

The estimate: the previews' mean cost per request, times the requests the job is expected
to need (the target divided by the previews' acceptance, at least ``loop.min_acceptance``),
plus one judge call per accepted sample when there is a judge.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from datamill.errors import ApiError, InvalidRequest
from datamill.gateway.requests import GatewayRequest
from datamill.gateway.service import GatewayService
from datamill.generation.confined import CheckItem, check_all, render_one
from datamill.generation.grounding import chunk_documents, chunks_for
from datamill.generation.prompts import (
    TemplateProblem,
    judge_body,
    judge_prompt,
    request_body,
    sample_prompt,
    variation,
)
from datamill.generation.quality import judge_score
from datamill.generation.spec import GenerationSpec, cell_targets
from datamill.providers.base import Endpoint, Usage
from datamill.scheduler.pricing import call_cost
from datamill.scheduler.router import Router


async def preview(
    spec: GenerationSpec,
    topics: list[str],
    *,
    gateway: GatewayService,
    router: Router,
    topic: str | None = None,
    sample_type: str | None = None,
) -> dict[str, Any]:
    if topic is not None and topic not in topics:
        raise InvalidRequest(f"topic {topic!r} is not one of the spec's topics", param="topic")
    names = [t.name for t in spec.sample_types]
    if sample_type is not None and sample_type not in names:
        raise InvalidRequest(
            f"sample type {sample_type!r} is not one of the spec's: {', '.join(names)}",
            param="sample_type",
        )
    chosen_topic = topic or topics[0]
    chunks = chunk_documents(spec.grounding) if spec.grounding else []
    items = []
    costs: list[float] = []
    for kind in spec.sample_types:
        if sample_type is not None and kind.name != sample_type:
            continue
        cell = f"{chosen_topic}|{kind.name}"
        picked = (
            chunks_for(chunks, spec.grounding.chunks_per_prompt, cell=cell, index=0)
            if spec.grounding
            else []
        )
        try:
            prompt = await render_one(
                sample_prompt(kind, chosen_topic, picked, variation(cell, 0, "preview"))
            )
        except TemplateProblem as exc:
            raise InvalidRequest(
                f"spec.sample_types: {kind.name}: {exc}",
                param="spec.sample_types",
                code="invalid_spec",
            ) from None
        body = request_body(spec, kind, prompt)
        item: dict[str, Any] = {
            "sample_type": kind.name,
            "topic": chosen_topic,
            "prompt": body["messages"],
            "request": body,
        }
        answer, cost, error = await _call(gateway, router, body)
        costs.append(cost)
        item.update(raw_answer=answer, cost=round(cost, 8), error=error)
        if answer is None:
            item.update(sample=None, accepted=False, rejection="request_failed", detail=error)
            items.append(item)
            continue
        quality = spec.quality_for(kind)
        (verdict,) = await check_all(
            [CheckItem(answer, kind.output_schema, quality.model_dump(mode="json"))]
        )
        assert verdict is not None  # a call checks its first answer whatever it costs
        item.update(
            sample=verdict.sample,
            accepted=verdict.sample is not None,
            rejection=verdict.reason.value if verdict.reason else None,
            detail=verdict.detail,
        )
        judge = quality.judge
        if verdict.sample is not None and judge is not None:
            try:
                judging = await render_one(judge_prompt(spec, kind, chosen_topic, verdict.sample))
            except TemplateProblem as exc:
                raise InvalidRequest(
                    f"spec.quality.judge.prompt: {exc}",
                    param="spec.quality.judge.prompt",
                    code="invalid_spec",
                ) from None
            judged, judge_cost, judge_error = await _call(
                gateway, router, judge_body(spec, kind, judging)
            )
            costs[-1] += judge_cost
            score, reason = judge_score(judged) if judged is not None else (None, judge_error or "")
            item["judge"] = {"score": score, "reason": reason, "threshold": judge.threshold}
            if score is None or score < judge.threshold:
                item.update(accepted=False, rejection="judge", detail=reason)
        items.append(item)
    accepted = sum(1 for item in items if item["accepted"])
    acceptance = max(spec.loop.min_acceptance, accepted / len(items) if items else 1.0)
    target = sum(cell_targets(spec, topics).values())
    per_request = sum(costs) / len(costs) if costs else 0.0
    requests = math.ceil(target / acceptance)
    return {
        "object": "generation.preview",
        "topic": chosen_topic,
        "samples": items,
        "estimate": {
            "target": target,
            "acceptance": round(acceptance, 3),
            "requests": requests,
            "cost_per_request": round(per_request, 8),
            "cost_usd": round(per_request * requests, 4),
        },
    }


async def _call(
    gateway: GatewayService, router: Router, body: dict[str, Any]
) -> tuple[dict[str, Any] | None, float, str | None]:
    """The answer (or None and why not) and its cost at the deployment's online prices."""
    try:
        answer = await gateway.complete(
            GatewayRequest(Endpoint.chat_completions, body, orjson.dumps(body), str(body["model"]))
        )
    except ApiError as exc:
        return None, 0.0, exc.message
    decoded = orjson.loads(answer.body)
    usage = decoded.get("usage") or {}
    handle = router.get(answer.deployment)
    cost = 0.0
    if handle is not None:
        cost = call_cost(
            handle.config,
            Usage(
                input_tokens=int(usage.get("prompt_tokens") or 0),
                output_tokens=int(usage.get("completion_tokens") or 0),
            ),
        )
    return decoded, cost, None
