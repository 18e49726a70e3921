"""TEST HELPER: a TCP proxy in front of RabbitMQ that a test can cut and restore.

The broker is shared by every test suite on the machine, so stopping it would break
other suites running in parallel. To the autoscaler, a proxy that closes every
connection and refuses new ones looks exactly like a broker that stopped. The pool's
Secret points at the proxy; ``stop()`` is the outage, ``start()`` the recovery (on the
same port). ``for_url`` puts it in front of any test broker URL and keeps that URL's user,
password, vhost and options, so the test runs on whatever ``ITL_TEST_RABBITMQ_URL`` names.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from urllib.parse import urlsplit, urlunsplit


class TcpProxy:
    """Forwards 127.0.0.1:<port> to ``target`` until stopped."""

    def __init__(self, target: tuple[str, int], broker_url: str) -> None:
        self.target = target
        self._broker_url = broker_url
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    @classmethod
    def for_url(cls, url: str) -> TcpProxy:
        """A proxy in front of the broker ``url`` names (plain AMQP only)."""
        parts = urlsplit(url)
        if parts.scheme != "amqp":
            raise ValueError(f"the proxy forwards plain amqp:// only, not {parts.scheme}://")
        return cls((parts.hostname or "127.0.0.1", parts.port or 5672), url)

    def url(self) -> str:
        """The broker URL with the proxy as host and port (credentials and vhost kept)."""
        parts = urlsplit(self._broker_url)
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@127.0.0.1:{self.port}" if credentials else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        """Close the listener and every open connection: the broker is "down"."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
