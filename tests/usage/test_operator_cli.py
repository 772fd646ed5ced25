"""The operator commands `wp-llm accounts …` and `wp-llm announce …`, run as real processes."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.conftest import drop_database_url, new_database_url
from tests.support.receiver import Receiver
from tests.usage.conftest import (
    UsageAccount,
    UsageService,
    events_of,
    new_account,
    run_cli,
    start_usage_service,
    subscribe,
)

MAINTENANCE = [
    "--message",
    "Database upgrade",
    "--starts-at",
    "2999-01-01T02:00:00Z",
    "--ends-at",
    "2999-01-01T03:00:00Z",
]


def cli(service: UsageService, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI on the service's database with the service's clock."""
    return run_cli(
        service.process.database_url, service.process.data_dir, *args, env=service.environment
    )


def listed(service: UsageService, account_id: str) -> dict[str, Any]:
    result = cli(service, "accounts", "list", "--json")
    assert result.returncode == 0, result.stderr
    [item] = [item for item in json.loads(result.stdout) if item["id"] == account_id]
    return dict(item)


@pytest.fixture
def own_service(backend: str, tmp_path: Path) -> Iterator[UsageService]:
    """A service on a fresh database, for tests that count every account in it."""
    url = new_database_url(backend, tmp_path)
    service = start_usage_service(tmp_path, url)
    yield service
    service.process.stop()
    service.engine.dispose()
    drop_database_url(url)


def test_accounts_list_shows_usage_and_limits(
    make_account: Callable[..., UsageAccount], usage_service: UsageService
) -> None:
    account = make_account(event_quota=50, rate_limit=5)
    for _ in range(3):
        account.client.post("/v1/events", json={"type": "system.update", "data": {"message": "m"}})

    item = listed(usage_service, account.id)

    assert item["name"] == account.name
    assert item["live_keys"] == 2
    assert item["events"] == 3
    assert item["event_quota"] == 50
    assert item["rate_limit"] == 5
    assert item["rate_limit_burst"] == 5
    assert item["overrides"] == {"rate_limit": 5, "event_quota": 50}


def test_accounts_list_prints_table(
    make_account: Callable[..., UsageAccount], usage_service: UsageService
) -> None:
    account = make_account(event_quota=50)

    result = cli(usage_service, "accounts", "list")

    assert result.returncode == 0, result.stderr
    for header in ("id", "name", "keys", "events in", "quota", "rate limit"):
        assert header in result.stdout
    [row] = [line for line in result.stdout.splitlines() if account.id in line]
    assert account.name in row
    assert "50 *" in row


def test_accounts_list_footnote_needs_override(own_service: UsageService) -> None:
    account = new_account(own_service)

    result = cli(own_service, "accounts", "list")

    assert result.returncode == 0, result.stderr
    assert account.id in result.stdout
    assert "set for this account" not in result.stdout


def test_accounts_show_lists_keys(
    make_account: Callable[..., UsageAccount], usage_service: UsageService
) -> None:
    account = make_account()

    result = cli(usage_service, "accounts", "show", account.name, "--json")

    assert result.returncode == 0, result.stderr
    detail = json.loads(result.stdout)
    assert detail["id"] == account.id
    assert len(detail["keys"]) == 2
    assert all("key_hash" not in key for key in detail["keys"])


def test_accounts_show_marks_revoked_key(
    make_account: Callable[..., UsageAccount], usage_service: UsageService
) -> None:
    account = make_account()
    first_key = json.loads(cli(usage_service, "accounts", "show", account.id, "--json").stdout)[
        "keys"
    ][0]
    revoked = cli(usage_service, "keys", "revoke", first_key["id"])

    result = cli(usage_service, "accounts", "show", account.id)

    assert revoked.returncode == 0, revoked.stderr
    assert "keys         1 live" in result.stdout
    [line] = [line for line in result.stdout.splitlines() if first_key["id"] in line]
    assert "revoked" in line


def test_accounts_show_unknown_account_fails(usage_service: UsageService) -> None:
    # Brackets would be Rich markup if the message were not escaped.
    result = cli(usage_service, "accounts", "show", "[no-such]account")

    assert result.returncode == 2
    assert "no account with id or name '[no-such]account'" in result.stderr
    assert "wp-llm accounts list" in result.stderr


def test_set_limits_applies_to_running_service(
    make_account: Callable[..., UsageAccount], usage_service: UsageService
) -> None:
    account = make_account()

    result = cli(
        usage_service,
        "accounts",
        "set-limits",
        account.name,
        "--rate-limit",
        "0.001",
        "--burst",
        "2",
    )
    statuses = [account.client.get("/v1/webhooks").status_code for _ in range(3)]

    assert result.returncode == 0, result.stderr
    assert "0.001/s, burst 2 (set for this account)" in result.stdout
    assert statuses == [200, 200, 429]


def test_set_limits_clear_restores_defaults(
    make_account: Callable[..., UsageAccount], usage_service: UsageService
) -> None:
    account = make_account(rate_limit=2, event_quota=9)

    result = cli(usage_service, "accounts", "set-limits", account.id, "--clear")

    assert result.returncode == 0, result.stderr
    item = listed(usage_service, account.id)
    assert item["overrides"] == {}
    assert item["rate_limit"] == 1000
    assert item["event_quota"] == 0


