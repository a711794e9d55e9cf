"""One fake server for the networks no peer can run for here: X, LinkedIn, Facebook, Threads,
Telegram, Discord, Slack and Teams.

These networks are hosted services with no runnable reference server, so :class:`FakeNetworks`
replays their *documented* success answers: the ones the contract tests already keep under
``tests/fixtures/share/<kind>/`` (loaded from there, not copied), with placeholders filled and
ids made unique per request so two posts never share a remote id. It is one real
:class:`~http.server.ThreadingHTTPServer` on 127.0.0.1 and routes by path, because the networks'
own paths never collide (``/2/tweets``, ``/rest/posts``, ``/v21.0/{page}/feed``,
``/v1.0/{user}/threads``, ``/bot{token}/sendMessage``, ``/api/webhooks/{id}/{token}``,
``/services/...``, ``/powerautomate/...``): every endpoint's ``api`` (or webhook URL) is just
:attr:`FakeNetworks.url` plus the network's real path.

Every request is recorded per network (:meth:`FakeNetworks.calls`) with its method, path, query,
headers and parsed body (JSON, form fields or text). :meth:`FakeNetworks.fail` makes one network
answer a given error until :meth:`FakeNetworks.heal`.

X's OAuth 2 token endpoint rotates the refresh token, as X does: each answer carries a new
refresh token and the one presented dies, so a worker that refreshes with a token it already used
(the YAML's seed, once rotated) gets X's ``invalid_request`` answer. The access tokens it issues expire in
:data:`X_TOKEN_SECONDS` (shorter than the endpoint's refresh margin), so every post refreshes
again and a test can see which refresh token each refresh used.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

SHARE_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "share"
OWN_FIXTURES = SHARE_FIXTURES / "all-kinds"
# Below worker.share.oauth.EXPIRY_MARGIN (300 s): each X post refreshes its access token first.
X_TOKEN_SECONDS = 60
NETWORKS = ("x", "linkedin", "facebook", "threads", "telegram", "discord", "slack", "teams")


def load_fixture(kind: str, name: str) -> dict[str, Any]:
    """A contract-test fixture ``tests/fixtures/share/<kind>/<name>``."""
    data: dict[str, Any] = json.loads((SHARE_FIXTURES / kind / name).read_text(encoding="utf-8"))
    return data


@dataclass(frozen=True)
class Call:
    """One request a fake network received."""

    network: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any

    def header(self, name: str) -> str | None:
        """A request header, case-insensitively."""
        return self.headers.get(name.lower())


@dataclass
class Answer:
    """What the fake network answers."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] | None = None

    @classmethod
    def json(cls, status: int, data: Any, headers: dict[str, str] | None = None) -> Answer:
        """A JSON answer."""
        return cls(status, json.dumps(data, ensure_ascii=False).encode("utf-8"), headers=headers)


Route = tuple[str, str, re.Pattern[str], Callable[["FakeNetworks", Call, re.Match[str]], Answer]]


