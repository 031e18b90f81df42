"""Every HTTP request's id: from a sane ``X-Request-ID`` header, or made up (`datamill.logs`).

It is the request id of every log line written while the request is served (a batch
created by it stores it, and the workers log that batch's lines with it), and it is echoed
in the answer's ``X-Request-ID`` header, unless the route set that header itself (the
gateway's answers carry the upstream's request id, as OpenAI's SDKs read it). A plain ASGI
middleware: no task, no body buffering.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from datamill.logs import accept_request_id, request_id

_HEADER = b"x-request-id"


class RequestIds:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == _HEADER), None)
        current = accept_request_id(given.decode("latin-1") if given is not None else None)
        echoed = (_HEADER, current.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                if not any(name.lower() == _HEADER for name, _ in headers):
                    headers.append(echoed)
                    message = {**message, "headers": headers}
            await send(message)

        with request_id(current):
            await self.app(scope, receive, send_with_id)
