"""Webhook URL checks at save time, and the address policy that every connection applies."""

from __future__ import annotations

import ipaddress

import pytest

from wp_llm.server.config import ConfigError, load_settings
from wp_llm.server.engine.netguard import (
    MAX_URL_LENGTH,
    AddressPolicy,
    BlockedURLError,
    check_url,
    redact_url,
)

STRICT = AddressPolicy()
PRIVATE_ALLOWED = AddressPolicy(allow_private=True)


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("ftp://example.com/hook", "invalid_url_scheme"),
        ("file:///etc/passwd", "invalid_url_scheme"),
        ("javascript:alert(1)", "invalid_url_scheme"),
        ("example.com/hook", "invalid_url_scheme"),
        ("http:///hook", "invalid_url"),
        ("http://example.com:99999/hook", "invalid_url"),
        ("http://example.com:0/hook", "invalid_url"),  # would be stored without the port
        ("http://example.com:00/hook", "invalid_url"),
        ("http://[2606:4700::1111]:0/hook", "invalid_url"),
        ("http://example.com:８０/hook", "invalid_url"),  # full-width digits
        ("http://exa mple.com/hook", "invalid_url"),
        ("http://" + "a" * MAX_URL_LENGTH + ".com/", "url_too_long"),
    ],
)
def test_check_url_rejects_malformed(url: str, code: str) -> None:
    with pytest.raises(BlockedURLError) as raised:
        check_url(url, STRICT)
    assert raised.value.code == code


@pytest.mark.parametrize("port", ["0", "65536", "99999", "http"])
def test_check_url_names_invalid_port(port: str) -> None:
    with pytest.raises(BlockedURLError) as raised:
        check_url(f"http://example.com:{port}/hook", STRICT)
    assert f"port {port!r}" in str(raised.value)
    assert "1 to 65535" in str(raised.value)


def test_check_url_accepts_length_limit() -> None:
    path = "/" + "p" * (MAX_URL_LENGTH - len("https://example.com/"))
    url = "https://example.com" + path
    assert len(url) == MAX_URL_LENGTH
    assert check_url(url, STRICT) == url


@pytest.mark.parametrize(
    ("url", "normalized"),
    [
        ("https://Example.COM/hook", "https://example.com/hook"),
        ("https://bücher.example/hook", "https://xn--bcher-kva.example/hook"),
        # The trailing dot keeps the resolver from trying its search domains.
        ("https://BÜCHER.example./hook", "https://xn--bcher-kva.example./hook"),
        ("https://example.com:0443/hook", "https://example.com:443/hook"),
        ("https://example.com:/hook", "https://example.com/hook"),  # empty port: the default
        ("https://example.com", "https://example.com/"),
        ("https://example.com/hook?a=1#frag", "https://example.com/hook?a=1"),
        ("https://[2606:4700:0:0:0:0:0:1111]:8443/h", "https://[2606:4700::1111]:8443/h"),
    ],
)
def test_check_url_normalizes(url: str, normalized: str) -> None:
    assert check_url(url, STRICT) == normalized


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://localhost:8080/hook",
        "http://api.localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.1.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[fd00:ec2::254]/hook",
        "http://[fe80::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",  # IPv4-mapped loopback
        "http://[2002:7f00:1::]/hook",  # 6to4 wrapping 127.0.0.1
        "http://0.0.0.0/hook",
        "http://[::]/hook",
        "http://224.0.0.1/hook",
        "http://2130706433/hook",  # 127.0.0.1 as one decimal number
        "http://0x7f.1/hook",  # 127.0.0.1 in hexadecimal shorthand
        "http://100.64.0.1/hook",  # carrier-grade NAT
    ],
)
def test_check_url_blocks_internal_hosts(url: str) -> None:
    with pytest.raises(BlockedURLError) as raised:
        check_url(url, STRICT)
    assert raised.value.code == "url_not_allowed"


# (URL, whether --allow-private-networks would let it through)
BLOCKED_URL_ADVICE = [
    ("http://127.0.0.1/hook", True),
    ("http://localhost/hook", True),
    ("http://10.1.2.3/hook", True),
    ("http://169.254.1.1/hook", True),  # link-local, but no metadata address
    ("http://169.254.169.254/hook", False),
    ("http://[fd00:ec2::254]/hook", False),
    ("http://[::ffff:169.254.169.254]/hook", False),
    ("http://224.0.0.1/hook", False),
]


@pytest.mark.parametrize(("url", "switch_allows"), BLOCKED_URL_ADVICE)
def test_blocked_url_error_names_settings(url: str, switch_allows: bool) -> None:
    with pytest.raises(BlockedURLError) as raised:
        check_url(url, STRICT)
    message = str(raised.value)

    assert "WP_LLM_ALLOWED_NETWORKS" in message
    if switch_allows:
        assert "allow it with --allow-private-networks" in message
    else:
        assert "even with --allow-private-networks" in message
        assert "only by listing it in WP_LLM_ALLOWED_NETWORKS" in message


