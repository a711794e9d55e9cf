"""OAuth 2 access tokens that refresh themselves, kept in the endpoint's token store (X, LinkedIn).

The config holds only the *seed*: the refresh token (and optionally an access token) the operator
got when authorizing the app. Every token the network hands out later lives in the
:class:`~worker.share.base.TokenStore` under the endpoint's name, because some networks (X) rotate
refresh tokens: once a refresh succeeds, the old refresh token is dead and only the stored one works.
A digest of the seed is stored beside the tokens, so when the operator re-authorizes and puts a new
refresh token in the environment, the stale stored tokens are dropped instead of overriding it.

Access tokens are refreshed shortly before they expire (``expires_in``) and, by the endpoint, once
after a 401; a refresh the network refuses (``invalid_grant``) disables the endpoint, since only an
operator can authorize the app again.

:class:`ExchangedToken` is the same for a long-lived token that is exchanged for a new one (Threads'
``th_refresh_token``): no refresh token, refreshed well ahead of its expiry, and a refresh ahead of
time is best effort (the network may refuse to refresh a young token).
"""

from __future__ import annotations

import base64
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from worker.errors import EndpointDisabled, PermanentShareError, ShareError, TransientShareError

if TYPE_CHECKING:
    from worker.share.base import Endpoint

# Refresh this many seconds before the access token's announced expiry (clock skew, slow requests).
EXPIRY_MARGIN = 300.0
MAX_TOKEN_RESPONSE_BYTES = 64 * 1024

log = logging.getLogger(__name__)


def seed_digest(*values: str | None) -> str:
    """A short digest of the configured tokens, to notice when the operator replaced them."""
    joined = "\0".join(v or "" for v in values)
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class OAuthClient:
    """How to reach a network's token endpoint.

    ``basic_auth``: send ``client_id:client_secret`` as HTTP Basic (X's confidential clients);
    otherwise the secret, if any, goes in the form body (LinkedIn).
    """

    token_url: str
    client_id: str
    client_secret: str | None = None
    basic_auth: bool = True


class RefreshingToken:
    """The current access token of one endpoint, refreshed through ``client`` when needed.

    State in the token store (merged into whatever else the endpoint keeps there):
    ``access_token``, ``refresh_token``, ``expires_at`` (epoch seconds or None) and ``seed``.
    """

    # The stored keys that come from the seed: dropped when the operator puts new tokens in.
    SEEDED: ClassVar[tuple[str, ...]] = ("access_token", "refresh_token", "expires_at")

    def __init__(
        self,
        endpoint: Endpoint,
        client: OAuthClient | None,
        *,
        access_token: str | None,
        refresh_token: str | None,
        setting: str,
        margin: float = EXPIRY_MARGIN,
    ) -> None:
        """Bind to ``endpoint``; ``access_token``/``refresh_token`` are the config's seed values.

        ``setting`` names the config key the operator must renew when refreshing fails; ``margin``
        is how many seconds before its expiry the access token is refreshed.
        """
        self.endpoint = endpoint
        self.margin = margin
        self.client = client
        self.seed_access = access_token
        self.seed_refresh = refresh_token
        self.setting = setting
        self.seed = seed_digest(access_token, refresh_token)
        # The access token this process last used (a 401 refers to it).
        self._used: str | None = None

    @property
    def can_refresh(self) -> bool:
        """Whether a refresh is possible at all (a client and a refresh token)."""
        return self.client is not None and bool(self._state().get("refresh_token"))

    def _now(self) -> float:
        return self.endpoint.now().timestamp()

    def _state(self) -> dict[str, Any]:
        stored = self.endpoint.tokens.load(self.endpoint.name)
        if stored.get("seed") == self.seed:
            return stored
        # First use, or the operator put new tokens in the environment: start from the seed.
        fresh = {k: v for k, v in stored.items() if k not in self.SEEDED}
        fresh.update(
            seed=self.seed,
            access_token=self.seed_access,
            refresh_token=self.seed_refresh,
            expires_at=None,
        )
        return fresh

    def _due(self, state: dict[str, Any]) -> bool:
        """Whether the stored access token is about to expire (within :attr:`margin`)."""
        expires_at = state.get("expires_at")
        return isinstance(expires_at, int | float) and self._now() >= expires_at - self.margin

    def current(self) -> str:
        """A usable access token: the stored one, or a fresh one when it is missing or about to expire."""
        state = self._state()
        token = state.get("access_token")
        due = self._due(state)
        if token and not due:
            self._used = str(token)
            return str(token)
        if not self.can_refresh:
            if token:
                self._used = str(token)
                return str(token)
            raise EndpointDisabled(
                f"{self.endpoint.name}: no access token and no way to refresh one; set {self.setting}"
            )
        return self.refresh()

    def refresh(self) -> str:
        """Exchange the refresh token for a new access token (and, if rotated, a new refresh token).

        Runs under the token store's lock: a network that rotates refresh tokens accepts each one
        once, so two workers refreshing together would leave one of them with a dead token. A
        worker that waited for the lock uses the token the other one just stored.
        """
        with self.endpoint.tokens.lock(self.endpoint.name):
            state = self._state()
            token = state.get("access_token")
            fresh = not self._due(state)
            if token and fresh and token != self._used and state.get("refreshed_at"):
                self._used = str(token)
                return str(token)
            new_access = self._refresh(state)
            self._used = new_access
            return new_access

    def _refresh(self, state: dict[str, Any]) -> str:
        """Ask the network for a new access token; store it (and what comes with it) in ``state``."""
        data = self._exchange(state)
        new_access = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(new_access, str) or not new_access:
            raise self._no_token(f"{self.endpoint.name}: token refresh: the answer holds no access_token")
        expires_in = data.get("expires_in")
        state["access_token"] = new_access
        state["expires_at"] = (
            self._now() + float(expires_in)
            if isinstance(expires_in, int | float) and not isinstance(expires_in, bool)
            else None
        )
        rotated = data.get("refresh_token")
        if isinstance(rotated, str) and rotated:
            state["refresh_token"] = rotated
        state["refreshed_at"] = _iso(self.endpoint.now())
        state.pop("refresh_not_before", None)
        self.endpoint.tokens.save(self.endpoint.name, state)
        return new_access

    def _no_token(self, message: str) -> ShareError:
        """The error for a refresh answer without an access token: only an operator can help."""
        return EndpointDisabled(message)

    def _exchange(self, state: dict[str, Any]) -> Any:
        """The OAuth 2 ``refresh_token`` grant: the token endpoint's JSON answer."""
        refresh_token = state.get("refresh_token")
        client = self.client
        if client is None or not refresh_token:
            raise EndpointDisabled(
                f"{self.endpoint.name}: the access token was refused; renew {self.setting}"
            )
        form = {
            "grant_type": "refresh_token",
            "refresh_token": str(refresh_token),
            "client_id": client.client_id,
        }
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
        if client.client_secret and client.basic_auth:
            pair = f"{client.client_id}:{client.client_secret}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        elif client.client_secret:
            form["client_secret"] = client.client_secret
        try:
            answer = self.endpoint.send(
                "POST",
                client.token_url,
                what="token refresh",
                data=form,
                headers=headers,
                max_bytes=MAX_TOKEN_RESPONSE_BYTES,
            )
        except EndpointDisabled:
            raise
        except PermanentShareError as exc:
            # invalid_grant: the refresh token was revoked, expired or already used.
            raise EndpointDisabled(
                f"{exc}; the refresh token no longer works: authorize the app again and renew {self.setting}",
                status=exc.status,
            ) from None
        return answer.json()


