"""Which hosts a webhook may call: only those the operator lists (WEBHOOK_ALLOWED_HOSTS: names,
`*.example.com`, or `*` for any host), and a name that resolves to a private, loopback or otherwise
internal address only when listed by that exact name (so neither `*` nor `*.example.com` can be
pointed at the metadata service or the database)."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit


class HostRefused(ValueError):
    """The URL may not be called: its scheme, a host the operator did not allow, or an internal address."""


def allowed_hosts(setting: str) -> list[str]:
    return [h.strip().lower() for h in setting.split(",") if h.strip()]


def check_url(url: str, setting: str) -> str:
    """The URL's host, if WEBHOOK_ALLOWED_HOSTS lets a webhook call it (no DNS yet); else HostRefused."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HostRefused("a webhook's url is an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise HostRefused("a webhook's url carries no credentials (deliveries are signed instead)")
    host, hosts = parts.hostname.lower(), allowed_hosts(setting)
    if not hosts:
        raise HostRefused("this server calls no webhook hosts (WEBHOOK_ALLOWED_HOSTS is empty)")
    if not any(host == h or h == "*" or (h.startswith("*.") and host.endswith(h[1:])) for h in hosts):
        raise HostRefused(f"{host} is not among the hosts this server calls (WEBHOOK_ALLOWED_HOSTS)")
    return host


def check_addresses(url: str, setting: str) -> None:
    """Before a delivery: the host is allowed, and each address it resolves to is public unless the host is
    listed by its exact name; else HostRefused."""
    host = check_url(url, setting)
    if host in allowed_hosts(setting):
        return
    parts = urlsplit(url)
    try:
        infos = socket.getaddrinfo(host, parts.port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise HostRefused(f"{host} does not resolve: {exc}") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise HostRefused(f"{host} resolves to {address}, an internal address; list the host by name to allow it")
