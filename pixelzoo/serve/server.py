"""The page's server: the application (``app.py``) on a threaded WSGI server (werkzeug's, which Flask
ships), bound to the loopback address unless another is asked for, and then guarded by a random
access token. Used by ``pixelzoo serve`` (in the foreground) and by tests and benchmarks (in a
background thread, :meth:`PageServer.start`)."""

from __future__ import annotations

import ipaddress
import secrets
import socket
import threading

from werkzeug.serving import make_server

from ..errors import ConfigError
from .app import create_app
from .catalogue import Catalogue
from .jobs import WorkQueue

DEFAULT_HOST = "127.0.0.1"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class PageServer:
    """The server of ``runs_dir``'s runs and the zoo's models on ``host:port`` (port 0: any free one)."""

    def __init__(self, runs_dir=None, host: str = DEFAULT_HOST, port: int = 8000, device="cpu", capacity: int = 8,
                 workers: int = 1, loaded: int = 2):
        self.host, self.loopback = host, is_loopback(host)
        self.token = None if self.loopback else secrets.token_urlsafe(24)
        self.catalogue = Catalogue(runs_dir, device=device, loaded=loaded)
        self.queue = WorkQueue(capacity=capacity, workers=workers)
        app = create_app(self.catalogue, self.queue, token=self.token, loopback=self.loopback)
        # bound here, not by werkzeug, whose failure to bind ends the process (sys.exit) after printing
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host.strip("[]"), port))
            sock.listen(128)
            self._server = make_server(host, sock.getsockname()[1], app, threaded=True, fd=sock.fileno())
        except OSError as e:
            self.queue.close()
            raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
        finally:
            sock.close()  # the server holds its own duplicate of the socket
        self._server.daemon_threads = True  # an open event stream does not keep the process alive
        self._thread = None

    @property
    def port(self) -> int:
        return self._server.socket.getsockname()[1]

    @property
    def url(self) -> str:
        """The page's address (with its token off the loopback; this machine's name for a wildcard address)."""
        host = socket.gethostname() if self.host in ("0.0.0.0", "::", "[::]") else self.host
        host = f"[{host}]" if ":" in host and not host.startswith("[") else host
        base = f"http://{host}:{self.port}/"
        return base if self.token is None else f"{base}?token={self.token}"

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def start(self) -> "PageServer":
        """Serve on a background thread (tests, benchmarks); :meth:`close` stops it."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="pixelzoo-serve", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self.queue.close()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
        self._server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
