"""The fault proxy on loopback, in front of a small echo server: it forwards, black-holes for a while
and then delivers what waited, and cuts connections."""

from __future__ import annotations

import socket
import socketserver
import threading
import time

import pytest

from odradek.verify.proxy import ChaosProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def proxy():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    p = ChaosProxy(seed=3).start()
    p.target = server.server_address
    yield p
    p.stop()
    server.shutdown()
    server.server_close()


def connect(p: ChaosProxy) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
    s.settimeout(5)
    return s


def test_forwards_both_ways(proxy):
    with connect(proxy) as s:
        s.sendall(b"hello")
        assert s.recv(100) == b"hello"
    assert proxy.connections == 1


def test_a_black_hole_holds_traffic_then_delivers_it(proxy):
    with connect(proxy) as s:
        s.sendall(b"before")
        assert s.recv(100) == b"before"
        proxy.blackhole(1.0)
        assert proxy.blackholed
        started = time.monotonic()
        s.sendall(b"during")
        s.settimeout(0.5)
        with pytest.raises(TimeoutError):
            s.recv(100)
        s.settimeout(5)
        assert s.recv(100) == b"during"  # delivered once the partition healed
        assert time.monotonic() - started >= 0.9
    assert not proxy.blackholed and proxy.blackholes == 1


def test_cut_all_resets_live_connections(proxy):
    with connect(proxy) as s:
        s.sendall(b"x")
        assert s.recv(10) == b"x"
        proxy.cut_all()
        time.sleep(0.2)
        with pytest.raises((ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
            s.sendall(b"y")
            s.recv(10) or s.sendall(b"z") or s.recv(10)
    assert proxy.cuts == 1
