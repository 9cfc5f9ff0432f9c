"""Listening sockets for every server we start, with one-line errors that name the flag to change."""

from __future__ import annotations

import errno
import ipaddress
import socket


class ListenError(Exception):
    """A port or address this process cannot listen on; the message is one line for the terminal."""


def open_listener(host: str, port: int, change: str, backlog: int = 1024) -> socket.socket:
    """Bind and listen on host:port; `change` says what to change, e.g. "set PORT or pass --port"."""
    if not 0 < port < 65536:
        raise ListenError(f"port {port} is not a TCP port (1 to 65535): {change}")
    try:
        # An address, never a name to look up: what to listen on is the operator's explicit choice.
        literal = "127.0.0.1" if host == "localhost" else str(ipaddress.ip_address(host))
    except ValueError:
        raise ListenError(
            f"--host {host!r} is not an IP address (e.g. 127.0.0.1, 0.0.0.0, ::): pass --host"
        ) from None
    flags = socket.AI_PASSIVE | socket.AI_NUMERICHOST
    infos = socket.getaddrinfo(literal, port, type=socket.SOCK_STREAM, flags=flags)
    family, kind, proto, _name, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise ListenError(_explain(exc, host, port, change)) from None
    return sock


def check_free(host: str, port: int, change: str) -> None:
    """Fail now, in one line, if a server started later could not listen on host:port."""
    open_listener(host, port, change).close()


def _explain(exc: OSError, host: str, port: int, change: str) -> str:
    where = f"port {port} on {host}"
    if exc.errno == errno.EADDRINUSE:
        return f"{where} is in use: {change}"
    if exc.errno == errno.EACCES:
        return f"{where} needs privileges this user lacks (ports below 1024 do): {change}"
    if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
        return f"{host} is not an address of this machine: pass --host"
    return f"cannot listen on {where} ({exc.strerror}): {change}"
