"""A TCP proxy in front of the test server that loses a reply on purpose.

Armed with a marker (`b"COMMIT"`, a statement's text), it passes the client's message that
holds the marker to the server, waits until the server has answered it (so the change is
committed), then cuts the client off without that answer: the client's commit was in flight
when its connection died, and it cannot know how it ended. Unarmed, it passes everything both
ways. `refuse` (or `refuse_after_drop`) makes it turn new connections away, as a server that
went down would.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Iterator

from psycopg.conninfo import conninfo_to_dict
from sqlalchemy.engine import make_url

from dispatch_tui.db.listener import conninfo_from_url

CHUNK = 65536


class ReplyDropper:
    def __init__(self, database_url: str) -> None:
        info = conninfo_to_dict(conninfo_from_url(database_url))
        host = str(info.get("host") or "localhost")
        port = int(info.get("port") or 5432)
        # The embedded server listens on a Unix socket only.
        self.upstream: str | tuple[str, int] = (
            f"{host}/.s.PGSQL.{port}" if host.startswith("/") else (host, port)
        )
        self.url = (
            make_url(database_url)
            .set(host="127.0.0.1", query={})
            .render_as_string(hide_password=False)
        )
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = (
            make_url(self.url)
            .set(port=self._listener.getsockname()[1])
            .render_as_string(hide_password=False)
        )
        self.marker: bytes | None = None
        self.refuse = False
        # Once a reply is lost, turn new connections away too (a server that went down).
        self.refuse_after_drop = False
        self.dropped = threading.Event()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, marker: bytes) -> None:
        """Lose the answer to the next message that holds `marker` (once)."""
        with self._lock:
            self.marker = marker
            self.dropped.clear()

    def close(self) -> None:
        self._closed = True
        self._listener.close()

    def _connect_upstream(self) -> socket.socket:
        if isinstance(self.upstream, str):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(self.upstream)
            return sock
        return socket.create_connection(self.upstream)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.refuse:
                client.close()
                continue
            threading.Thread(target=self._pump, args=(client,), daemon=True).start()

    def _take_marker(self, data: bytes) -> bool:
        with self._lock:
            if self.marker is not None and self.marker in data:
                self.marker = None
                if self.refuse_after_drop:
                    self.refuse = True
                return True
            return False

    def _pump(self, client: socket.socket) -> None:
        with contextlib.closing(client), contextlib.closing(self._connect_upstream()) as server:
            losing = False
            while True:
                ready, _, _ = select.select([client, server], [], [], 5.0)
                if not ready:
                    if losing:
                        return
                    continue
                if client in ready:
                    data = client.recv(CHUNK)
                    if not data:
                        return
                    if self._take_marker(data):
                        losing = True
                    server.sendall(data)
                if server in ready:
                    data = server.recv(CHUNK)
                    if not data:
                        return
                    if losing:
                        # The server has answered the marked message (the change is saved):
                        # cut the client off without the answer.
                        client.shutdown(socket.SHUT_RDWR)
                        self.dropped.set()
                        return
                    client.sendall(data)


@contextlib.contextmanager
def reply_dropper(database_url: str) -> Iterator[ReplyDropper]:
    proxy = ReplyDropper(database_url)
    try:
        yield proxy
    finally:
        proxy.close()


class NotificationDropper(ReplyDropper):
    """A proxy that passes everything but the server's notifications, as a transaction pooler
    in front of the server does to a LISTEN (it ran on a server connection that is no longer
    this client's): the client's LISTEN succeeds, and it hears nothing."""

    def __init__(self, database_url: str) -> None:
        super().__init__(database_url)
        # No SSL or GSS negotiation: every message from the server is then framed alike.
        self.url = (
            make_url(self.url)
            .set(query={"sslmode": "disable", "gssencmode": "disable"})
            .render_as_string(hide_password=False)
        )
        self.notifications_dropped = 0

    def _pump(self, client: socket.socket) -> None:
        with contextlib.closing(client), contextlib.closing(self._connect_upstream()) as server:
            pending = b""  # the server's bytes not yet a whole message
            while True:
                ready, _, _ = select.select([client, server], [], [], 5.0)
                if client in ready:
                    data = client.recv(CHUNK)
                    if not data:
                        return
                    server.sendall(data)
                if server in ready:
                    data = server.recv(CHUNK)
                    if not data:
                        return
                    pending += data
                    out = bytearray()
                    # A message: its type (1 byte), then its length (4, itself included).
                    while len(pending) >= 5:
                        size = 1 + int.from_bytes(pending[1:5], "big")
                        if len(pending) < size:
                            break
                        message, pending = pending[:size], pending[size:]
                        if message[:1] == b"A":  # NotificationResponse: lost
                            self.notifications_dropped += 1
                        else:
                            out += message
                    if out:
                        client.sendall(bytes(out))


@contextlib.contextmanager
def notification_dropper(database_url: str) -> Iterator[NotificationDropper]:
    proxy = NotificationDropper(database_url)
    try:
        yield proxy
    finally:
        proxy.close()