@pytest.mark.parametrize("url", ["http://169.254.169.254/hook", "http://224.0.0.1/hook"])
def test_blocked_url_error_with_switch_on(url: str) -> None:
    with pytest.raises(BlockedURLError) as raised:
        check_url(url, PRIVATE_ALLOWED)
    message = str(raised.value)

    assert "allow it with --allow-private-networks" not in message
    assert "only by listing it in WP_LLM_ALLOWED_NETWORKS" in message


def test_check_url_stores_legacy_ipv4_canonically() -> None:
    assert check_url("http://0x7f.1:9000/h", PRIVATE_ALLOWED) == "http://127.0.0.1:9000/h"


def test_check_url_keeps_credentials_for_sending() -> None:
    checked = check_url("https://user:s3cret-pass@example.com/hook", STRICT)
    assert checked == "https://user:s3cret-pass@example.com/hook"


def test_check_url_error_never_shows_password() -> None:
    with pytest.raises(BlockedURLError) as raised:
        check_url("http://user:s3cret-pass@127.0.0.1/hook", STRICT)
    assert "s3cret-pass" not in str(raised.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:pw@example.com/h", "https://***@example.com/h"),
        ("https://user@example.com:8443/h", "https://***@example.com:8443/h"),
        ("https://user:pw@[2606:4700::1111]/h", "https://***@[2606:4700::1111]/h"),
        ("https://example.com/h", "https://example.com/h"),
    ],
)
def test_redact_url_hides_credentials(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "metadata"),
        ("2002:a9fe:a9fe::", "metadata"),  # 6to4 wrapping 169.254.169.254
        ("64:ff9b::a00:1", "reserved"),  # NAT64 wrapping 10.0.0.1
    ],
)
def test_policy_blocks_internal_addresses(address: str, reason: str) -> None:
    blocked = STRICT.blocked_reason(ipaddress.ip_address(address))
    assert blocked is not None
    assert reason in blocked


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:4700::1111", "1.1.1.1"])
def test_policy_allows_public_addresses(address: str) -> None:
    assert STRICT.blocked_reason(ipaddress.ip_address(address)) is None


def test_private_networks_switch_keeps_metadata_blocked() -> None:
    assert PRIVATE_ALLOWED.blocked_reason(ipaddress.ip_address("10.0.0.1")) is None
    assert PRIVATE_ALLOWED.blocked_reason(ipaddress.ip_address("127.0.0.1")) is None
    assert PRIVATE_ALLOWED.blocked_reason(ipaddress.ip_address("169.254.169.254")) is not None
    assert PRIVATE_ALLOWED.blocked_reason(ipaddress.ip_address("fd00:ec2::254")) is not None


def test_allowed_networks_open_only_their_subnets() -> None:
    settings = load_settings({"WP_LLM_ALLOWED_NETWORKS": "10.20.0.0/16, fd00:1::/64"})
    policy = AddressPolicy(settings.allow_private_networks, settings.allowed_networks)
    assert policy.blocked_reason(ipaddress.ip_address("10.20.3.4")) is None
    assert policy.blocked_reason(ipaddress.ip_address("fd00:1::9")) is None
    assert policy.blocked_reason(ipaddress.ip_address("::ffff:10.20.3.4")) is None
    assert policy.blocked_reason(ipaddress.ip_address("10.21.0.1")) is not None
    assert policy.blocked_reason(ipaddress.ip_address("127.0.0.1")) is not None


def test_allowed_networks_let_check_url_pass() -> None:
    policy = AddressPolicy(allowed_networks=(ipaddress.ip_network("10.20.0.0/16"),))
    assert check_url("http://10.20.0.7:8080/hook", policy) == "http://10.20.0.7:8080/hook"


def test_allowed_networks_setting_rejects_garbage() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({"WP_LLM_ALLOWED_NETWORKS": "10.0.0.0/8,not-a-network"})
    assert "WP_LLM_ALLOWED_NETWORKS" in str(raised.value)


def test_loopback_name_allowed_with_loopback_network() -> None:
    policy = AddressPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.0/8"),))
    assert check_url("http://localhost:8080/hook", policy) == "http://localhost:8080/hook"


# URLs that must not be saved, each with the error code it gets from a default policy.
TRICKY_URLS = [
    ("http://①②⑦.0.0.1/", "url_not_allowed"),  # full-width digits normalize to 127.0.0.1
    ("http://127。0。0。1/", "url_not_allowed"),  # ideographic full stops too
    ("http://256.1.1.1/", "invalid_url"),  # numeric labels, but no IPv4 address
    ("http://1.1.1.1.1/", "invalid_url"),
    ("http://127.0.0.1\\@evil.example/", "invalid_url"),  # parsers disagree on backslashes
    ("https://example.com/\r\nX-Injected: 1", "invalid_url"),  # header injection
    ("https://example.com/a b", "invalid_url"),
]


@pytest.mark.parametrize(("url", "code"), TRICKY_URLS)
def test_check_url_rejects_tricky_urls(url: str, code: str) -> None:
    with pytest.raises(BlockedURLError) as raised:
        check_url(url, AddressPolicy())
    assert raised.value.code == code
