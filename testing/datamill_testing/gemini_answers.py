"""The mock Gemini server's answers: deterministic candidates (text, JSON for a schema, the
function calls a ``toolConfig`` forces, logprobs) and how Gemini streams them."""

from __future__ import annotations

import base64
import random
from typing import Any

import orjson

from datamill.providers.sim.schema_instance import instance_for_schema
from datamill_testing.gemini_checks import declared_functions


def prompt_text(body: dict[str, Any]) -> str:
    texts = [
        part.get("text", "")
        for content in [body.get("systemInstruction") or {}, *(body.get("contents") or [])]
        for part in content.get("parts") or []
    ]
    return " ".join(t for t in texts if t)


def key_of(body: Any) -> str:
    """The last user text: what the answer echoes and the counters count by."""
    contents = body.get("contents") if isinstance(body, dict) else None
    if not isinstance(contents, list):
        return orjson.dumps(body).decode()[:200]
    for content in reversed(contents):
        if isinstance(content, dict) and content.get("role", "user") == "user":
            texts = [p["text"] for p in content.get("parts") or [] if "text" in p]
            if texts:
                return " ".join(texts)
    return "(no text)"


def candidate(
    body: dict[str, Any], key: str, index: int, rng: random.Random
) -> tuple[dict[str, Any], int]:
    """One candidate and its output tokens (one per word, in the mock)."""
    config = body.get("generationConfig") or {}
    calls = _forced_calls(body, rng)
    candidate: dict[str, Any] = {"index": index}
    if calls:
        thinking = bool(config.get("thinkingConfig"))
        parts = []
        for call in calls:
            part: dict[str, Any] = {"functionCall": call}
            if thinking:
                part["thoughtSignature"] = base64.b64encode(call["name"].encode()).decode()
            parts.append(part)
        candidate.update(content={"role": "model", "parts": parts}, finishReason="STOP")
        return candidate, sum(len(orjson.dumps(c)) // 4 for c in calls)
    if "[safety]" in key:
        candidate["finishReason"] = "SAFETY"
        return candidate, 0
    text = _text(body, key, index, rng)
    finish = "STOP"
    for stop in config.get("stopSequences") or []:
        if stop in text:
            text = text[: text.index(stop)]
    words = text.split(" ")
    limit = config.get("maxOutputTokens")
    if limit is not None and len(words) > limit:
        words, finish = words[:limit], "MAX_TOKENS"
        text = " ".join(words)
    candidate.update(content={"role": "model", "parts": [{"text": text}]}, finishReason=finish)
    if config.get("responseLogprobs"):
        candidate["logprobsResult"] = _logprobs(_pieces(text), config.get("logprobs") or 0)
    return candidate, len(words)


def _text(body: dict[str, Any], key: str, index: int, rng: random.Random) -> str:
    config = body.get("generationConfig") or {}
    text = f"mock answer to {key}" if index == 0 else f"mock answer {index} to {key}"
    if config.get("responseMimeType") == "application/json":
        schema = config.get("responseJsonSchema")
        value = instance_for_schema(schema, rng) if isinstance(schema, dict) else {"answer": text}
        return orjson.dumps(value).decode()
    return text


def _forced_calls(body: dict[str, Any], rng: random.Random) -> list[dict[str, Any]]:
    """The function calls the toolConfig forces (mode ANY), with valid arguments."""
    calling = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    if calling.get("mode") != "ANY":
        return []
    declarations = declared_functions(body)
    allowed = calling.get("allowedFunctionNames")
    if allowed:
        declarations = [d for d in declarations if d["name"] in allowed]
    if "[parallel]" not in key_of(body):
        declarations = declarations[:1]
    calls = []
    for declaration in declarations:
        schema = declaration.get("parametersJsonSchema") or {"type": "object"}
        calls.append({"name": declaration["name"], "args": instance_for_schema(schema, rng)})
    return calls


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [word + " " for word in words[:-1]] + words[-1:]


def _logprobs(pieces: list[str], top: int) -> dict[str, Any]:
    chosen = [
        {"token": piece, "tokenId": i, "logProbability": -0.1 * (i % 5 + 1)}
        for i, piece in enumerate(pieces)
    ]
    tops = [
        {
            "candidates": [token]
            + [
                {"token": f"alt{n}", "tokenId": 1000 + n, "logProbability": -2.0 - n}
                for n in range(max(0, top - 1))
            ]
        }
        for token in chosen
    ]
    return {"topCandidates": tops, "chosenCandidates": chosen}


def stream_events(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """The answer as Gemini streams it: text piece by piece, usage in the last event."""
    base = {key: answer[key] for key in ("modelVersion", "responseId")}
    events: list[dict[str, Any]] = []
    for candidate in answer.get("candidates") or []:
        parts = (candidate.get("content") or {}).get("parts") or []
        if parts and "text" in parts[0]:
            pieces = _pieces(parts[0]["text"])
            chosen = (candidate.get("logprobsResult") or {}).get("chosenCandidates") or []
            tops = (candidate.get("logprobsResult") or {}).get("topCandidates") or []
            for position, piece in enumerate(pieces):
                streamed: dict[str, Any] = {
                    "content": {"role": "model", "parts": [{"text": piece}]},
                    "index": candidate["index"],
                }
                if chosen:
                    streamed["logprobsResult"] = {
                        "chosenCandidates": [chosen[position]],
                        "topCandidates": [tops[position]],
                    }
                events.append({**base, "candidates": [streamed]})
            events[-1]["candidates"][0]["finishReason"] = candidate["finishReason"]
        else:
            events.append({**base, "candidates": [candidate]})
    if not events:
        events.append({**base, "promptFeedback": answer.get("promptFeedback")})
    events[-1]["usageMetadata"] = answer["usageMetadata"]
    return events
