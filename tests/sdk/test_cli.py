"""The client commands of `wp-llm`, run in process against the real service."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

import wp_llm
import wp_llm.cli._client  # noqa: F401 - registers the client commands on the app
from tests.conftest import Account
from tests.sdk.conftest import EXAMPLE_URL, GENERATION_STARTED
from tests.support.receiver import Receiver, Reply
from wp_llm.cli import app

Invoke = Callable[..., Result]


@pytest.fixture
def invoke(account: Account) -> Invoke:
    """Run `wp-llm ARGS` with the account's key and the service's URL in the environment."""
    runner = CliRunner()
    env = {
        "WP_LLM_API_KEY": account.key,
        "WP_LLM_BASE_URL": account.service.base_url,
        "COLUMNS": "200",
    }

    def run(*args: str, extra_env: dict[str, str] | None = None) -> Result:
        return runner.invoke(app, list(args), env={**env, **(extra_env or {})})

    return run


def assert_clean_failure(result: Result, code: int, *phrases: str) -> None:
    """Check the exit code, and that the message contains each phrase and no traceback."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    message = " ".join(result.stderr.split())
    for phrase in phrases:
        assert phrase in message


def create_webhook(invoke: Invoke, url: str = EXAMPLE_URL, *events: str) -> dict[str, object]:
    result = invoke(
        "webhooks", "create", "--url", url, "--events", ",".join(events or ("*",)), "--json"
    )
    assert result.exit_code == 0, result.output
    created: dict[str, object] = json.loads(result.stdout)
    return created


def test_trigger_publishes_catalog_example(invoke: Invoke) -> None:
    result = invoke("trigger", "analysis.completed")

    assert result.exit_code == 0, result.output
    event = json.loads(result.stdout)
    assert event["type"] == "analysis.completed"
    assert list(event) == ["id", "object", "created", "type", "data"]
    assert f"published analysis.completed as {event['id']}" in result.stderr


def test_trigger_sends_given_data(invoke: Invoke) -> None:
    data = {"quota": 10, "current_usage": 8, "threshold": 80, "period_start": 1, "period_end": 2}

    result = invoke("trigger", "usage.warning", "--data", json.dumps(data))

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["data"] == data


@pytest.mark.parametrize(
    ("args", "phrases"),
    [
        (
            ["trigger", "no.such.type"],
            ["unknown event type 'no.such.type'", "generation.completed"],
        ),
        (
            ["trigger", "usage.warning", "--data", "{not json"],
            ["--data is not valid JSON", "quote it"],
        ),
        (
            ["trigger", "usage.warning", "--data", "[1, 2]"],
            ["--data must be a JSON object, got list"],
        ),
        (["webhooks", "update", "webhook_x"], ["nothing to update", "--url"]),
        (["deliveries", "list", "--status", "lost"], ["--status must be one of pending"]),
        (
            ["listen", "--forward-to", "localhost:3000"],
            ["--forward-to must be an http:// or https:// URL"],
        ),
    ],
)
def test_cli_bad_input_says_what_to_do(invoke: Invoke, args: list[str], phrases: list[str]) -> None:
    assert_clean_failure(invoke(*args), 2, *phrases)


def test_cli_without_key_says_how_to_get_one(invoke: Invoke) -> None:
    result = invoke("webhooks", "list", extra_env={"WP_LLM_API_KEY": ""})

    assert_clean_failure(result, 2, "no API key", "wp-llm keys create")


def test_cli_with_wrong_key_names_the_option(invoke: Invoke) -> None:
    result = invoke("webhooks", "list", "--api-key", "wpllm_sk_wrong")

    assert_clean_failure(result, 1, "Check --api-key or WP_LLM_API_KEY")
    assert "wpllm_sk_wrong" not in result.output


def test_cli_unreachable_service_says_how_to_start_it(invoke: Invoke) -> None:
    result = invoke("webhooks", "list", "--base-url", "http://127.0.0.1:9")

    assert_clean_failure(
        result, 1, "cannot reach the service at http://127.0.0.1:9", "wp-llm serve"
    )


def test_cli_base_url_with_version_path(invoke: Invoke, account: Account) -> None:
    webhook_id = str(create_webhook(invoke)["id"])

    result = invoke(
        "webhooks", "list", extra_env={"WP_LLM_BASE_URL": account.service.base_url + "/v1"}
    )

    assert result.exit_code == 0, result.output
    assert webhook_id in result.stdout


def test_cli_delivery_filter_naming_nothing(invoke: Invoke) -> None:
    result = invoke("deliveries", "list", "--webhook", "webhook_missing")

    assert_clean_failure(result, 1, "No webhook with id 'webhook_missing'", "[field: webhook_id]")


def test_cli_malformed_base_url_is_named(invoke: Invoke) -> None:
    assert_clean_failure(invoke("webhooks", "list", "--base-url", "ftp://x"), 2, "--base-url")


