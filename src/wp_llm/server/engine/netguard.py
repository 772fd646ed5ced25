"""Keeps webhook URLs from reaching the service's own network.

URLs are checked when a webhook is saved, and every address a host name resolves to
is checked again at connect time; the connection then goes to a checked address, so
a name that re-resolves to a private address (DNS rebinding) is still refused.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

import idna
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

MAX_URL_LENGTH = 2048

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Ranges that `ipaddress` does not flag as private but that reach internal services.
_EXTRA_BLOCKED: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("100.64.0.0/10"),  # carrier-grade NAT; holds some cloud metadata services
    ipaddress.ip_network("192.0.0.0/24"),
    ipaddress.ip_network("198.18.0.0/15"),
    ipaddress.ip_network("64:ff9b::/96"),  # NAT64, which embeds IPv4 addresses
)


class BlockedURLError(ValueError):
    """A webhook URL is malformed or points at an address the service may not reach."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class AddressPolicy:
    """Which IP addresses deliveries may connect to."""

    allow_private: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()

    def blocked_reason(self, address: IPAddress) -> str | None:
        """Return why the address is refused, or None when it may be used."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in network for network in self.allowed_networks):
            return None
        if self.allow_private:
            return None if not address.is_multicast else "a multicast address"
        return _classify(address)


def _classify(address: IPAddress) -> str | None:
    checks = (
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address (cloud metadata lives here)"),
        (address.is_multicast, "a multicast address"),
        (address.is_unspecified, "the unspecified address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (any(address in network for network in _EXTRA_BLOCKED), "an internal address range"),
    )
    for blocked, reason in checks:
        if blocked:
            return reason
    return None


def redact_url(url: str) -> str:
    """Hide credentials embedded in a URL before it is shown or logged."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = "***@" + host + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _normalize_host(host: str) -> str:
    try:
        return idna.encode(host.rstrip("."), uts46=True).decode("ascii")
    except idna.IDNAError as error:
        raise BlockedURLError(f"The URL host is not a valid domain name: {error}.", code="invalid_url") from None


def _split(url: str) -> SplitResult:
    if len(url) > MAX_URL_LENGTH:
        raise BlockedURLError(
            f"The URL is {len(url)} characters long; the maximum is {MAX_URL_LENGTH}.",
            code="url_too_long",
        )
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - parsing the port raises ValueError on a bad one
    except ValueError as error:
        raise BlockedURLError(f"The URL is malformed: {error}.", code="invalid_url") from None
    if parts.scheme not in {"http", "https"}:
        raise BlockedURLError(
            f"The URL must start with http:// or https://, got {parts.scheme or 'no'} scheme.",
            code="invalid_url_scheme",
        )
    if not parts.hostname:
        raise BlockedURLError("The URL has no host.", code="invalid_url")
    return parts


def check_url(url: str, policy: AddressPolicy) -> str:
    """Validate and normalize a webhook URL; raise BlockedURLError with a reason."""
    parts = _split(url)
    raw_host = parts.hostname or ""
    try:
        literal: IPAddress | None = ipaddress.ip_address(raw_host)
    except ValueError:
        literal = None

    if literal is not None:
        reason = policy.blocked_reason(literal)
        if reason is not None:
            raise BlockedURLError(
                f"The URL points at {reason}, which deliveries may not reach; the operator can "
                "allow it with --allow-private-networks or WP_LLM_ALLOWED_NETWORKS.",
                code="url_not_allowed",
            )
        host = f"[{literal.compressed}]" if literal.version == 6 else literal.compressed
    else:
        host = _normalize_host(raw_host)

    userinfo = parts.netloc.rpartition("@")[0]
    netloc = (userinfo + "@" if userinfo else "") + host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))


class GuardedResolver(AbstractResolver):
    """Resolves through the system resolver and drops every address the policy refuses."""

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [r for r in results if self._allowed(r)]
        if not allowed:
            raise OSError(f"{host} resolves only to addresses that deliveries may not reach")
        return allowed

    def _allowed(self, result: dict[str, Any]) -> bool:
        try:
            address = ipaddress.ip_address(result["host"])
        except ValueError:
            return False
        return self._policy.blocked_reason(address) is None

    async def close(self) -> None:
        await self._inner.close()
