"""Query strings are as strict as bodies: unknown names, repeats and unknown cursors get 400."""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import Account
from tests.e2e.helpers import assert_error, create_webhook, deliveries_of, publish
from tests.support.receiver import Receiver

# A template per list route. Listings.path() puts a webhook id in place of `{webhook}`.
LIST_ROUTES = [
    "/v1/webhooks",
    "/v1/events",
    "/v1/deliveries",
    "/v1/webhooks/{webhook}/deliveries",
]


@dataclass
class Listings:
    """One object of each listed kind in a fresh account."""

    webhook_id: str
    event_id: str
    delivery_id: str

    def path(self, template: str) -> str:
        return template.replace("{webhook}", self.webhook_id)

    def listed_id(self, template: str) -> str:
        """Return the id of the object that the list route of `template` shows."""
        kinds = {"/v1/webhooks": self.webhook_id, "/v1/events": self.event_id}
        return kinds.get(template, self.delivery_id)


def create_listings(client: httpx.Client, receiver: Receiver) -> Listings:
    webhook = create_webhook(client, receiver.url)
    event = publish(client, "generation.completed")
    delivery = deliveries_of(client, event["id"])[0]
    return Listings(webhook["id"], event["id"], delivery["id"])


@pytest.fixture
def listings(account: Account, receiver: Receiver) -> Listings:
    return create_listings(account.client, receiver)


