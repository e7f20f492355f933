"""A TCP proxy in front of PostgreSQL that can lose the answer to one statement.

What a server crash right after a COMMIT does to a client, on demand: :meth:`CuttingProxy.
lose_next_answer` makes the proxy hold back what the server sends until a ReadyForQuery
message (the statement's transaction is over, so committed), call ``before_cut`` (another
client acts on the committed rows), then close both sides of that connection without
passing the answer on. The client sees a broken connection and must find out for itself
whether its write landed.

Clients connect with ``sslmode=disable&gssencmode=disable`` (:meth:`url`), so everything
the server sends is typed protocol messages (one type byte, a four-byte length).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

READY_FOR_QUERY = b"Z"


class CuttingProxy:
    """Forward 127.0.0.1:<port> to the server of ``target_url``, one thread per direction."""

    def __init__(self, target_url: str) -> None:
        parts = urlsplit(target_url)
        self._target_url = target_url
        self._target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._before_cut: Callable[[], None] | None = None
        self.cut = threading.Event()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="pg-proxy").start()

    def url(self) -> str:
        """The target URL through this proxy, without TLS or GSS negotiation."""
        parts = urlsplit(self._target_url)
        netloc = parts.netloc.rsplit(":", 1)[0] + f":{self.port}"
        query = "&".join(q for q in (parts.query, "sslmode=disable&gssencmode=disable") if q)
        return parts._replace(netloc=netloc, query=query).geturl()

    def lose_next_answer(self, before_cut: Callable[[], None]) -> None:
        """Lose the server's next complete answer on whichever connection gets one."""
        with self._lock:
            self._before_cut = before_cut
            self.cut.clear()

    def close(self) -> None:
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._target)
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()
            threading.Thread(target=self._answers, args=(server, client), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        """Client to server: bytes as they come."""
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        _close(source, sink)

    def _answers(self, server: socket.socket, client: socket.socket) -> None:
        """Server to client, message by message; held back and dropped when armed."""
        buffer, held, started = b"", False, False
        with contextlib.suppress(OSError):
            while data := server.recv(65536):
                buffer += data
                messages, buffer = _split(buffer)
                if not messages:
                    continue
                with self._lock:  # armed only between statements of a started session
                    if started and self._before_cut is not None and not held:
                        before_cut, held = self._before_cut, True
                        self._before_cut = None
                if not held:
                    client.sendall(b"".join(messages))
                    started = started or any(m[:1] == READY_FOR_QUERY for m in messages)
                elif any(m[:1] == READY_FOR_QUERY for m in messages):
                    before_cut()
                    self.cut.set()
                    break
        _close(server, client)


def _split(buffer: bytes) -> tuple[list[bytes], bytes]:
    """The complete protocol messages at the start of ``buffer``, and the rest."""
    messages = []
    while len(buffer) >= 5:
        (length,) = struct.unpack("!I", buffer[1:5])
        if len(buffer) < 1 + length:
            break
        messages.append(buffer[: 1 + length])
        buffer = buffer[1 + length :]
    return messages, buffer


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