class ExchangedToken(RefreshingToken):
    """A long-lived access token exchanged for a new one at ``url`` (Threads' ``th_refresh_token``).

    Refreshed when its expiry is unknown (first use) or within ``margin`` seconds, and once by the
    endpoint after the network refused it. A refresh ahead of time is best effort: when the network
    refuses it, the current token is used and no refresh is tried for ``backoff`` seconds
    (``refresh_not_before`` in the state). A refresh answer without a token is transient.
    """

    SEEDED: ClassVar[tuple[str, ...]] = (*RefreshingToken.SEEDED, "refresh_not_before")

    def __init__(
        self,
        endpoint: Endpoint,
        url: str,
        grant_type: str,
        *,
        access_token: str,
        setting: str,
        margin: float,
        backoff: float,
    ) -> None:
        """Exchange ``access_token`` (the config's seed) at ``url`` with ``grant_type``."""
        super().__init__(
            endpoint, None, access_token=access_token, refresh_token=None, setting=setting, margin=margin
        )
        self.url = url
        self.grant_type = grant_type
        self.backoff = backoff
        self.seed = seed_digest(access_token)  # no refresh token: the digest of the token alone

    @property
    def can_refresh(self) -> bool:
        """Always: the access token itself is exchanged."""
        return True

    def _due(self, state: dict[str, Any]) -> bool:
        expires_at = state.get("expires_at")
        return not isinstance(expires_at, int | float) or self._now() >= expires_at - self.margin

    def current(self) -> str:
        """The access token, refreshed first when it is close to expiry (or its expiry is unknown)."""
        state = self._state()
        now = self._now()
        retry_at = state.get("refresh_not_before")
        if isinstance(retry_at, int | float) and now < retry_at:
            self._used = str(state["access_token"])
            return self._used
        if self._due(state):
            try:
                return self.refresh()
            except ShareError as exc:
                log.info(
                    "%s: token refresh ahead of time failed, using the current token: %s",
                    self.endpoint.name,
                    exc,
                )
                state = self._state()
                state["refresh_not_before"] = now + self.backoff
                self.endpoint.tokens.save(self.endpoint.name, state)
        self._used = str(state["access_token"])
        return self._used

    def _no_token(self, message: str) -> ShareError:
        return TransientShareError(message)

    def _exchange(self, state: dict[str, Any]) -> Any:
        answer = self.endpoint.send(
            "GET",
            self.url,
            what="token refresh",
            params={"grant_type": self.grant_type, "access_token": str(state["access_token"])},
            max_bytes=MAX_TOKEN_RESPONSE_BYTES,
        )
        return answer.json()


def _iso(moment: datetime) -> str:
    return moment.isoformat()
