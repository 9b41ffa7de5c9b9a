"""Request size limits, enforced before a body is read whole: HTTP 413 when exceeded.

A pure ASGI middleware (Starlette has none for body size): a declared ``Content-Length`` above the
limit is refused at once; otherwise the bytes are counted as they stream in (chunked uploads
included) and reading stops at the limit. Multipart bodies (uploads) get ``max_upload_bytes``,
every other body ``max_json_bytes``.
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """The body grew past the limit while being read (answered 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit:,} bytes.")


class BodySizeLimit:
    """Refuse bodies above ``upload_limit`` (multipart) or ``body_limit`` (anything else)."""

    def __init__(self, app: ASGIApp, *, upload_limit: int, body_limit: int) -> None:
        self.app = app
        self.upload_limit = upload_limit
        self.body_limit = body_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        multipart = headers.get("content-type", "").lower().startswith("multipart/")
        limit = self.upload_limit if multipart else self.body_limit
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                await _answer(send, scope, receive, 400, "invalid Content-Length header.")
                return
            if int(declared) > limit:
                await _answer(send, scope, receive, 413, BodyTooLarge(limit).detail)
                return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counting_receive, send)


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


async def _answer(send: Send, scope: Scope, receive: Receive, status: int, detail: Any) -> None:
    response = JSONResponse({"detail": detail}, status_code=status, headers={"Connection": "close"})
    await response(scope, receive, send)
