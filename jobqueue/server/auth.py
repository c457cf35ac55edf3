"""Bearer tokens with roles (``read`` < ``enqueue`` < ``admin``), from the config and a file.

Each presented token is compared with every configured one by ``hmac.compare_digest`` (no
early exit on the first match either), so the time a refusal takes tells nothing about how
much of a token was right. Tokens are kept as bytes; only their names are ever logged.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from pathlib import Path

from fastapi.security.utils import get_authorization_scheme_param
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from jobqueue.config import ServerConfig, ServerRole
from jobqueue.errors import ConfigError
from jobqueue.server.errors import error_response

RANK: dict[ServerRole, int] = {"read": 0, "enqueue": 1, "admin": 2}
MIN_TOKEN_CHARS = 16


@dataclass(frozen=True, slots=True)
class Caller:
    """Who made a request: the token's name and role (``local`` when no token is set)."""

    name: str
    role: ServerRole

    def may(self, role: ServerRole) -> bool:
        return RANK[self.role] >= RANK[role]


LOCAL = Caller("local", "admin")  # no token configured: the server listens on 127.0.0.1 only


@dataclass(frozen=True, slots=True)
class Tokens:
    """The configured tokens: (secret, caller) pairs."""

    entries: tuple[tuple[bytes, Caller], ...]

    @property
    def open(self) -> bool:
        """No token configured: every local caller is admin."""
        return not self.entries

    def identify(self, presented: str) -> Caller | None:
        given = presented.encode()
        found = None
        for secret, caller in self.entries:
            if hmac.compare_digest(given, secret):
                found = caller
        return found

    @classmethod
    def from_config(cls, server: ServerConfig) -> Tokens:
        """``server.tokens`` plus the lines of ``server.token_file``; ConfigError naming the
        file and line of a bad one."""
        entries = [
            (t.token.get_secret_value().encode(), Caller(t.name, t.role)) for t in server.tokens
        ]
        if server.token_file:
            entries += read_token_file(Path(server.token_file))
        names = [caller.name for _, caller in entries]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            raise ConfigError([f"server.tokens: token name {duplicated[0]!r} given twice"])
        owners: dict[bytes, str] = {}
        for secret, caller in entries:
            if not (secret.isascii() and secret.decode().isprintable() and b" " not in secret):
                raise ConfigError(
                    [
                        f"server.tokens: the token of {caller.name!r} must be printable ASCII "
                        "without spaces (an HTTP header carries nothing else)"
                    ]
                )
            if secret in owners:  # which caller would it be? the last one, silently, before
                raise ConfigError(
                    [
                        f"server.tokens: {owners[secret]!r} and {caller.name!r} have the same "
                        "token; give each its own"
                    ]
                )
            owners[secret] = caller.name
        return cls(tuple(entries))


def read_token_file(path: Path) -> list[tuple[bytes, Caller]]:
    """Lines ``name role token``; blank lines and ``#`` comments skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"server.token_file: {path}: cannot read: {exc.strerror}"]) from exc
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        entries.append(_token_line(f"server.token_file: {path}:{number}", line))
    return entries


def _token_line(where: str, line: str) -> tuple[bytes, Caller]:
    parts = line.split()
    if len(parts) != 3:
        raise ConfigError([f"{where}: expected 'name role token' (3 words), got {len(parts)}"])
    name, role, token = parts
    if role not in RANK:
        raise ConfigError([f"{where}: role {role!r} is not one of read, enqueue, admin"])
    if len(token) < MIN_TOKEN_CHARS:
        raise ConfigError([f"{where}: the token must have at least {MIN_TOKEN_CHARS} characters"])
    return token.encode(), Caller(name, role)


OPEN_PATHS = frozenset({"/", "/healthz", "/readyz", "/api/v1/openapi.json"})
CHALLENGE = {"WWW-Authenticate": "Bearer"}


def needs_token(path: str) -> bool:
    """Every path but the probes, the OpenAPI document and the dashboard's files."""
    return path not in OPEN_PATHS and not path.startswith("/static/")


class Authenticate:
    """Who is calling, decided from the Authorization header before anything reads the
    body: a caller with no token, or an unknown one, is refused 401 whatever the body
    holds (a malformed one was a 422 first, answered to anyone), and the audit line names
    the token of a refused body too. The role each route needs is checked by its
    dependency (deps.Bearer), from the caller kept here in the request's state."""

    def __init__(self, app: ASGIApp, tokens: Tokens) -> None:
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and needs_token(scope["path"]):
            caller = LOCAL if self.tokens.open else None
            if caller is None:
                header = Headers(scope=scope).get("authorization")
                scheme, presented = get_authorization_scheme_param(header)
                if scheme.lower() != "bearer" or not presented:
                    message = "no bearer token: send Authorization: Bearer <token>"
                    await error_response(401, message, headers=CHALLENGE)(scope, receive, send)
                    return
                caller = self.tokens.identify(presented)
                if caller is None:
                    message = "unknown token: use one of server.tokens or token_file"
                    await error_response(401, message, headers=CHALLENGE)(scope, receive, send)
                    return
            scope.setdefault("state", {})["caller"] = caller
        await self.app(scope, receive, send)
