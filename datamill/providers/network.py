"""How a deployment's calls reach their server: proxy, TLS trust and answer limits.

Read once per deployment at start-up (`network_for`), from its configuration and the same
environment variables urllib, httpx and the ``openai`` SDK read: ``HTTPS_PROXY``,
``HTTP_PROXY``, ``ALL_PROXY`` and ``NO_PROXY`` (lowercase forms first), ``SSL_CERT_FILE`` and
``SSL_CERT_DIR``. A deployment's ``proxy`` overrides the proxy variables (``""``: none), its
``proxy_env`` names a variable holding one with its credentials, its
``ca_bundle`` replaces the trusted CAs, and ``verify = false`` turns checks off, loudly.

``NO_PROXY`` is read as curl (7.86+) and requests read it: ``*`` for every host; otherwise
entries separated by commas or spaces, case-insensitive, each a host name matching itself and
its subdomains (a leading ``.`` or ``*.`` changes nothing), optionally with ``:port``; an IP
address (IPv6 bare or in brackets) or a CIDR range (``10.0.0.0/8``, ``fd00::/8``) matching the
addresses it covers, when the call's host is an address.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

from datamill.errors import ConfigError
from datamill.providers.http1 import DEFAULT_LIMITS, Limits, Proxy
from datamill.settings import DeploymentConfig, secret_from_env

log = logging.getLogger("datamill.providers")


_Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_Range = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class NoProxy:
    """The hosts of a ``NO_PROXY`` list, parsed once: called directly, never through a proxy."""

    everything: bool = False  # "*"
    names: frozenset[tuple[str, int | None]] = frozenset()  # (domain, port or None: any)
    ranges: tuple[tuple[_Range, int | None], ...] = ()  # addresses and CIDR ranges, port

    @classmethod
    def parse(cls, value: str) -> NoProxy:
        names: set[tuple[str, int | None]] = set()
        ranges: list[tuple[_Range, int | None]] = []
        entries = value.replace(",", " ").lower().split()
        for entry in entries:
            network = _network(entry.strip("[]"))
            if network is not None:
                ranges.append((network, None))
                continue
            host, port = _split_port(entry)
            if host is None:
                continue  # neither a name nor an address: ignored, as curl does
            network = _network(host)
            if network is not None:
                ranges.append((network, port))
                continue
            domain = host.removeprefix("*").lstrip(".").rstrip(".")
            if domain:
                names.add((domain, port))
        return cls("*" in entries, frozenset(names), tuple(ranges))

    def bypasses(self, host: str, port: int) -> bool:
        """Whether a call to ``host:port`` goes directly."""
        if self.everything:
            return True
        host = host.strip("[]").lower().rstrip(".")
        address = _address(host)
        if address is not None:
            return any(
                address in network and wanted in (None, port) for network, wanted in self.ranges
            )
        # A name matches itself and its subdomains: "example.com" covers "api.example.com"
        # but not "myexample.com".
        labels = host.split(".")
        for start in range(len(labels)):
            domain = ".".join(labels[start:])
            if (domain, None) in self.names or (domain, port) in self.names:
                return True
        return False


def _split_port(entry: str) -> tuple[str | None, int | None]:
    """``host``, ``host:port`` or ``[v6]:port`` as (host, port); (None, None) if malformed."""
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest.removeprefix(":")
    elif entry.count(":") == 1:
        host, _, port = entry.partition(":")
    else:
        return (entry, None) if ":" not in entry else (None, None)
    if not port:
        return host, None
    return (host, int(port)) if port.isdigit() else (None, None)


def _network(entry: str) -> _Range | None:
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return None


def _address(host: str) -> _Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Network:
    """One deployment's way out: proxies by URL scheme, hosts that bypass them, the TLS
    context (None: the process default) and what an answer may cost."""

    proxies: Mapping[str, Proxy] = field(default_factory=dict)
    no_proxy: NoProxy = NoProxy()  # nobody bypasses
    context: ssl.SSLContext | None = None
    limits: Limits = DEFAULT_LIMITS

    def proxy_for(self, scheme: str, host: str, port: int) -> Proxy | None:
        """The proxy a call to ``scheme://host:port`` goes through, if any."""
        proxy = self.proxies.get(scheme) or self.proxies.get("all")
        if proxy is None or self.no_proxy.bypasses(host, port):
            return None
        return proxy


