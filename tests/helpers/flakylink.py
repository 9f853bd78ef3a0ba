"""A TCP link to a database server that a test can cut and restore: a server restart or a network
outage, as its clients see it, without touching the server (CI's is shared by every test).

``FlakyLink(url)`` listens on 127.0.0.1 and passes bytes to the host and port of ``url``;
``link.url`` is ``url`` pointed at it. ``cut()`` closes every open connection and makes new ones
close as soon as they are accepted (a client reads "server closed the connection unexpectedly");
``restore()`` lets them through again; ``restore_after(s)`` does it from a timer.
"""

from __future__ import annotations

import socket
import threading

from sqlalchemy.engine import make_url


class FlakyLink:
    def __init__(self, url: str) -> None:
        target = make_url(url)
        self._target = (target.host or "127.0.0.1", int(target.port or 5432))
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self.port = self._server.getsockname()[1]
        self.url = target.set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)
        self._up = threading.Event()
        self._up.set()
        self._closed = False
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self.refused = 0  # connections closed on arrival while cut
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        self._up.clear()
        with self._lock:
            conns, self._open = list(self._open), set()
        for s in conns:
            _close(s)

    def restore(self) -> None:
        self._up.set()

    def restore_after(self, seconds: float) -> threading.Timer:
        timer = threading.Timer(seconds, self.restore)
        timer.daemon = True
        timer.start()
        return timer

    def close(self) -> None:
        self._closed = True
        self.cut()
        _close(self._server)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            if not self._up.is_set():
                self.refused += 1
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                _close(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open -= {src, dst}
            _close(src)
            _close(dst)


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()
