"""http_get against DNS rebinding, proxies from the environment, decompression bombs, slow servers and
IPv6 spellings of private addresses; with respx and with a real server on 127.0.0.1."""

from __future__ import annotations

import gzip
import http.server
import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from typing import ClassVar

import pytest

from metaspider.tools import http_get as module
from metaspider.tools.http_get import make_http_get_tool


@pytest.mark.parametrize(
    "address",
    ["::127.0.0.1", "64:ff9b::7f00:1", "::ffff:10.0.0.1", "2002:7f00:1::", "64:ff9b::a9fe:a9fe", "::ffff:7f00:1"],
)
def test_ipv6_spellings_of_private_ipv4_are_not_public(address: str) -> None:
    assert module.is_public(ipaddress.ip_address(address)) is False


def test_nat64_of_a_public_address_is_public() -> None:
    assert module.is_public(ipaddress.ip_address("64:ff9b::808:808")) is True


def test_the_host_is_resolved_once_and_the_checked_address_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rebinding resolver answers public first, loopback after: only the first answer may be used."""
    answers = iter(["93.184.215.14", "127.0.0.1", "127.0.0.1"])
    calls = []

    def rebinding(host: str, *_args, **_kwargs):
        calls.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), 0))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    connected = []

    def spy(self, host, port, *args, **kwargs):
        connected.append(self.pins[host])
        raise module.httpcore.ConnectError("stopped before the network")

    monkeypatch.setattr(module._PinnedBackend, "connect_tcp", spy)
    result = make_http_get_tool(["example.com"]).invoke({"url": "http://example.com/"})
    assert result == "error: request failed: stopped before the network"
    assert calls == ["example.com"]
    assert connected == ["93.184.215.14"]


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, tuple[float, dict[str, str], bytes]]] = {}

    def do_GET(self) -> None:
        delay, headers, body = self.routes.get(self.path, (0, {}, b"missing"))
        time.sleep(delay)
        self.send_response(200)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _local(**options: object):
    return make_http_get_tool(["127.0.0.1"], allow_private=True, **options)


def test_real_server_text(server: str) -> None:
    _Handler.routes["/hello"] = (0, {"content-type": "text/plain"}, b"hello")
    assert _local().invoke({"url": f"{server}/hello"}) == "hello"


def test_loopback_refused_without_allow_private(server: str) -> None:
    result = make_http_get_tool(["127.0.0.1"]).invoke({"url": f"{server}/hello"})
    assert result.startswith("error: host '127.0.0.1' resolves to non-public address")


def test_proxies_from_the_environment_are_ignored(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _Handler.routes["/direct"] = (0, {"content-type": "text/plain"}, b"direct")
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert _local().invoke({"url": f"{server}/direct"}) == "direct"


def test_a_gzip_bomb_is_capped_after_decompression(server: str) -> None:
    bomb = gzip.compress(b"a" * 50_000_000)
    _Handler.routes["/bomb"] = (0, {"content-type": "text/plain", "content-encoding": "gzip"}, bomb)
    result = _local(max_bytes=10_000).invoke({"url": f"{server}/bomb"})
    assert result == "a" * 10_000 + "\n[truncated at 10000 bytes]"


def test_one_deadline_covers_waiting_for_the_headers(server: str) -> None:
    _Handler.routes["/slow"] = (3, {"content-type": "text/plain"}, b"late")
    start = time.monotonic()
    result = _local(timeout=0.5).invoke({"url": f"{server}/slow"})
    assert result == "error: timed out after 0.5 s"
    assert time.monotonic() - start < 2


def test_resolution_counts_against_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    def slow_dns(host: str) -> list:
        time.sleep(2)
        return [ipaddress.ip_address("93.184.215.14")]

    monkeypatch.setattr(module, "resolve_addresses", slow_dns)
    start = time.monotonic()
    result = make_http_get_tool(["example.com"], timeout=0.3).invoke({"url": "http://example.com/"})
    assert result == "error: timed out after 0.3 s"
    assert time.monotonic() - start < 1.5
