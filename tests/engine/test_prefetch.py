"""The queue of claimed deliveries waiting to start, and the cache of decrypted secrets."""

from __future__ import annotations

import json

from cryptography.fernet import Fernet

from wp_llm.server.crypto import SecretBox
from wp_llm.server.engine.prefetch import ClaimedQueue
from wp_llm.server.engine.secrets import SecretCache
from wp_llm.server.store.deliveries import ClaimedDelivery


def delivery(delivery_id: str, webhook_id: str) -> ClaimedDelivery:
    return ClaimedDelivery(
        id=delivery_id,
        account_id="acct_1",
        event_id=f"evt_{delivery_id}",
        event_type="generation.completed",
        webhook_id=webhook_id,
        attempt_count=0,
        url="https://example.com/hook",
        secrets_json="[]",
        body=b"{}",
    )


def test_queue_takes_oldest_first_per_webhook() -> None:
    queue = ClaimedQueue()
    queue.put(delivery("d1", "wh_a"), now=1.0)
    queue.put(delivery("d2", "wh_b"), now=1.0)
    queue.put(delivery("d3", "wh_a"), now=2.0)
    assert queue.counts() == {"wh_a": 2, "wh_b": 1}
    oldest = queue.take("wh_a")
    assert oldest is not None
    assert oldest.id == "d1"
    assert len(queue) == 2


def test_queue_take_from_empty_webhook_returns_none() -> None:
    queue = ClaimedQueue()
    assert queue.take("wh_a") is None
    assert queue.webhooks() == []


def test_queue_returns_old_deliveries() -> None:
    queue = ClaimedQueue()
    queue.put(delivery("d1", "wh_a"), now=1.0)
    queue.put(delivery("d2", "wh_a"), now=5.0)
    queue.put(delivery("d3", "wh_b"), now=2.0)
    expired = queue.remove_stale(queued_before=3.0, leased_before=0.0)
    assert sorted(item.id for item in expired) == ["d1", "d3"]
    assert queue.counts() == {"wh_a": 1}
    assert len(queue) == 1


def test_queue_returns_unconfirmed_leases() -> None:
    queue = ClaimedQueue()
    # Queued at 5.0 by a claim that started at 1.0: the lease runs from 1.0.
    queue.put(delivery("d1", "wh_a"), now=5.0, leased_at=1.0)
    queue.put(delivery("d2", "wh_a"), now=5.0, leased_at=4.0)
    expired = queue.remove_stale(queued_before=0.0, leased_before=3.0)
    assert [item.id for item in expired] == ["d1"]
    assert [item.id for item in queue] == ["d2"]


def test_queue_takes_past_unconfirmed_leases() -> None:
    queue = ClaimedQueue()
    queue.put(delivery("d1", "wh_a"), now=5.0, leased_at=1.0)
    queue.put(delivery("d2", "wh_a"), now=5.0, leased_at=2.0)
    queue.put(delivery("d3", "wh_a"), now=5.0, leased_at=4.0)
    queue.put(delivery("d4", "wh_b"), now=5.0, leased_at=1.0)
    lapsed: list[ClaimedDelivery] = []
    found = queue.take_confirmed("wh_a", 3.0, lapsed)
    assert found is not None
    assert found.id == "d3"
    assert [item.id for item in lapsed] == ["d1", "d2"]
    assert queue.counts() == {"wh_b": 1}
    assert len(queue) == 1
    # Nothing confirmed recently enough: no delivery, and the webhook's queue is gone.
    assert queue.take_confirmed("wh_b", 3.0, lapsed) is None
    assert [item.id for item in lapsed] == ["d1", "d2", "d4"]
    assert queue.webhooks() == []
    assert len(queue) == 0


def test_renewal_drops_lost_leases() -> None:
    queue = ClaimedQueue()
    queue.put(delivery("d1", "wh_a"), now=1.0)
    queue.put(delivery("d2", "wh_a"), now=1.0)
    queue.put(delivery("d3", "wh_b"), now=1.0)
    # Claimed after the renewal listed the queue: the renewal did not cover it.
    queue.put(delivery("d4", "wh_b"), now=7.0)
    lost = queue.renewed(listed_at=6.0, still_leased={"d1", "d3"})
    assert [item.id for item in lost] == ["d2"]
    assert len(queue) == 3
    # d1 and d3 now count as leased from 6.0; d4 keeps its own claim time.
    expired = queue.remove_stale(queued_before=0.0, leased_before=6.5)
    assert sorted(item.id for item in expired) == ["d1", "d3"]
    assert [item.id for item in queue] == ["d4"]


def test_queue_removes_one_webhook() -> None:
    queue = ClaimedQueue()
    queue.put(delivery("d1", "wh_a"), now=1.0)
    queue.put(delivery("d2", "wh_b"), now=1.0)
    assert [item.id for item in queue.remove_webhook("wh_a")] == ["d1"]
    assert [item.id for item in queue] == ["d2"]
    assert [item.id for item in queue.remove_all()] == ["d2"]
    assert len(queue) == 0


def stored_secrets(box: SecretBox, *entries: tuple[str, int | None]) -> str:
    return json.dumps(
        [{"secret": box.encrypt(secret), "expires_at": expires} for secret, expires in entries]
    )


def test_secret_cache_drops_secret_when_grace_period_ends() -> None:
    box = SecretBox(Fernet.generate_key())
    cache = SecretCache(box)
    stored = stored_secrets(box, ("whsec_new", None), ("whsec_old", 2_000))
    assert cache.active(stored, now_ms=1_000) == ["whsec_new", "whsec_old"]
    assert cache.active(stored, now_ms=1_999) == ["whsec_new", "whsec_old"]
    assert cache.active(stored, now_ms=2_000) == ["whsec_new"]


def test_secret_cache_reads_rotated_secrets_at_once() -> None:
    box = SecretBox(Fernet.generate_key())
    cache = SecretCache(box)
    assert cache.active(stored_secrets(box, ("whsec_first", None)), now_ms=0) == ["whsec_first"]
    rotated = stored_secrets(box, ("whsec_second", None), ("whsec_first", 10_000))
    assert cache.active(rotated, now_ms=1) == ["whsec_second", "whsec_first"]