def documented_operations(client: httpx.Client) -> dict[tuple[str, str], list[str]]:
    """Return each /v1 operation of the OpenAPI document with its query parameters."""
    document = client.get("/openapi.json").json()
    operations = {}
    for path, methods in document["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in methods.items():
            parameters = operation.get("parameters", [])
            names = [p["name"] for p in parameters if p["in"] == "query"]
            operations[(method.upper(), path)] = names
    return operations


MISSING_ID = "webhook_00000000000000000000000000"
BAD_QUERIES = [
    # (query, the parameter the error names, code)
    ([("limt", "5")], "limt", "unknown_parameter"),
    ([("starting_afer", MISSING_ID)], "starting_afer", "unknown_parameter"),
    ([("endingBefore", MISSING_ID)], "endingBefore", "unknown_parameter"),
    ([("limit", "1"), ("limit", "50")], "limit", "duplicate_parameter"),
    ([("starting_after", MISSING_ID)], "starting_after", "cursor_not_found"),
    ([("ending_before", MISSING_ID)], "ending_before", "cursor_not_found"),
]


@pytest.mark.parametrize("template", LIST_ROUTES)
@pytest.mark.parametrize(("query", "field", "code"), BAD_QUERIES)
def test_list_bad_query_is_400(
    account: Account,
    listings: Listings,
    template: str,
    query: list[tuple[str, str]],
    field: str,
    code: str,
) -> None:
    response = account.client.get(listings.path(template), params=query)

    error = assert_error(response, 400, "validation_error", field)
    assert error["code"] == code


def test_unknown_parameter_lists_valid_ones(account: Account) -> None:
    response = account.client.get("/v1/deliveries", params={"limt": "5"})

    error = assert_error(response, 400, "validation_error", "limt")
    valid = ["webhook_id", "event_id", "status", "limit", "starting_after", "ending_before"]
    assert error["details"]["valid"] == valid
    assert "accepts only webhook_id, event_id, status, limit" in error["message"]


def test_every_route_rejects_unknown_parameter(account: Account) -> None:
    operations = documented_operations(account.client)
    assert ("GET", "/v1/webhooks/{webhook_id}") in operations
    assert ("POST", "/v1/events") in operations

    for (method, template), accepted in operations.items():
        path = re.sub(r"\{[^}]+\}", "x_missing", template)
        response = account.client.request(method, path, params={"colour": "red"}, json={})

        error = assert_error(response, 400, "validation_error", "colour")
        assert error["code"] == "unknown_parameter", f"{method} {template}"
        assert error["details"]["valid"] == accepted, f"{method} {template}"


def test_retrieve_unknown_parameter_is_400(account: Account, listings: Listings) -> None:
    response = account.client.get(f"/v1/webhooks/{listings.webhook_id}", params={"expand": "x"})

    error = assert_error(response, 400, "validation_error", "expand")
    assert error["code"] == "unknown_parameter"
    assert error["details"]["valid"] == []
    assert "accepts no query parameters" in error["message"]


def test_unknown_parameter_checked_before_key(account: Account) -> None:
    with httpx.Client(base_url=account.service.base_url) as anonymous:
        response = anonymous.get("/v1/webhooks", params={"limt": "5"})

    error = assert_error(response, 400, "validation_error", "limt")
    assert error["code"] == "unknown_parameter"


def test_repeated_parameter_counts_values(account: Account) -> None:
    response = account.client.get("/v1/events", params=[("type", "a"), ("type", "b")])

    error = assert_error(response, 400, "validation_error", "type")
    assert error["code"] == "duplicate_parameter"
    assert error["details"]["count"] == 2


def test_known_parameters_still_list(account: Account, listings: Listings) -> None:
    for template in LIST_ROUTES:
        response = account.client.get(listings.path(template), params={"limit": 5})

        assert response.status_code == 200, response.text
        assert [item["id"] for item in response.json()["data"]] == [listings.listed_id(template)]


@pytest.mark.parametrize("field", ["starting_after", "ending_before"])
def test_cursor_of_other_account_is_400(
    account: Account, receiver: Receiver, listings: Listings, field: str
) -> None:
    other_key = account.service.create_key()
    with account.service.client(other_key) as other:
        # The other account's own webhook, so that its deliveries route is found.
        own = create_listings(other, receiver)
        for template in LIST_ROUTES:
            params = {field: listings.listed_id(template)}
            response = other.get(own.path(template), params=params)

            error = assert_error(response, 400, "validation_error", field)
            assert error["code"] == "cursor_not_found", template


def test_cursor_of_deleted_webhook_is_400(account: Account, receiver: Receiver) -> None:
    remaining = create_webhook(account.client, receiver.url)
    deleted = create_webhook(account.client, receiver.url)
    assert account.client.delete(f"/v1/webhooks/{deleted['id']}").status_code == 200

    response = account.client.get("/v1/webhooks", params={"starting_after": deleted["id"]})

    error = assert_error(response, 400, "validation_error", "starting_after")
    assert error["code"] == "cursor_not_found"
    assert error["details"]["value"] == deleted["id"]
    listed = account.client.get("/v1/webhooks").json()["data"]
    assert [webhook["id"] for webhook in listed] == [remaining["id"]]


def test_cursor_of_another_kind_is_400(account: Account, listings: Listings) -> None:
    response = account.client.get("/v1/webhooks", params={"starting_after": listings.event_id})

    error = assert_error(response, 400, "validation_error", "starting_after")
    assert error["code"] == "cursor_not_found"


@pytest.mark.parametrize("field", ["starting_after", "ending_before"])
def test_cursor_at_list_end_is_empty_page(account: Account, listings: Listings, field: str) -> None:
    for template in LIST_ROUTES:
        params = {field: listings.listed_id(template)}
        response = account.client.get(listings.path(template), params=params)

        assert response.status_code == 200, f"{template}: {response.text}"
        assert response.json()["data"] == [], template
        assert response.json()["has_more"] is False, template


def test_cursor_outside_filter_still_pages(account: Account) -> None:
    older = publish(account.client, "generation.completed")
    middle = publish(account.client, "system.update")
    newer = publish(account.client, "generation.completed")

    response = account.client.get(
        "/v1/events", params={"type": "generation.completed", "starting_after": middle["id"]}
    )

    assert response.status_code == 200, response.text
    assert [event["id"] for event in response.json()["data"]] == [older["id"]]
    back = account.client.get(
        "/v1/events", params={"type": "generation.completed", "ending_before": middle["id"]}
    )
    assert [event["id"] for event in back.json()["data"]] == [newer["id"]]


# (route, parameter) pairs sent with an empty value, as in `?webhook_id=`.
EMPTY_PARAMETERS = [
    ("/v1/deliveries", "webhook_id"),
    ("/v1/deliveries", "event_id"),
    ("/v1/deliveries", "status"),
    ("/v1/events", "type"),
    ("/v1/webhooks", "starting_after"),
    ("/v1/webhooks/{webhook}/deliveries", "ending_before"),
]


@pytest.mark.parametrize(("template", "field"), EMPTY_PARAMETERS)
def test_empty_parameter_is_400(
    account: Account, listings: Listings, template: str, field: str
) -> None:
    # With and without the equals sign, as in `?webhook_id=` and `?webhook_id`.
    for query in [f"{field}=", field]:
        response = account.client.get(f"{listings.path(template)}?{query}")

        error = assert_error(response, 400, "validation_error", field)
        assert error["code"] == "empty_parameter", query
        assert f"{field!r} is empty" in error["message"], query


@pytest.mark.parametrize("field", ["webhook_id", "event_id"])
def test_delivery_filter_naming_nothing_is_400(
    account: Account, listings: Listings, field: str
) -> None:
    response = account.client.get("/v1/deliveries", params={field: "nope"})

    error = assert_error(response, 400, "validation_error", field)
    assert error["code"] == "filter_not_found"
    assert error["details"]["value"] == "nope"
    assert f"the {field} filter matches nothing" in error["message"]


@pytest.mark.parametrize("field", ["webhook_id", "event_id"])
def test_delivery_filter_of_other_account_is_400(
    account: Account, receiver: Receiver, listings: Listings, field: str
) -> None:
    other_key = account.service.create_key()
    with account.service.client(other_key) as other:
        create_listings(other, receiver)
        value = listings.webhook_id if field == "webhook_id" else listings.event_id
        response = other.get("/v1/deliveries", params={field: value})

    error = assert_error(response, 400, "validation_error", field)
    assert error["code"] == "filter_not_found"


def test_delivery_filter_checked_before_cursor(account: Account, listings: Listings) -> None:
    response = account.client.get(
        "/v1/deliveries", params={"event_id": "nope", "starting_after": MISSING_ID}
    )

    error = assert_error(response, 400, "validation_error", "event_id")
    assert error["code"] == "filter_not_found"


@pytest.mark.parametrize("field", ["webhook_id", "event_id"])
def test_delivery_filter_with_no_deliveries_is_empty(
    account: Account, receiver: Receiver, field: str
) -> None:
    # A webhook subscribed to a type this test never publishes, and an event no webhook receives.
    webhook = create_webhook(account.client, receiver.url, ["system.maintenance"])
    event = publish(account.client, "usage.warning")
    value = webhook["id"] if field == "webhook_id" else event["id"]

    response = account.client.get("/v1/deliveries", params={field: value})

    assert response.status_code == 200, response.text
    assert response.json()["data"] == []


def test_delivery_filter_keeps_deleted_webhook_log(account: Account, listings: Listings) -> None:
    assert account.client.delete(f"/v1/webhooks/{listings.webhook_id}").status_code == 200

    response = account.client.get("/v1/deliveries", params={"webhook_id": listings.webhook_id})

    assert response.status_code == 200, response.text
    assert [item["id"] for item in response.json()["data"]] == [listings.delivery_id]


@pytest.mark.parametrize("event_type", ["nosuch.type", "generation", "model.train.*", "*.failed"])
def test_event_type_filter_unknown_is_400(account: Account, event_type: str) -> None:
    response = account.client.get("/v1/events", params={"type": event_type})

    error = assert_error(response, 400, "validation_error", "type")
    assert error["code"] == "unknown_event_type"
    assert error["details"]["value"] == event_type
    assert "generation.completed" in error["details"]["valid"]
    assert "GET /v1/event_types" in error["message"]


# (type filter, the published types it lists, newest first)
TYPE_FILTERS = [
    ("generation.completed", ["generation.completed"]),
    ("generation.*", ["generation.failed", "generation.completed"]),
    ("model.training.*", ["model.training.started"]),
    ("model.*", ["model.training.started"]),
    ("*", ["system.update", "model.training.started", "generation.failed", "generation.completed"]),
    ("analysis.completed", []),  # a catalog type with no events yet
]


@pytest.mark.parametrize(("event_type", "listed"), TYPE_FILTERS)
def test_event_type_filter_takes_patterns(
    account: Account, event_type: str, listed: list[str]
) -> None:
    for published in ["generation.completed", "generation.failed"]:
        publish(account.client, published)
    publish(account.client, "model.training.started")
    publish(account.client, "system.update")

    response = account.client.get("/v1/events", params={"type": event_type})

    assert response.status_code == 200, response.text
    assert [event["type"] for event in response.json()["data"]] == listed
