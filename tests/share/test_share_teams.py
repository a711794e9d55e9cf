"""Contract tests of the Microsoft Teams endpoint, from documented Workflows webhook payloads.

No Teams or Power Automate server can run here, so these are contract tests: the ``receiver`` (a
real HTTP server on 127.0.0.1) stands in for a "Post to a channel when a webhook request is
received" workflow and answers as the documentation says (``202 Accepted``; errors as
``{"error": {"code", "message"}}``), from ``tests/fixtures/share/teams/`` (each file names its
source). The tests assert the exact request the endpoint sends (method, path and query, headers,
JSON body) against the documented Adaptive Card shape, and that each documented error answer maps
to the right error class.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from config.model import ConfigError
from worker.errors import EndpointDisabled, PermanentShareError, ShareError, TransientShareError
from worker.share import ShareArticle, get_endpoint
from worker.share.teams import MAX_MESSAGE_BYTES, TeamsEndpoint, encode_body

from .conftest import FIXTURES, Receiver, endpoint_config

WORKFLOW = "b840a60a611b4d3287be6d76fe1930e2"
SIG = "X9tNq3d8a7FkPz2LmWcR5vYhJ0sTgUbE1oKiDnQwAeM"  # the shape of a workflow's SAS signature
KEY = "syn_42_0123456789abcdef_stiri-teams"
HERE = FIXTURES / "teams"
ERRORS: dict[str, type[ShareError]] = {
    "EndpointDisabled": EndpointDisabled,
    "PermanentShareError": PermanentShareError,
    "TransientShareError": TransientShareError,
}


def fixture(name: str) -> dict[str, Any]:
    """A fixture file of this directory, parsed."""
    return json.loads((HERE / name).read_text(encoding="utf-8"))


def hook_url(host: str) -> str:
    """A Workflows webhook URL of Power Automate's shape on ``host``."""
    return (
        f"{host}/powerautomate/automations/direct/workflows/{WORKFLOW}/triggers/manual/paths/invoke"
        f"?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={SIG}"
    )


def endpoint(url: str | None = None, **extra: Any) -> TeamsEndpoint:
    """A Teams endpoint whose URL comes from ``${TEAMS_HOOK}``."""
    url = url or hook_url("https://default0a1b2c3d.4e.environment.api.powerplatform.com:443")
    data = {"name": "stiri-teams", "kind": "teams", "webhook_url": "${TEAMS_HOOK}", **extra}
    ep = get_endpoint(endpoint_config(data, {"TEAMS_HOOK": url}))
    assert isinstance(ep, TeamsEndpoint)
    return ep


def local(receiver: Receiver) -> str:
    """The receiver's scheme, host and port."""
    return f"http://127.0.0.1:{receiver.server.server_port}"


def test_request_and_result_match_the_documented_exchange(receiver: Receiver, article: ShareArticle) -> None:
    case = fixture("workflow_webhook.json")
    receiver.respond(case["response"]["status"], case["response"]["body"].encode())
    ep = endpoint(hook_url(local(receiver)))
    preview = ep.render(article)
    assert preview.payload == case["request"]["body"]

    result = ep.publish(preview, KEY)
    (got,) = receiver.requests
    assert got.method == case["request"]["method"]
    assert got.path == case["request"]["path"].format(workflow=WORKFLOW, sig=SIG)
    assert got.headers["content-type"] == case["request"]["content_type"]
    assert json.loads(got.body) == case["request"]["body"]
    assert got.body == encode_body(case["request"]["body"])
    # The workflow answers 202 with no id: the idempotency key stands for the post.
    assert (result.remote_id, result.remote_url) == (KEY, None)


def test_card_has_the_documented_envelope_and_a_link_to_the_story(article: ShareArticle) -> None:
    payload = endpoint().render(article).payload
    assert payload["type"] == "message"
    (attachment,) = payload["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["contentUrl"] is None
    card = attachment["content"]
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    title = card["body"][0]
    assert (title["text"], title["weight"], title["wrap"]) == (article.title, "Bolder", True)
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Read the story", "url": article.url}]


def test_without_image_or_facts_those_elements_are_left_out(article: ShareArticle) -> None:
    bare = replace(article, source="", authors=(), published=None)
    card = endpoint(image=False).render(bare).payload["attachments"][0]["content"]
    assert [element["type"] for element in card["body"]] == ["TextBlock", "TextBlock"]


def test_utm_parameters_reach_the_action_url(article: ShareArticle) -> None:
    card = endpoint(utm={"source": "teams"}).render(article).payload["attachments"][0]["content"]
    assert card["actions"][0]["url"] == article.url + "?utm_source=teams"


def test_a_card_over_28_kb_is_refused_before_sending(article: ShareArticle) -> None:
    crowded = replace(article, authors=tuple(f"Autor cu un nume lung {i}" for i in range(2000)))
    with pytest.raises(PermanentShareError, match=str(MAX_MESSAGE_BYTES)):
        endpoint().render(crowded)


@pytest.mark.parametrize(
    "url",
    [
        "https://outlook.office.com/webhook/0a1b2c3d@4e5f/IncomingWebhook/abc/def",
        "https://outlook.office365.com/webhook/0a1b2c3d@4e5f/IncomingWebhook/abc/def",
        "https://contoso.webhook.office.com/webhookb2/0a1b2c3d@4e5f/IncomingWebhook/abc/def/V2xyz",
    ],
)
def test_retired_office_365_connector_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="Workflows") as caught:
        endpoint(url)
    assert url not in str(caught.value)


@pytest.mark.parametrize(
    "host",
    [
        "https://prod-27.westeurope.logic.azure.com:443",
        "https://default0a1b2c3d.4e.environment.api.powerplatform.com:443",
    ],
)
def test_workflows_urls_are_accepted(host: str) -> None:
    assert endpoint(hook_url(host)).kind == "teams"


@pytest.mark.parametrize("case", fixture("errors.json")["cases"], ids=lambda c: c["name"])
def test_documented_errors_map_to_the_error_tree(
    receiver: Receiver, article: ShareArticle, case: dict[str, Any]
) -> None:
    body = json.dumps(case["body"]).encode() if isinstance(case["body"], dict) else case["body"].encode()
    headers = {"Content-Type": "application/json", **case.get("headers", {})}
    receiver.respond(case["status"], body, headers)
    ep = endpoint(hook_url(local(receiver)))
    with pytest.raises(ERRORS[case["error"]]) as caught:
        ep.publish(ep.render(article), KEY)
    error = caught.value
    assert type(error) is ERRORS[case["error"]] and error.status == case["status"]
    if isinstance(case["body"], dict):
        assert case["body"]["error"]["code"] in str(error)
    if "retry_after" in case:
        assert isinstance(error, TransientShareError) and error.retry_after == case["retry_after"]
    assert SIG not in str(error)


def test_the_signature_never_shows(receiver: Receiver, article: ShareArticle, closed_port_url: str) -> None:
    ep = endpoint(hook_url(local(receiver)))
    preview = ep.render(article)
    assert SIG not in json.dumps(preview.payload) and WORKFLOW not in json.dumps(preview.payload)
    down = endpoint(hook_url(closed_port_url.rsplit("/", 1)[0]))
    with pytest.raises(TransientShareError) as caught:
        down.publish(down.render(article), KEY)
    message = str(caught.value)
    assert "Max retries exceeded" in message and "***" in message
    assert SIG not in message and WORKFLOW not in message


def test_lookup_is_left_uncertain(article: ShareArticle) -> None:
    ep = endpoint()
    assert ep.idempotent is False
    with pytest.raises(NotImplementedError):
        ep.lookup(ep.render(article), KEY)