def test_cli_unknown_id_reports_not_found(invoke: Invoke) -> None:
    assert_clean_failure(
        invoke("webhooks", "get", "webhook_missing"), 1, "No webhook with id 'webhook_missing'"
    )


def test_cli_invalid_url_names_the_field(invoke: Invoke) -> None:
    result = invoke("webhooks", "create", "--url", "ftp://example.com", "--events", "*")

    assert_clean_failure(result, 1, "http:// or https://", "[field: url]")


def test_cli_update_port_zero_rejected(invoke: Invoke) -> None:
    webhook_id = str(create_webhook(invoke)["id"])

    result = invoke("webhooks", "update", webhook_id, "--url", "http://127.0.0.1:0/")

    assert_clean_failure(result, 1, "port '0' is invalid", "[field: url]")


def test_cli_metadata_url_names_the_only_setting(invoke: Invoke) -> None:
    # The test service runs with WP_LLM_ALLOW_PRIVATE_NETWORKS=1, the same as the flag.
    result = invoke("webhooks", "create", "--url", "http://169.254.169.254/x", "--events", "*")

    assert_clean_failure(
        result,
        1,
        "cloud metadata address",
        "even with --allow-private-networks",
        "only by listing it in WP_LLM_ALLOWED_NETWORKS",
        "[field: url]",
    )
    assert "allow it with --allow-private-networks" not in result.output


def test_webhooks_create_shows_secret_once(invoke: Invoke) -> None:
    result = invoke(
        "webhooks",
        "create",
        "--url",
        EXAMPLE_URL,
        "--events",
        "generation.*",
        "--events",
        "usage.*",
    )

    assert result.exit_code == 0, result.output
    assert "webhook_" in result.stdout
    assert "generation.*, usage.*" in result.stdout
    assert "signing secret (shown only now):" in result.stderr
    assert "whsec_" in result.stderr


def test_webhooks_create_json_has_secret(invoke: Invoke) -> None:
    created = create_webhook(invoke, EXAMPLE_URL, "generation.*", "usage.warning")

    assert created["secret"]
    assert created["events"] == ["generation.*", "usage.warning"]


def test_webhooks_list_table_and_pages(invoke: Invoke) -> None:
    ids = [create_webhook(invoke)["id"] for _ in range(3)]

    table = invoke("webhooks", "list", "--limit", "2")
    everything = invoke("webhooks", "list", "--limit", "2", "--all", "--json")

    assert table.exit_code == 0, table.output
    assert str(ids[2]) in table.stdout
    assert str(ids[0]) not in table.stdout
    assert f"--starting-after {ids[1]}" in " ".join(table.stderr.split())
    listed = json.loads(everything.stdout)
    assert [webhook["id"] for webhook in listed["data"]] == ids[::-1]
    assert listed["has_more"] is False


def test_webhooks_get_update_delete(invoke: Invoke) -> None:
    webhook_id = str(create_webhook(invoke)["id"])

    shown = invoke("webhooks", "get", webhook_id, "--json")
    updated = invoke(
        "webhooks", "update", webhook_id, "--disable", "--events", "analysis.*", "--json"
    )
    deleted = invoke("webhooks", "delete", webhook_id)
    gone = invoke("webhooks", "get", webhook_id)

    assert json.loads(shown.stdout)["id"] == webhook_id
    assert json.loads(updated.stdout)["enabled"] is False
    assert json.loads(updated.stdout)["events"] == ["analysis.*"]
    assert f"deleted {webhook_id}" in deleted.stderr
    assert gone.exit_code == 1


def test_webhooks_update_clears_description(invoke: Invoke) -> None:
    webhook_id = str(create_webhook(invoke)["id"])
    invoke("webhooks", "update", webhook_id, "--description", "before")

    result = invoke("webhooks", "update", webhook_id, "--description", "", "--json")

    assert json.loads(result.stdout)["description"] is None


def test_webhooks_test_succeeds_on_2xx(invoke: Invoke, receiver: Receiver) -> None:
    receiver.reply_with(Reply(status=200, body=b"ok"))
    webhook_id = str(create_webhook(invoke, receiver.url)["id"])

    result = invoke("webhooks", "test", webhook_id, "--type", "usage.warning")

    assert result.exit_code == 0, result.output
    assert "usage.warning" in result.stdout
    assert receiver.wait_for(1)[0].headers["x-wp-llm-event"] == "usage.warning"


def test_webhooks_test_exits_1_on_endpoint_failure(invoke: Invoke, receiver: Receiver) -> None:
    receiver.reply_with(Reply(status=500, body=b"broken"))
    webhook_id = str(create_webhook(invoke, receiver.url)["id"])

    result = invoke("webhooks", "test", webhook_id, "--json")

    assert result.exit_code == 1
    assert json.loads(result.stdout)["status_code"] == 500


