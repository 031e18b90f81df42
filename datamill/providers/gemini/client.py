"""Gemini's REST addresses and JSON calls over the shared `HttpPool`."""

from __future__ import annotations

from typing import Any

import orjson

from datamill.errors import ErrorCategory, ProviderError
from datamill.providers.gemini.errors import error_from_answer
from datamill.providers.gemini.options import DEFAULT_BASE_URL, GeminiOptions
from datamill.providers.http import HttpAnswer, HttpPool, HttpStream, url_segment
from datamill.providers.http1 import Target
from datamill.settings import DeploymentConfig


def model_path(model: str) -> str:
    """``gemini-2.5-flash`` -> ``models/gemini-2.5-flash``; a full resource name
    (``models/...``, ``tunedModels/...``) keeps its collection. The name is escaped: a
    crafted one (``x:batchGenerateContent``, ``../files``) never reaches another route."""
    collection, slash, name = model.partition("/")
    if slash and collection in {"models", "tunedModels"}:
        return f"{collection}/{url_segment(name)}"
    return f"models/{url_segment(model)}"


class GeminiClient:
    """Calls one Gemini API root with the deployment's key (``x-goog-api-key``)."""

    def __init__(self, deployment: DeploymentConfig, http: HttpPool, options: GeminiOptions):
        self._http = http
        self.root = f"{deployment.base_url or DEFAULT_BASE_URL}/{options.api_version}"
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if deployment.api_key is not None:
            self._headers["x-goog-api-key"] = deployment.api_key.get_secret_value()
        self._targets: dict[tuple[str, str, str], Target] = {}

    def target(
        self, path: str, *, method: str = "POST", accept: str = "application/json"
    ) -> Target:
        """The prepared target of ``{root}/{path}`` (kept: models are few, paths repeat)."""
        key = (path, method, accept)
        target = self._targets.get(key)
        if target is None:
            headers = {**self._headers, "Accept": accept}
            target = self._http.prepare(f"{self.root}/{path}", headers, method=method)
            if len(self._targets) < 256:  # batch paths never repeat: keep the cache small
                self._targets[key] = target
        return target

    async def call(self, path: str, body: Any = None, *, method: str = "POST") -> Any:
        """Send a JSON body (or none) and return the parsed 2xx answer; an error status raises
        its `ProviderError`."""
        data = b"" if body is None else orjson.dumps(body)
        return _parsed(await self._http.send(self.target(path, method=method), data=data))

    async def get(self, path: str) -> Any:
        """``GET {root}/{path}`` (a path with a query that rarely repeats: not kept), parsed
        as `call` parses it."""
        target = self._http.prepare(f"{self.root}/{path}", self._headers, method="GET")
        return _parsed(await self._http.send(target, data=b""))

    async def open_stream(self, path: str, body: Any) -> HttpStream:
        target = self.target(path, accept="text/event-stream")
        return await self._http.open_stream(
            target, data=orjson.dumps(body), error=error_from_answer
        )


def _parsed(answer: HttpAnswer) -> Any:
    """A 2xx answer's JSON; an error status raises its `ProviderError`."""
    if answer.status >= 300:
        raise error_from_answer(answer)
    try:
        return orjson.loads(answer.body) if answer.body else {}
    except orjson.JSONDecodeError:
        raise ProviderError(
            ErrorCategory.server_error,
            "Gemini answered 2xx with a body that is not JSON",
            status_code=answer.status,
            body={"error": {"message": answer.body[:500].decode("utf-8", "replace")}},
        ) from None
