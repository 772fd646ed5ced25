"""Keeps webhook URLs from reaching the service's own network.

URLs are checked when a webhook is saved. Every address a host name resolves to is
checked again at connect time, and the connection then goes to a checked address, so a
name that re-resolves to a private address (DNS rebinding) is still rejected.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit, urlunsplit

import idna
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

MAX_URL_LENGTH = 2048
MAX_PORT = 65535

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Ranges that `ipaddress` does not flag as private but that reach internal services.
_EXTRA_BLOCKED: tuple[IPNetwork, ...] = (
    # Carrier-grade NAT, which contains some cloud metadata services.
    ipaddress.ip_network("100.64.0.0/10"),
    ipaddress.ip_network("192.0.0.0/24"),
    ipaddress.ip_network("198.18.0.0/15"),
    ipaddress.ip_network("64:ff9b::/96"),  # NAT64, which embeds IPv4 addresses
)

# Cloud metadata services hand out credentials, so they stay blocked even when the
# operator allows private networks. Only WP_LLM_ALLOWED_NETWORKS can open them.
_METADATA_ADDRESSES: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("169.254.169.254/32"),  # AWS, GCP, Azure, DigitalOcean, OpenStack
    ipaddress.ip_network("169.254.170.2/32"),  # AWS ECS task metadata
    ipaddress.ip_network("100.100.100.200/32"),  # Alibaba Cloud
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS over IPv6
)


class BlockedURLError(ValueError):
    """A webhook URL is malformed or points at an address the service may not reach."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class AddressPolicy:
    """The rule for which IP addresses deliveries may connect to."""

    allow_private: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()

    def blocked_reason(self, address: IPAddress) -> str | None:
        """Return why the address is refused, or None when it may be used."""
        address = _embedded_ipv4(address)
        if any(address in network for network in self.allowed_networks):
            return None
        if any(address in network for network in _METADATA_ADDRESSES):
            return "a cloud metadata address"
        if self.allow_private:
            return None if not address.is_multicast else "a multicast address"
        return _classify(address)


def _embedded_ipv4(address: IPAddress) -> IPAddress:
    """Return the IPv4 address that an IPv4-mapped or 6to4 IPv6 address reaches."""
    if isinstance(address, ipaddress.IPv6Address):
        return address.ipv4_mapped or address.sixtofour or address
    return address


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


# The policy of --allow-private-networks alone. Errors suggest that switch only where it helps.
_PRIVATE_NETWORKS_ALLOWED = AddressPolicy(allow_private=True)


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
        raise BlockedURLError(
            f"The URL host is not a valid domain name: {error}.", code="invalid_url"
        ) from None


# Whitespace, controls and backslashes: parsers disagree on them, or drop them silently.
_FORBIDDEN_URL_CHARACTERS = frozenset(" \\\x7f")


def _split(url: str) -> SplitResult:
    if len(url) > MAX_URL_LENGTH:
        raise BlockedURLError(
            f"The URL is {len(url)} characters long; the maximum is {MAX_URL_LENGTH}.",
            code="url_too_long",
        )
    bad = next((c for c in url.strip() if c in _FORBIDDEN_URL_CHARACTERS or ord(c) < 0x20), None)
    if bad is not None:
        raise BlockedURLError(
            f"The URL contains {bad!r}, which a URL may not contain; percent-encode it.",
            code="invalid_url",
        )
    try:
        parts = urlsplit(url.strip())
    except ValueError as error:
        raise BlockedURLError(f"The URL is malformed: {error}.", code="invalid_url") from None
    _check_port(parts)
    if parts.scheme not in {"http", "https"}:
        raise BlockedURLError(
            f"The URL must start with http:// or https://, got {parts.scheme or 'no'} scheme.",
            code="invalid_url_scheme",
        )
    if not parts.hostname:
        raise BlockedURLError("The URL has no host.", code="invalid_url")
    return parts


def _check_port(parts: SplitResult) -> None:
    """Reject a port outside 1-65535, naming it.

    No server listens on port 0. The stored URL would also drop it, which sends
    deliveries to the scheme's default port instead.
    """
    host_and_port = parts.netloc.rpartition("@")[2]
    # An IPv6 literal contains colons, so the port starts after its closing bracket.
    raw_port = host_and_port.rpartition("]")[2].partition(":")[2]
    if not raw_port:
        return
    if not (raw_port.isascii() and raw_port.isdigit() and 1 <= int(raw_port) <= MAX_PORT):
        raise BlockedURLError(
            f"The URL port {raw_port[:20]!r} is invalid; use a port from 1 to {MAX_PORT}.",
            code="invalid_url",
        )