def test_deliveries_list_get_retry(invoke: Invoke, receiver: Receiver) -> None:
    receiver.reply_with(Reply(status=503))
    webhook_id = str(create_webhook(invoke, receiver.url, "analysis.completed")["id"])
    event = json.loads(invoke("trigger", "analysis.completed").stdout)
    receiver.wait_for(1)

    listed = invoke("deliveries", "list", "--webhook", webhook_id, "--json")
    [delivery] = json.loads(listed.stdout)["data"]
    table = invoke("deliveries", "list", "--event", event["id"])
    shown = invoke("deliveries", "get", delivery["id"])
    retried = invoke("deliveries", "retry", delivery["id"], "--json")
    retried_again = invoke("deliveries", "retry", delivery["id"])

    assert delivery["event_id"] == event["id"]
    assert delivery["id"] in table.stdout
    assert shown.exit_code == 0, shown.output
    assert "503" in shown.stdout
    # Times in UTC, not Unix seconds.
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", shown.stdout)
    assert json.loads(retried.stdout)["status"] == "pending"
    assert f"{delivery['id']} is pending" in retried_again.stdout


def test_webhooks_rotate_secret_shows_new_secret(invoke: Invoke) -> None:
    webhook_id = str(create_webhook(invoke)["id"])

    shown = invoke("webhooks", "rotate-secret", webhook_id, "--grace-period", "60")
    as_json = invoke(
        "webhooks", "rotate-secret", webhook_id, "--secret", "cli-secret-789", "--json"
    )

    assert shown.exit_code == 0, shown.output
    assert "new signing secret (shown only now):" in shown.stderr
    assert "the old secrets keep signing until" in shown.stderr
    assert json.loads(as_json.stdout)["secret"] == "cli-secret-789"


def test_webhooks_replay_counts_and_queues(
    invoke: Invoke, client: wp_llm.Client, receiver: Receiver
) -> None:
    receiver.reply_with(Reply(status=500))
    # No retries, so the delivery fails for good after one attempt.
    webhook = client.webhooks.create(url=receiver.url, events=["*"], retry_schedule=[])
    event = client.events.create(type="generation.started", data=GENERATION_STARTED)
    receiver.wait_for(1)
    [delivery] = client.deliveries.list(event_id=event.id)
    deadline = time.monotonic() + 15
    while client.deliveries.retrieve(delivery.id).status != "failed":
        assert time.monotonic() < deadline
        time.sleep(0.1)

    dry = invoke("webhooks", "replay", webhook.id, "--since", "1h", "--dry-run")
    queued = invoke(
        "webhooks", "replay", webhook.id, "--since", "0", "--status", "failed", "--json"
    )
    receiver.wait_for(2)

    assert dry.exit_code == 0, dry.output
    assert "1 deliveries match" in dry.stderr
    assert json.loads(queued.stdout)["count"] == 1


@pytest.mark.parametrize(
    ("args", "phrases"),
    [
        (["--since", "yesterday"], ["--since must be Unix seconds or a duration ago", "2h"]),
        (["--since", "1h", "--until", "soon"], ["--until must be Unix seconds"]),
        (
            ["--since", "1h", "--status", "cancelled"],
            ["--status must be one of pending, succeeded"],
        ),
    ],
)
def test_webhooks_replay_bad_input(invoke: Invoke, args: list[str], phrases: list[str]) -> None:
    assert_clean_failure(invoke("webhooks", "replay", "webhook_x", *args), 2, *phrases)


def test_migrate_says_what_it_did(tmp_path: Path) -> None:
    from wp_llm.cli import _server  # noqa: F401 - registers the service commands

    arguments = ["migrate", "--database", f"sqlite:///{tmp_path / 'fresh.db'}"]
    created = CliRunner().invoke(app, arguments)
    again = CliRunner().invoke(app, arguments)

    assert created.exit_code == 0, created.output
    assert "database schema created at revision " in created.output
    assert again.exit_code == 0, again.output
    assert "database schema already at the newest revision, " in again.output


@pytest.mark.parametrize(
    ("command", "default"),
    [
        (["serve"], "(default: 127.0.0.1)"),
        (["worker"], "(default: ./var)"),
        (["migrate"], "(default: a SQLite file in the data dir)"),
        (["accounts", "set-limits"], "then show the account"),
    ],
)
def test_help_prints_defaults(command: list[str], default: str) -> None:
    from wp_llm.cli import _operator, _server  # noqa: F401 - registers the operator commands

    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "300"})

    assert result.exit_code == 0, result.output
    assert default in result.output
    # Square brackets in a help text are read as markup and dropped, leaving "on . [env".
    assert re.search(r"\S \.\s", result.output) is None
