"""Start the viewer: check its packages, bind a local port, serve with uvicorn until Ctrl-C."""

from __future__ import annotations

import importlib.util
import signal
import socket
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from distalign.errors import DistalignError

INSTALL_HINT = "pip install 'distalign[view]'"
LOCAL_HOSTS = ["127.0.0.1", "localhost", "::1"]


class ViewerUnavailableError(DistalignError):
    """The viewer's packages are missing, or its address cannot be bound."""


def check_installed() -> None:
    """Raise :class:`ViewerUnavailableError` naming the install command if a package is missing."""
    missing = [name for name in ("starlette", "uvicorn") if importlib.util.find_spec(name) is None]
    if missing:
        raise ViewerUnavailableError(
            f"distalign view needs {' and '.join(missing)}: {INSTALL_HINT}"
        )


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; port 0 picks a free port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise ViewerUnavailableError(
            f"cannot listen on {host}:{port} ({error.strerror or error}): "
            "pass another --port, or --port 0 for a free one"
        ) from error
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def serve(
    folders: Sequence[Path],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    n_boot: int = 1000,
    seed: int = 0,
    on_ready: Callable[[str], None] = print,
) -> None:
    """Load ``folders`` once, then serve them on ``host:port`` until interrupted.

    ``on_ready`` gets the URL once the data is loaded and the server is about to accept
    requests. Ctrl-C stops the server gracefully, then raises ``KeyboardInterrupt``.
    """
    check_installed()
    import uvicorn

    from distalign.view.app import create_app
    from distalign.view.queries import ViewData

    sock = bind(host, port)
    try:
        data = ViewData(folders, n_boot=n_boot, seed=seed)
        everywhere = host in ("0.0.0.0", "::", "")
        allowed = None if everywhere else sorted({host, *LOCAL_HOSTS})
        app = create_app(data, allowed_hosts=allowed)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        if threading.current_thread() is threading.main_thread():
            # Ctrl-C stops the server even when started from a shell that ignores SIGINT
            signal.signal(signal.SIGINT, signal.default_int_handler)
        on_ready(url_of(sock))
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
