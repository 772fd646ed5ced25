"""Quota periods and the notices a count makes due, as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from wp_llm.server.usage.quota import Period, QuotaNotices, QuotaPolicy, month_period


def unix(*parts: int) -> int:
    return int(datetime(*parts, tzinfo=UTC).timestamp())


@pytest.mark.parametrize(
    ("moment", "start", "end"),
    [
        (unix(2024, 2, 14, 12, 30), unix(2024, 2, 1), unix(2024, 3, 1)),
        (unix(2024, 2, 1), unix(2024, 2, 1), unix(2024, 3, 1)),
        # The last second of a month still belongs to it.
        (unix(2024, 2, 29, 23, 59, 59), unix(2024, 2, 1), unix(2024, 3, 1)),
        (unix(2023, 12, 31, 23, 0), unix(2023, 12, 1), unix(2024, 1, 1)),
        (unix(2024, 1, 1), unix(2024, 1, 1), unix(2024, 2, 1)),
    ],
)
def test_month_period_is_the_calendar_month_in_utc(moment: int, start: int, end: int) -> None:
    assert month_period(moment) == Period(start=start, end=end)


def test_month_period_label_and_end_text() -> None:
    period = month_period(unix(2024, 12, 5))

    assert period.label == "2024-12"
    assert period.end_text == "2025-01-01T00:00:00Z"


def test_period_seconds_left_is_at_least_one() -> None:
    period = month_period(unix(2024, 2, 14))

    assert period.seconds_left(period.end - 90.5) == 91
    assert period.seconds_left(period.end) == 1


def test_quota_policy_allows_up_to_quota() -> None:
    policy = QuotaPolicy(quota=3)

    assert policy.allows(2)
    assert not policy.allows(3)


def test_quota_policy_zero_is_unlimited() -> None:
    policy = QuotaPolicy(quota=0)

    assert policy.allows(10**9)
    assert not policy.notices_due(10**9, 0, False)


@pytest.mark.parametrize(
    ("count", "warned", "notified", "expected"),
    [
        (7, 0, False, QuotaNotices()),
        (8, 0, False, QuotaNotices(warnings=(80,))),
        # Once 80% was announced, the next count owes nothing until 90%.
        (8, 80, False, QuotaNotices()),
        (9, 80, False, QuotaNotices(warnings=(90,))),
        (10, 90, False, QuotaNotices(exceeded=True)),
        (10, 90, True, QuotaNotices()),
        # A count that jumps past both thresholds owes both warnings.
        (10, 0, False, QuotaNotices(warnings=(80, 90), exceeded=True)),
    ],
)
def test_quota_policy_notices_due(
    count: int, warned: int, notified: bool, expected: QuotaNotices
) -> None:
    assert (
        QuotaPolicy(quota=10, thresholds=(80, 90)).notices_due(count, warned, notified) == expected
    )


def test_quota_policy_threshold_needs_whole_events() -> None:
    policy = QuotaPolicy(quota=7, thresholds=(80,))

    # 80% of 7 is 5.6 events, so the warning comes with the sixth.
    assert not policy.notices_due(5, 0, False)
    assert policy.notices_due(6, 0, False) == QuotaNotices(warnings=(80,))
