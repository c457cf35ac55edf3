"""With no token configured the server listens on loopback and every caller is admin; these
checks keep a web page the operator has open in a browser from acting as that caller.

- ``Host``: a DNS-rebinding page points its own name at 127.0.0.1 and arrives under that
  name. Only loopback names are answered (Starlette's TrustedHostMiddleware makes the same
  check, in plain text rather than the API's error shape).
- ``Origin``: a cross-site form or fetch POST goes out without a CORS preflight (a "simple
  request") and carries its page's origin; a request that changes something from any
  origin but this server's own is refused (the origin check of Django's CSRF middleware),
  a page of another web server on this host included.
"""

from __future__ import annotations

import re

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from jobqueue.server.errors import error_response

LOOPBACK_HOST = re.compile(r"(127\.0\.0\.1|localhost|\[::1\])(:\d{1,5})?", re.IGNORECASE)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FIX = "set server.tokens to serve other names and pages"


class LoopbackOnly:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            host = headers.get("host", "")
            origin = headers.get("origin")
            refusal = None
            if len(headers.getlist("host")) != 1 or not LOOPBACK_HOST.fullmatch(host):
                refusal = f"Host {host!r}: with no token only loopback names are answered; {FIX}"
            elif (
                scope["method"] not in SAFE_METHODS
                and origin is not None
                and origin.lower() != f"http://{host.lower()}"
            ):
                # The page's own origin only: another local web server's page is another site.
                refusal = f"Origin {origin!r}: with no token no other site may act here; {FIX}"
            if refusal is not None:
                await error_response(403, refusal)(scope, receive, send)
                return
        await self.app(scope, receive, send)
