"""No test reaches outside the machine: every connection attempt is checked BEFORE it is made.

:func:`install` replaces ``socket.socket.connect`` / ``connect_ex`` / ``sendto`` and the
name lookups (``getaddrinfo``, ``gethostbyname``, ``gethostbyname_ex``) with versions that
raise :class:`OutsideNetworkError` for anything but 127.0.0.1, ::1 and localhost (and Unix
sockets). The check runs before the real call, so a refused address sends no packet, not
even a DNS query. Real servers the tests start are separate processes: their telemetry is
switched off through the environment instead (tests/servers.py ``NO_TELEMETRY``).
"""

from __future__ import annotations

import socket
from typing import Any

ALLOWED_HOSTS = frozenset({"127.0.0.1", "::1", "localhost", "::ffff:127.0.0.1", ""})


class OutsideNetworkError(AssertionError):
    """A test tried to reach a host that is not this machine's loopback."""


# The real functions; the guard delegates to these (tests of the guard replace them by spies).
real: dict[str, Any] = {
    "connect": socket.socket.connect,
    "connect_ex": socket.socket.connect_ex,
    "sendto": socket.socket.sendto,
    "getaddrinfo": socket.getaddrinfo,
    "gethostbyname": socket.gethostbyname,
    "gethostbyname_ex": socket.gethostbyname_ex,
}


def _host_of(address: Any) -> str | None:
    """The host of an INET/INET6 address; None for Unix sockets and other families."""
    if isinstance(address, tuple) and address and isinstance(address[0], str | bytes):
        host = address[0]
        return host.decode() if isinstance(host, bytes) else host
    return None


def check(host: str | bytes | None, what: str) -> None:
    if host is None:
        return
    name = host.decode() if isinstance(host, bytes) else host
    if name.lower().strip("[]") not in ALLOWED_HOSTS:
        raise OutsideNetworkError(
            f"a test tried to {what} {name!r}: tests may only reach 127.0.0.1, ::1 or "
            "localhost (tests/netguard.py). Point the code at a local stand-in or a "
            "recorded cassette instead."
        )


def _connect(self: socket.socket, address: Any) -> Any:
    check(_host_of(address), "connect to")
    return real["connect"](self, address)


def _connect_ex(self: socket.socket, address: Any) -> Any:
    check(_host_of(address), "connect to")
    return real["connect_ex"](self, address)


def _sendto(self: socket.socket, data: Any, *args: Any) -> Any:
    check(_host_of(args[-1]) if args else None, "send a datagram to")
    return real["sendto"](self, data, *args)


def _getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    check(host, "look up")
    return real["getaddrinfo"](host, *args, **kwargs)


def _gethostbyname(host: str) -> Any:
    check(host, "look up")
    return real["gethostbyname"](host)


def _gethostbyname_ex(host: str) -> Any:
    check(host, "look up")
    return real["gethostbyname_ex"](host)


def install() -> None:
    socket.socket.connect = _connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _connect_ex  # type: ignore[method-assign]
    socket.socket.sendto = _sendto  # type: ignore[method-assign,assignment]
    socket.getaddrinfo = _getaddrinfo
    socket.gethostbyname = _gethostbyname
    socket.gethostbyname_ex = _gethostbyname_ex