def test_set_limits_keeps_other_overrides(
    make_account: Callable[..., UsageAccount], usage_service: UsageService
) -> None:
    account = make_account(event_quota=9)

    cli(usage_service, "accounts", "set-limits", account.id, "--burst", "7")

    assert listed(usage_service, account.id)["overrides"] == {
        "event_quota": 9,
        "rate_limit_burst": 7,
    }


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ([], "nothing to change"),
        (["--clear", "--burst", "3"], "pass it alone"),
        (["--burst", "0"], "--burst"),
        (["--rate-limit", "-1"], "--rate-limit"),
        (["--rate-limit", "fast"], "--rate-limit"),
        (["--event-quota", "-5"], "--event-quota"),
    ],
)
def test_set_limits_rejects_bad_input(
    make_account: Callable[..., UsageAccount],
    usage_service: UsageService,
    options: list[str],
    expected: str,
) -> None:
    account = make_account()

    result = cli(usage_service, "accounts", "set-limits", account.name, *options)

    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert listed(usage_service, account.id)["overrides"] == {}


def test_set_limits_unknown_account_fails(usage_service: UsageService) -> None:
    result = cli(usage_service, "accounts", "set-limits", "no-such-account", "--burst", "3")

    assert result.returncode == 2
    assert "no account with id or name" in result.stderr


def test_announce_maintenance_reaches_subscribed_accounts_only(own_service: UsageService) -> None:
    subscribed, wildcard, other, disabled = (new_account(own_service) for _ in range(4))
    unsubscribed = new_account(own_service)
    reached, silent = Receiver().start(), Receiver().start()
    try:
        subscribe(subscribed, reached.url, ["system.*"])
        subscribe(wildcard, reached.url, ["*"])
        subscribe(other, silent.url, ["generation.*"])
        subscribe(disabled, silent.url, ["system.maintenance"], enabled=False)

        result = cli(own_service, "announce", "maintenance", *MAINTENANCE)

        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "published system.maintenance to 2 accounts (2 deliveries)"
        delivered = reached.wait_for(2)
        bodies = [json.loads(request.body) for request in delivered]
        assert {body["type"] for body in bodies} == {"system.maintenance"}
        assert bodies[0]["data"] == {
            "message": "Database upgrade",
            "starts_at": 32472151200,
            "ends_at": 32472154800,
        }
        time.sleep(1.0)
        assert silent.requests == []
        for account in (other, disabled, unsubscribed):
            assert events_of(own_service.engine, account.id) == []
    finally:
        reached.stop()
        silent.stop()


def test_announce_update_carries_version(own_service: UsageService, receiver: Receiver) -> None:
    account = new_account(own_service)
    subscribe(account, receiver.url, ["system.update"])

    result = cli(
        own_service, "announce", "update", "--message", "New model", "--version", "2024.02.1"
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "published system.update to 1 account (1 delivery)"
    [delivered] = receiver.wait_for(1)
    data = json.loads(delivered.body)["data"]
    assert data["version"] == "2024.02.1"
    assert abs(data["published_at"] - own_service.clock.now()) < 60


def test_announce_without_subscribers_publishes_nothing(
    fresh_database: tuple[str, Engine], tmp_path: Path
) -> None:
    url, engine = fresh_database

    result = run_cli(url, tmp_path, "announce", "update", "--message", "New model")

    assert result.returncode == 0, result.stderr
    assert "nothing was published" in result.stdout


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (
            [
                "maintenance",
                "--message",
                "m",
                "--starts-at",
                "2999-01-01T03:00:00Z",
                "--ends-at",
                "2999-01-01T02:00:00Z",
            ],
            "is not before --ends-at",
        ),
        (
            [
                "maintenance",
                "--message",
                "m",
                "--starts-at",
                "2999-01-01T02:00:00",
                "--ends-at",
                "2999-01-01T03:00:00Z",
            ],
            "has no UTC offset",
        ),
        (
            ["maintenance", "--message", "m", "--starts-at", "2999-01-01T02:00:00Z"],
            "needs --starts-at and --ends-at",
        ),
        (
            [
                "maintenance",
                "--message",
                "m",
                "--starts-at",
                "2000-01-01T02:00:00Z",
                "--ends-at",
                "2000-01-01T03:00:00Z",
            ],
            "is in the past",
        ),
        (
            ["maintenance", "--message", "m", "--starts-at", "soon", "--ends-at", "later"],
            "is not an ISO 8601 time",
        ),
        (["update", "--message", "  "], "--message is empty"),
        (["update", "--message", "m", "--version", ""], "--version must be"),
        (["update", "--message", "m", "--published-at", "yesterday"], "is not an ISO 8601 time"),
        (["update"], "--message"),
    ],
)
def test_announce_rejects_bad_input(
    fresh_database: tuple[str, Engine], tmp_path: Path, arguments: list[str], expected: str
) -> None:
    url, _ = fresh_database

    result = run_cli(url, tmp_path, "announce", *arguments)

    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
