"""Ids are ULIDs that python-ulid reads back, strictly increasing within one process."""

from __future__ import annotations

import random
import threading
import time

from ulid import ULID

from wp_llm.server import ids


def test_encoding_matches_python_ulid() -> None:
    generator = random.Random(7)
    values = [0, 1, 2**128 - 1, *(generator.getrandbits(128) for _ in range(2_000))]
    for value in values:
        assert ids.encode_ulid(value) == str(ULID.from_int(value))


def test_new_id_current_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    event_id = ids.new_id(ids.EVENT)
    after = time.time_ns() // 1_000_000
    prefix, _, text = event_id.partition("_")
    assert prefix == "evt"
    assert len(text) == 26
    assert before <= ULID.from_str(text).milliseconds <= after


def test_ids_unique_across_threads() -> None:
    per_thread: list[list[str]] = [[] for _ in range(4)]

    def generate(into: list[str]) -> None:
        into.extend(ids.new_id(ids.ATTEMPT) for _ in range(5_000))

    threads = [threading.Thread(target=generate, args=(into,)) for into in per_thread]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [attempt_id for into in per_thread for attempt_id in into]
    assert len(set(everything)) == len(everything)
    for into in per_thread:
        # Each thread gets its own ids in increasing order.
        assert into == sorted(into)


def test_first_id_at_bounds_millisecond() -> None:
    event_id = ids.new_id(ids.EVENT)
    ms = ULID.from_str(event_id.partition("_")[2]).milliseconds
    assert ids.first_id_at(ids.EVENT, ms) <= event_id
    assert event_id < ids.first_id_at(ids.EVENT, ms + 1)
    zero_randomness = ULID.from_bytes(ms.to_bytes(6, "big") + bytes(10))
    assert ids.first_id_at(ids.EVENT, ms) == f"evt_{zero_randomness}"
