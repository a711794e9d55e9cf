"""The API token: checking ``Authorization`` headers, and the route dependencies that need it."""

from __future__ import annotations

import base64
import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from worker.runtime import Runtime, get_runtime


def bearer_token_matches(authorization: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <token>`` (scheme case-insensitive)."""
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token.encode())


def configured_token(runtime: Runtime) -> str:
    """The ingest API token from the config ('' when ingest is disabled)."""
    return runtime.config.api.token.get_secret_value() if runtime.config.api.token else ""


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TOKEN_PATHS = ("/api/articles",)
METRICS_PATH = "/metrics"
STATUS_PATHS = frozenset({"/", "/api/status"})
# A browser shows its sign-in prompt for Basic; API clients send the bearer token.
STATUS_CHALLENGE = [
    (b"www-authenticate", b'Basic realm="Syndicate status", charset="UTF-8"'),
    (b"www-authenticate", b'Bearer realm="Syndicate status"'),
]


def basic_password_matches(authorization: str | None, token: str) -> bool:
    """Whether an ``Authorization: Basic`` header's password is ``token`` (the user name is not checked)."""
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return False
    _, colon, password = decoded.partition(":")
    return bool(colon) and hmac.compare_digest(password.encode(), token.encode())


def needs_token(method: str, path: str) -> bool:
    """Any method but GET/HEAD/OPTIONS (anything that can change state), and all of ``/api/articles``."""
    return method not in SAFE_METHODS or path == TOKEN_PATHS[0] or path.startswith(TOKEN_PATHS[0] + "/")


def current_runtime(request: Request) -> Runtime:
    """The runtime given to :func:`create_web_app`, else the process-wide one."""
    return request.app.state.runtime or get_runtime()


RT = Annotated[Runtime, Depends(current_runtime)]


bearer_scheme = HTTPBearer(auto_error=False, description="The config's `api.token`.")


def require_token(
    r: RT, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]
) -> None:
    """Check the bearer token again at the route (:class:`AuthGate` has refused strangers before the body)."""
    token = configured_token(r)
    if not token:
        raise HTTPException(503, "ingest is disabled: set api.token in the config")
    given = f"Bearer {credentials.credentials}" if credentials else None
    if not bearer_token_matches(given, token):
        raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})
