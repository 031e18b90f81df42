"""Where a webhook may go: http(s) URLs whose host resolves to public addresses only,
unless ``DATAMILL_WEBHOOKS_ALLOW_PRIVATE`` is set. Checked when an endpoint is created or
changed, and again before each delivery (a name may resolve elsewhere later)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit


class AddressRefused(Exception):
    """The URL may not receive webhooks; the message says why."""


def check_url_form(url: str) -> tuple[str, int]:
    """The URL's host and port, if it is an absolute http(s) URL with a host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise AddressRefused("a webhook URL must start with http:// or https://")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise AddressRefused("the webhook URL's port is not a number from 0 to 65535") from None
    if not parts.hostname:
        raise AddressRefused("the webhook URL names no host")
    if parts.username or parts.password:
        raise AddressRefused("a webhook URL may not carry credentials; sign with its secret")
    return parts.hostname, port


def refused_reason(address: str) -> str | None:
    """Why an IP address may not receive webhooks, or None if it is public."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for kind, flag in (
        ("loopback", ip.is_loopback),
        ("unspecified", ip.is_unspecified),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
    ):
        if flag:
            return f"{ip} is a {kind} address"
    return None


async def check_url(url: str, *, allow_private: bool) -> None:
    """Raise `AddressRefused` unless ``url`` may receive webhooks now."""
    host, port = check_url_form(url)
    if allow_private:
        return
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise AddressRefused(f"the webhook URL's host {host} does not resolve: {exc}") from None
    for *_, sockaddr in found:
        reason = refused_reason(str(sockaddr[0]))
        if reason is not None:
            raise AddressRefused(
                f"{host} resolves to {reason}; webhooks go to public addresses only "
                "unless DATAMILL_WEBHOOKS_ALLOW_PRIVATE is set"
            )