def _ip_literal(host: str) -> IPAddress | None:
    """Parse an IP literal, including the legacy IPv4 forms that resolvers accept.

    `socket.inet_aton` reads `2130706433`, `0x7f.1` and `127.1` as 127.0.0.1, and so
    does the system resolver, so such a host is checked as the address it reaches.
    """
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if not host or not all(c in _LEGACY_IPV4_CHARACTERS for c in host.lower()):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


_LEGACY_IPV4_CHARACTERS = frozenset("0123456789abcdefx.")
# Names under `localhost` are loopback names, which resolvers map to loopback addresses.
LOOPBACK_NAME = "localhost"
_LOOPBACK_ADDRESSES = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))


def _not_allowed(reason: str, *, private_switch_allows: bool) -> BlockedURLError:
    """Build the error for a blocked address, naming only the settings that can open it."""
    if private_switch_allows:
        message = (
            f"The URL points at {reason}, which deliveries may not reach; the operator can "
            "allow it with --allow-private-networks or WP_LLM_ALLOWED_NETWORKS."
        )
    else:
        message = (
            f"The URL points at {reason}, which deliveries may not reach even with "
            "--allow-private-networks; the operator can allow it only by listing it in "
            "WP_LLM_ALLOWED_NETWORKS."
        )
    return BlockedURLError(message, code="url_not_allowed")


def check_url(url: str, policy: AddressPolicy) -> str:
    """Validate and normalize a webhook URL; raise BlockedURLError with a reason.

    Host names are not resolved here: their addresses are checked at every connection.
    """
    parts = _split(url)
    raw_host = parts.hostname or ""
    literal = _ip_literal(raw_host)
    host = raw_host
    if literal is None:
        host = _normalize_host(raw_host)
        # IDNA maps full-width digits and ideographic full stops to ASCII, so a name can
        # normalize into an IP literal ("１２７。0。0。1"): check the normalized form too.
        literal = _ip_literal(host)
        if literal is None and _looks_numeric(host):
            raise BlockedURLError(
                f"The URL host {host!r} is neither a valid IPv4 address nor a domain name.",
                code="invalid_url",
            )

    if literal is not None:
        reason = policy.blocked_reason(literal)
        if reason is not None:
            allows = _PRIVATE_NETWORKS_ALLOWED.blocked_reason(literal) is None
            raise _not_allowed(reason, private_switch_allows=allows)
        host = f"[{literal.compressed}]" if literal.version == 6 else literal.compressed
    else:
        loopback_name = host == LOOPBACK_NAME or host.endswith("." + LOOPBACK_NAME)
        if loopback_name and all(policy.blocked_reason(a) for a in _LOOPBACK_ADDRESSES):
            raise _not_allowed("a loopback name", private_switch_allows=True)

    netloc = host
    if literal is None and raw_host.endswith("."):
        # A trailing dot marks a fully qualified name, which the resolver must not
        # extend with its search domains, so dropping it could change the destination.
        netloc = f"{host}."
    userinfo = parts.netloc.rpartition("@")[0]
    if userinfo:
        netloc = f"{userinfo}@{netloc}"
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))


def _looks_numeric(host: str) -> bool:
    """True for hosts such as `256.1.1.1` or `1.2.3.4.5`: all-digit labels, yet no address."""
    labels = host.rstrip(".").split(".")
    return all(label.isdigit() for label in labels)


class BlockedAddressError(OSError):
    """A host name resolved only to addresses that deliveries may not reach."""


class GuardedResolver(AbstractResolver):
    """Resolves through `inner` (the system resolver by default), dropping refused addresses."""

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [r for r in results if self._allowed(r)]
        if not allowed:
            raise BlockedAddressError(
                f"{host} resolves only to addresses that deliveries may not reach"
            )
        return allowed

    def _allowed(self, result: ResolveResult) -> bool:
        try:
            address = ipaddress.ip_address(result["host"])
        except ValueError:
            return False
        return self._policy.blocked_reason(address) is None

    async def close(self) -> None:
        await self._inner.close()