class FakeNetworks:
    """The fake server; use as a context manager (or :meth:`start` / :meth:`stop`)."""

    def __init__(self) -> None:
        """Load the documented answers and bind a free port on 127.0.0.1 (not serving yet)."""
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._ids = itertools.count(1)
        self._failures: dict[str, Answer] = {}
        # X's token chain: every refresh token works once (a new seed from a fresh config works too).
        self.x_refresh_used: set[str] = set()
        self.x_access_live: set[str] = set()
        self.x_refresh_issued: list[str] = []
        # Every token handed out (X access and refresh tokens, Threads access tokens).
        self.issued_tokens: list[str] = []
        self.fixtures = {
            "x_token": load_fixture("x", "refresh_token.json")["response"],
            "x_post": load_fixture("x", "create_post.json")["response"],
            "x_refresh_refused": json.loads(
                (OWN_FIXTURES / "x_refresh_refused.json").read_text(encoding="utf-8")
            )["response"],
            "x_unauthorized": load_fixture("x", "errors/unauthorized.json")["response"],
            "li_upload": load_fixture("linkedin", "initialize_upload.json")["response"],
            "li_post": load_fixture("linkedin", "create_post.json")["response"],
            "fb_post": load_fixture("facebook", "create_post.json")["response"],
            "th_refresh": load_fixture("threads", "refresh_token.json")["response"],
            "th_container": load_fixture("threads", "create_image_container.json")["response"],
            "th_status": load_fixture("threads", "container_status.json")["response"],
            "th_publish": load_fixture("threads", "publish.json")["response"],
            "th_permalink": load_fixture("threads", "permalink.json")["response"],
            "tg_message": load_fixture("telegram", "sendMessage.json")["response"],
            "tg_photo": load_fixture("telegram", "sendPhoto.json")["response"],
            "discord": load_fixture("discord", "execute_webhook.json")["response"],
            "slack": load_fixture("slack", "incoming_webhook.json")["response"],
            "teams": load_fixture("teams", "workflow_webhook.json")["response"],
        }
        handler = type("BoundNetworkHandler", (_Handler,), {"owner": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash): every network's API base."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> FakeNetworks:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-networks",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> FakeNetworks:
        """Start on entering the ``with`` block."""
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop on leaving it."""
        self.stop()

    # ------------------------------------------------------------ control and reading back

    def calls(self, network: str | None = None) -> list[Call]:
        """Every recorded request (of ``network``), oldest first."""
        with self._lock:
            return [c for c in self._calls if network is None or c.network == network]

    def fail(self, network: str, status: int, body: Any) -> None:
        """Make ``network`` answer ``status`` with the JSON ``body`` to every request until healed."""
        with self._lock:
            self._failures[network] = Answer.json(status, body)

    def heal(self, network: str) -> None:
        """Let ``network`` answer its documented success again."""
        with self._lock:
            self._failures.pop(network, None)

    def _next_id(self) -> int:
        with self._lock:
            return next(self._ids)

    def dispatch(self, call_without_network: Call) -> Answer:
        """Route one request; record it under its network (``unknown`` when no route matches)."""
        path = call_without_network.path
        for network, method, pattern, handler in ROUTES:
            match = pattern.match(path)
            if match is None or method != call_without_network.method:
                continue
            call = Call(network, *(getattr(call_without_network, f) for f in _CALL_FIELDS))
            with self._lock:
                self._calls.append(call)
                failure = self._failures.get(network)
            if failure is not None:
                return failure
            return handler(self, call, match)
        with self._lock:
            self._calls.append(Call("unknown", *(getattr(call_without_network, f) for f in _CALL_FIELDS)))
        return Answer.json(404, {"error": f"no fake network serves {call_without_network.method} {path}"})

    # ------------------------------------------------------------ X

    def _x_token(self, call: Call, _m: re.Match[str]) -> Answer:
        form = call.body if isinstance(call.body, dict) else {}
        presented = form.get("refresh_token")
        with self._lock:
            if form.get("grant_type") != "refresh_token" or not presented or presented in self.x_refresh_used:
                return _replay(self.fixtures["x_refresh_refused"])
            self.x_refresh_used.add(str(presented))
            n = next(self._ids)
            access, rotated = (
                f"x-access-{n:06d}-{secrets.token_hex(8)}",
                f"x-refresh-{n:06d}-{secrets.token_hex(8)}",
            )
            self.x_refresh_issued.append(rotated)
            self.x_access_live.add(access)
            self.issued_tokens += [access, rotated]
        answer = copy.deepcopy(self.fixtures["x_token"])
        answer["json"].update(access_token=access, refresh_token=rotated, expires_in=X_TOKEN_SECONDS)
        return _replay(answer)

    def _x_post(self, call: Call, _m: re.Match[str]) -> Answer:
        token = (call.header("authorization") or "").removeprefix("Bearer ")
        with self._lock:
            known = token in self.x_access_live
        if not known:
            return _replay(self.fixtures["x_unauthorized"])
        answer = copy.deepcopy(self.fixtures["x_post"])
        data = answer["json"]["data"]
        data["id"] = str(int(data["id"]) + self._next_id())
        data["text"] = call.body.get("text", "") if isinstance(call.body, dict) else ""
        return _replay(answer)

    # ------------------------------------------------------------ LinkedIn

    def _li_upload(self, call: Call, _m: re.Match[str]) -> Answer:
        n = self._next_id()
        answer = copy.deepcopy(self.fixtures["li_upload"])
        value = answer["json"]["value"]
        value["uploadUrl"] = f"{self.url}/linkedin-upload/{n}"
        value["image"] = f"{value['image']}{n}"
        return _replay(answer)

    def _li_put(self, call: Call, _m: re.Match[str]) -> Answer:
        return Answer(201)

    def _li_post(self, call: Call, _m: re.Match[str]) -> Answer:
        answer = copy.deepcopy(self.fixtures["li_post"])
        urn = answer["headers"]["x-restli-id"]
        prefix, _, number = urn.rpartition(":")
        answer["headers"]["x-restli-id"] = f"{prefix}:{int(number) + self._next_id()}"
        return _replay(answer)

    # ------------------------------------------------------------ Facebook

    def _fb_post(self, call: Call, match: re.Match[str]) -> Answer:
        answer = copy.deepcopy(self.fixtures["fb_post"])
        post = answer["json"]["id"].split("_", 1)[1]
        answer["json"]["id"] = f"{match.group(1)}_{int(post) + self._next_id()}"
        return _replay(answer)

    # ------------------------------------------------------------ Threads

    def _th_refresh(self, call: Call, _m: re.Match[str]) -> Answer:
        answer = copy.deepcopy(self.fixtures["th_refresh"])
        token = f"th-access-{self._next_id():06d}-{secrets.token_hex(8)}"
        with self._lock:
            self.issued_tokens.append(token)
        answer["json"]["access_token"] = token
        return _replay(answer)

    def _th_container(self, call: Call, _m: re.Match[str]) -> Answer:
        answer = copy.deepcopy(self.fixtures["th_container"])
        answer["json"]["id"] = str(int(answer["json"]["id"]) + self._next_id())
        return _replay(answer)

    def _th_publish(self, call: Call, _m: re.Match[str]) -> Answer:
        answer = copy.deepcopy(self.fixtures["th_publish"])
        answer["json"]["id"] = str(int(answer["json"]["id"]) + self._next_id())
        return _replay(answer)

    def _th_get(self, call: Call, match: re.Match[str]) -> Answer:
        if call.query.get("fields", "").startswith("status"):
            answer = copy.deepcopy(self.fixtures["th_status"])
            answer["json"].update(status="FINISHED", id=match.group(1))
        else:
            answer = copy.deepcopy(self.fixtures["th_permalink"])
            link = answer["json"]["permalink"]
            answer["json"].update(permalink=f"{link}{match.group(1)}", id=match.group(1))
        return _replay(answer)

    # ------------------------------------------------------------ Telegram, Discord, Slack, Teams

    def _telegram(self, call: Call, match: re.Match[str]) -> Answer:
        answer = copy.deepcopy(self.fixtures["tg_photo" if match.group(1) == "sendPhoto" else "tg_message"])
        result = answer["body"]["result"]
        result["message_id"] = int(result["message_id"]) + self._next_id()
        body = call.body if isinstance(call.body, dict) else {}
        for field in ("text", "caption"):
            if field in result and field in body:
                result[field] = body[field]
        return _replay(answer)

    def _discord(self, call: Call, _m: re.Match[str]) -> Answer:
        answer = copy.deepcopy(self.fixtures["discord"])
        message = answer["body"]
        message["id"] = str(int(message["id"]) + self._next_id())
        if isinstance(call.body, dict):
            message["content"] = call.body.get("content", "")
            message["embeds"] = call.body.get("embeds", [])
        return _replay(answer)

    def _slack(self, call: Call, _m: re.Match[str]) -> Answer:
        return _replay(self.fixtures["slack"])

    def _teams(self, call: Call, _m: re.Match[str]) -> Answer:
        return _replay(self.fixtures["teams"])


_CALL_FIELDS = ("method", "path", "query", "headers", "body")

ROUTES: list[Route] = [
    ("x", "POST", re.compile(r"^/2/oauth2/token$"), FakeNetworks._x_token),
    ("x", "POST", re.compile(r"^/2/tweets$"), FakeNetworks._x_post),
    ("linkedin", "POST", re.compile(r"^/rest/images$"), FakeNetworks._li_upload),
    ("linkedin", "PUT", re.compile(r"^/linkedin-upload/\d+$"), FakeNetworks._li_put),
    ("linkedin", "POST", re.compile(r"^/rest/posts$"), FakeNetworks._li_post),
    ("facebook", "POST", re.compile(r"^/v\d+\.\d+/(\d+)/feed$"), FakeNetworks._fb_post),
    ("threads", "GET", re.compile(r"^/refresh_access_token$"), FakeNetworks._th_refresh),
    ("threads", "POST", re.compile(r"^/v1\.0/[^/]+/threads$"), FakeNetworks._th_container),
    ("threads", "POST", re.compile(r"^/v1\.0/[^/]+/threads_publish$"), FakeNetworks._th_publish),
    ("threads", "GET", re.compile(r"^/v1\.0/(\d+)$"), FakeNetworks._th_get),
    ("telegram", "POST", re.compile(r"^/bot[^/]+/(sendMessage|sendPhoto)$"), FakeNetworks._telegram),
    ("discord", "POST", re.compile(r"^/api/webhooks/\d+/[^/]+$"), FakeNetworks._discord),
    ("slack", "POST", re.compile(r"^/services/[^/]+/[^/]+/[^/]+$"), FakeNetworks._slack),
    ("teams", "POST", re.compile(r"^/powerautomate/automations/direct/workflows/"), FakeNetworks._teams),
]


def _replay(response: dict[str, Any]) -> Answer:
    """An :class:`Answer` from a fixture's ``response`` (``json`` or ``body``, ``headers``, ``status``)."""
    headers = dict(response.get("headers") or {})
    if "json" in response:
        return Answer.json(int(response["status"]), response["json"], headers)
    body = response.get("body", "")
    if isinstance(body, dict | list):
        return Answer.json(int(response["status"]), body, headers)
    content_type = str(response.get("content_type") or "text/plain")
    return Answer(int(response["status"]), str(body).encode("utf-8"), content_type, headers)


def _parse_body(content_type: str, raw: bytes) -> Any:
    if not raw:
        return None
    if "json" in content_type:
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", errors="replace")
    if "x-www-form-urlencoded" in content_type:
        return {k: v[0] for k, v in parse_qs(raw.decode("utf-8"), keep_blank_values=True).items()}
    if content_type.startswith(("text/", "application/xml")):
        return raw.decode("utf-8", errors="replace")
    return raw


def basic_auth(call: Call) -> tuple[str, str] | None:
    """The ``(user, password)`` of a request's HTTP Basic ``Authorization`` header, if any."""
    value = call.header("authorization") or ""
    if not value.startswith("Basic "):
        return None
    user, _, password = base64.b64decode(value[6:]).decode("utf-8").partition(":")
    return user, password


class _Handler(BaseHTTPRequestHandler):
    owner: FakeNetworks
    protocol_version = "HTTP/1.1"
    # Keep-alive answers are two writes (headers, body): without TCP_NODELAY the body waits 40 ms for
    # the client's delayed ACK, as no real network's server makes it wait.
    disable_nagle_algorithm = True

    def _handle(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        call = Call(
            "",
            self.command,
            parts.path,
            {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()},
            headers,
            _parse_body(headers.get("content-type", ""), raw),
        )
        answer = self.owner.dispatch(call)
        try:
            self.send_response(answer.status)
            if answer.body or answer.status != 202:
                self.send_header("Content-Type", answer.content_type)
            for name, value in (answer.headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    do_GET = do_POST = do_PUT = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass
