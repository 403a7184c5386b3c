"""Origins (scheme, host, port), and the hosts and origins a config sends requests to.

A target's credentials (its auth header, a token request's client secret or password,
``target.headers``) go only to the origins the config names for them: the target's own
base URL, an absolute OAuth2 ``token_url`` (or an absolute ``authenticate`` path in the
profile), and, for the exporter's ``/probe``, ``probes.probe_hosts``. A downstream
system is a target of its own, with its own credentials and origins. The check is made
in :class:`crmpulse.client.Session` for every request, whichever driver sends it.

    origin_of("https://CRM.example.com/api")          # ("https", "crm.example.com", 443)
    format_origin(origin_of("http://[::1]:8080/x"))   # "http://[::1]:8080"
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .templates import has_placeholder

if TYPE_CHECKING:
    from .config import Config, LoadedConfig
    from .profile import Profile

__all__ = ["DEFAULT_PORTS", "Origin", "absolute_urls", "fixed_origin", "format_origin", "origin_of",
           "request_hosts"]

Origin = tuple[str, str, int]
DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> Origin:
    """The (scheme, host, port) of an absolute http(s) URL; ValueError when it has none."""
    parts = urlsplit(url)  # ValueError on "http://[::1"
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"expected an absolute http(s) URL, got {url[:200]!r}")
    port = parts.port  # ValueError when out of range
    return scheme, parts.hostname.lower(), port if port is not None else DEFAULT_PORTS[scheme]


def format_origin(origin: Origin) -> str:
    """``("https", "crm.example.com", 443)`` -> ``https://crm.example.com``."""
    scheme, host, port = origin
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}" if DEFAULT_PORTS.get(scheme) == port else f"{scheme}://{shown}:{port}"


def absolute_urls(config: Config, profile: Profile) -> list[tuple[str, str, str, bool]]:
    """``(kind, name, url, sends credentials)`` for every absolute URL in the profile and checks.

    ``kind`` is ``operation`` or ``check``. Only the fixed part can be checked before a
    run: a URL whose scheme://host:port holds a placeholder is checked as it is sent.
    """
    found = [("operation", name, op.path, op.auth is not False) for name, op in profile.operations.items()
             if op.path.lower().startswith(("http://", "https://"))]
    for check in config.probes.checks:
        request = getattr(check, "request", None)
        if request is not None and request.path.lower().startswith(("http://", "https://")):
            found.append(("check", check.name, request.path, request.auth))
    return found


def fixed_origin(url: str) -> Origin | None:
    """The origin of a URL template, or None when its scheme://host:port is templated."""
    scheme, sep, rest = url.partition("://")
    authority = rest.split("/", 1)[0].split("?", 1)[0]
    if not sep or has_placeholder(authority):
        return None
    try:
        return origin_of(f"{scheme}://{authority}")
    except ValueError:
        return None


def request_hosts(loaded: LoadedConfig) -> list[str]:
    """Every host a load test may send to: the target, its token URL, absolute operation URLs.

    A templated host is listed as written (``{{ region }}.crm.example.com``): it cannot
    be checked before the run, so each request is checked as it is sent.
    """
    from .auth import token_url

    target = loaded.target
    hosts = [origin_of(target.base_url)[1]]
    url = token_url(target, loaded.profile)
    if url is not None:
        hosts.append(origin_of(url)[1])
    for _, _, template, _ in absolute_urls(loaded.config, loaded.profile):
        origin = fixed_origin(template)
        hosts.append(origin[1] if origin else template.partition("://")[2].split("/", 1)[0])
    return list(dict.fromkeys(hosts))
