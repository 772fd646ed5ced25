"""The state every scenario needs: the sink, the sizes, a work folder and system factories."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.ours import OurService, Topology
from bench.payload import event_data
from bench.peers.control import ARQ, PeerSetup, PeerSystem, celery_setup
from bench.profiles import Profile
from bench.sink import NginxSink

# Celery's own default: one prefork process per core. In one trial on a 2-core machine,
# 3,000 deliveries, it also beat prefork x8 and threads x64 for this I/O-bound task.
CELERY_POOL = "prefork"


@dataclass
class BenchContext:
    """Shared state of one suite run."""

    profile: Profile
    sink: NginxSink
    work_dir: Path
    secret_key: str
    data: dict[str, Any] = field(init=False)
    _counter: Iterator[int] = field(default_factory=itertools.count, init=False)

    def __post_init__(self) -> None:
        self.data = event_data(self.profile.event_bytes)

    @property
    def peers(self) -> tuple[PeerSetup, ...]:
        return (celery_setup(CELERY_POOL, os.cpu_count() or 1), ARQ)

    def prefix(self, scenario: str) -> str:
        """Return a URL path prefix no other run uses, so receipts of runs never mix."""
        return f"/{scenario}-{next(self._counter)}"

    def folder(self, name: str) -> Path:
        path = self.work_dir / f"{next(self._counter):03d}-{name}"
        path.mkdir(parents=True)
        return path

    def service_environment(self, **overrides: str) -> dict[str, str]:
        """Settings of every run of our service; a scenario may override some."""
        return {
            "WP_LLM_SECRET_KEY": self.secret_key,
            "WP_LLM_ALLOW_PRIVATE_NETWORKS": "1",
            "WP_LLM_PER_ENDPOINT_CONCURRENCY": str(self.profile.concurrency),
            "WP_LLM_LOG_LEVEL": "info",
            **overrides,
        }

    def our_service(self, topology: Topology, *, api: bool = False, **overrides: str) -> OurService:
        environment = self.service_environment(**overrides)
        return OurService(topology, self.folder(topology.name), environment, api=api)

    def peer(self, setup: PeerSetup, *, request_timeout: float = 15.0) -> PeerSystem:
        return PeerSystem(
            setup,
            self.folder(setup.name),
            concurrency=self.profile.concurrency,
            request_timeout=request_timeout,
        )