def network_for(deployment: DeploymentConfig, environ: Mapping[str, str] | None = None) -> Network:
    """The `Network` of ``deployment``; `ConfigError` names the setting at fault."""
    env = os.environ if environ is None else environ
    key = f"deployments.{deployment.name}"
    if deployment.proxy_env is not None:
        proxies = {
            "all": parse_proxy(
                _proxy_url(deployment, env), f"{key}.proxy_env ({deployment.proxy_env})"
            )
        }
        no_proxy = NoProxy()
    elif deployment.proxy is not None:
        proxies = {"all": parse_proxy(deployment.proxy, f"{key}.proxy")} if deployment.proxy else {}
        no_proxy = NoProxy()
    else:
        proxies, no_proxy = _proxies_from_env(env)
    return Network(
        proxies=proxies,
        no_proxy=no_proxy,
        context=_context_for(deployment, key),
        limits=Limits(
            max_body=deployment.max_answer_bytes, stream_idle=deployment.stream_idle_timeout
        ),
    )


def _proxy_url(deployment: DeploymentConfig, env: Mapping[str, str]) -> str:
    """The proxy URL of ``proxy_env``: read at load, or now for a deployment made in code."""
    if deployment.proxy_url is not None:
        return deployment.proxy_url.get_secret_value()
    return secret_from_env(deployment, "proxy_env", env)


def parse_proxy(url: str, where: str) -> Proxy:
    """A proxy URL (``http://user:password@host:port``; no scheme means http)."""
    if "://" not in url:
        url = f"http://{url}"
    try:
        parts = urlsplit(url)
    except ValueError:  # an unclosed "[": the message never repeats the URL, a secret
        raise ConfigError(f"{where}: not a proxy URL; use http://host:port") from None
    if parts.scheme != "http" or not parts.hostname:
        raise ConfigError(
            f"{where}: {parts.scheme}:// proxies are not supported; "
            'use an http:// proxy (e.g. "http://proxy.internal:3128")'
            if parts.hostname
            else f"{where}: not a proxy URL; use http://host:port"
        )
    try:
        port = parts.port or 80
    except ValueError:
        raise ConfigError(f"{where}: the proxy's port is not a number") from None
    authorization = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    return Proxy(parts.hostname, port, authorization)


def _proxies_from_env(env: Mapping[str, str]) -> tuple[dict[str, Proxy], NoProxy]:
    found: dict[str, Proxy] = {}
    for scheme in ("https", "http", "all"):
        name = f"{scheme}_proxy"
        # Lowercase first, as urllib and curl read them.
        value = env.get(name) or env.get(name.upper())
        if value:
            found[scheme] = parse_proxy(value, name.upper())
    no_proxy = env.get("no_proxy") or env.get("NO_PROXY") or ""
    return found, NoProxy.parse(no_proxy)


def _context_for(deployment: DeploymentConfig, key: str) -> ssl.SSLContext | None:
    if not deployment.verify:
        log.warning(
            "deployment %s: TLS certificates are NOT verified (verify = false): anyone on the "
            "path can read and change its calls, key included; set ca_bundle instead",
            deployment.name,
        )
        return _unverified_context()
    if deployment.ca_bundle is None:
        return None
    try:
        return _trusting(deployment.ca_bundle)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"{key}.ca_bundle: cannot read CA certificates from {deployment.ca_bundle} ({exc}); "
            "give the path of a PEM bundle or a directory of certificates"
        ) from None


def default_context(environ: Mapping[str, str] | None = None) -> ssl.SSLContext:
    """The process's TLS context: the system CAs, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``."""
    env = os.environ if environ is None else environ
    cafile = env.get("SSL_CERT_FILE") or None
    capath = env.get("SSL_CERT_DIR") or None
    if cafile is None and capath is None:
        return ssl.create_default_context()
    try:
        return ssl.create_default_context(cafile=cafile, capath=capath)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"SSL_CERT_FILE / SSL_CERT_DIR cannot be read ({exc}); fix the path or unset them"
        ) from None


@cache
def _trusting(path: Path) -> ssl.SSLContext:
    # One context per bundle: deployments trusting the same CA share their connections.
    if path.is_dir():
        return ssl.create_default_context(capath=str(path))
    return ssl.create_default_context(cafile=str(path))


@cache
def _unverified_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
