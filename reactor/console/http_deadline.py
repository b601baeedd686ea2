"""An HTTP exchange bounded as a whole: connect, request, status line, headers and body within one
deadline.

A `requests` timeout bounds each read on the socket, not the exchange: a server that sends one
byte a second never lets a read wait long enough, and holds the caller for as long as it likes.
Under a `Deadline`, every socket a `DeadlineSession` opens is shut down when the deadline passes,
which ends whatever read or write waits on it; `expired` then says that the answer, whatever
`requests` made of it (an error, or a reply cut short that http.client takes for a whole one), is
not one to trust. Name resolution is not cut (it is the resolver's own timeout).

A socket is watched through a duplicate of its descriptor: TLS takes the original socket object
over, and shutting down either one ends the connection.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from contextvars import ContextVar
from types import TracebackType
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_CURRENT: ContextVar[Deadline | None] = ContextVar("reactor_http_deadline", default=None)


class Deadline:
    """`with Deadline(10):` the sockets a DeadlineSession opens in this block are shut down 10 s
    after it starts; `expired` says whether that happened."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._token: Any = None

    def __enter__(self) -> Deadline:
        self._token = _CURRENT.set(self)
        self._timer.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._timer.cancel()
        _CURRENT.reset(self._token)
        with self._lock:
            for copy in self._sockets:
                copy.close()
            self._sockets.clear()

    def watch(self, sock: socket.socket) -> None:
        """Shut `sock` down at the deadline, or now if it has passed."""
        with self._lock:
            copy = sock.dup()
            self._sockets.append(copy)
            if self.expired:
                _shut(copy)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for copy in self._sockets:
                _shut(copy)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the other end
        sock.shutdown(socket.SHUT_RDWR)


class _Watched:
    """A urllib3 connection whose socket the current Deadline watches."""

    def _new_conn(self) -> socket.socket:
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        deadline = _CURRENT.get()
        if deadline is not None:
            deadline.watch(sock)
        return sock


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter whose connections a Deadline can cut, direct or through an HTTP(S) proxy
    (a SOCKS proxy's connections are not watched). No retries: one try per call."""

    def __init__(self) -> None:
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = dict(_POOLS)
        return manager


class DeadlineSession(requests.Session):
    """A requests.Session whose http(s) connections go through a DeadlineAdapter."""

    def __init__(self) -> None:
        super().__init__()
        adapter = DeadlineAdapter()
        self.mount("http://", adapter)
        self.mount("https://", adapter)
