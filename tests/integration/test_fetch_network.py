"""A STAC API that never answers, or answers one byte at a time: uhi stops in bounded time and frees the lock."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from uhi.config import Config
from uhi.errors import RemoteError
from uhi.search import search_scenes
from uhi.workspace import Workspace


class _SilentServer:
    """Accepts TCP connections on 127.0.0.1, reads what is sent, never answers."""

    def __init__(self, trickle_s: float | None = None) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.trickle_s = trickle_s
        self.accepted = 0
        self.stop = threading.Event()
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            self.conns.append(conn)
            if self.trickle_s is not None:
                threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        """A valid response header, then one body byte every ``trickle_s``: no read ever times out."""
        try:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
            while not self.stop.is_set():
                conn.sendall(b" ")
                time.sleep(self.trickle_s or 0.1)
        except OSError:
            pass

    def close(self) -> None:
        self.stop.set()
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.fixture()
def silent() -> Iterator[_SilentServer]:
    server = _SilentServer()
    yield server
    server.close()


def test_stac_api_that_never_answers_exits_1_and_frees_the_lock(silent: _SilentServer, tmp_path: Path) -> None:
    """pystac-client's Client.open(stac_io=...) resets the timeout to None: without setting it
    again, this run hangs forever with the workspace lock held."""
    url = f"http://127.0.0.1:{silent.port}/v1"
    timeout_s, retries = 1, 1
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"city: {{name: hang, bbox: [-75.5, 1.0, -75.4, 1.1]}}\nsearch: {{backend: stac, url: '{url}'}}\n"
        f"fetch: {{retries: {retries}, timeout_s: {timeout_s}}}\n"
    )
    ws_dir = tmp_path / "ws"
    start = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "uhi.cli.main", "fetch", str(cfg), "--workdir", str(ws_dir)],
                       capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - start
    assert r.returncode == 1, r.stderr
    # (retries + 1) requests of timeout_s each, plus urllib3's backoff and the interpreter's start
    assert elapsed < timeout_s * (retries + 1) + 8, elapsed
    assert silent.accepted >= 1
    assert url in r.stderr and "did not answer within fetch.timeout_s = 1 s" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    # the lock is free: the next run is not refused with 75
    ws = Workspace(ws_dir)
    with ws.locked():
        pass


def test_whole_search_is_bounded_when_the_server_trickles(tmp_path: Path) -> None:
    """A byte every 0.2 s never trips a 1 s read timeout: only the wall-clock bound stops it."""
    server = _SilentServer(trickle_s=0.2)
    try:
        cfg = Config.model_validate({
            "city": {"bbox": [-75.5, 1.0, -75.4, 1.1]},
            "search": {"backend": "stac", "url": f"http://127.0.0.1:{server.port}", "timeout_total_s": 2},
            "fetch": {"retries": 0, "timeout_s": 1},
        })
        start = time.monotonic()
        with pytest.raises(RemoteError) as err:
            search_scenes(cfg)
        elapsed = time.monotonic() - start
    finally:
        server.close()
    assert 2 <= elapsed < 4, elapsed
    msg = str(err.value)
    assert f"http://127.0.0.1:{server.port}" in msg and "search.timeout_total_s = 2 s" in msg
