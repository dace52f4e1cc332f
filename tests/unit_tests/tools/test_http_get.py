import ipaddress
from collections.abc import Iterator

import httpx
import pytest
import respx

from metaspider.tools import http_get as http_get_module
from metaspider.tools.http_get import make_http_get_tool

PUBLIC_ADDRESS = ipaddress.ip_address("93.184.215.14")


@pytest.fixture(autouse=True)
def public_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests run offline: names resolve to a public address unless a test says otherwise."""
    monkeypatch.setattr(http_get_module, "resolve_addresses", lambda host: [PUBLIC_ADDRESS])


@pytest.fixture
def mock_http() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


def fetch(url: str, **options: object) -> str:
    tool = make_http_get_tool(**{"allow_hosts": ["example.com"], **options})
    return tool.invoke({"url": url})


def test_fetches_text(mock_http: respx.MockRouter):
    mock_http.get("https://example.com/page").respond(
        200, text="hello", headers={"content-type": "text/plain; charset=utf-8"}
    )
    assert fetch("https://example.com/page") == "hello"


def test_refuses_host_off_the_allow_list(mock_http: respx.MockRouter):
    route = mock_http.get("https://evil.example/")
    result = fetch("https://evil.example/")
    assert result.startswith("error: host 'evil.example' is not on the allow-list")
    assert not route.called


def test_refuses_loopback_literal_even_when_allowed(mock_http: respx.MockRouter, monkeypatch: pytest.MonkeyPatch):
    # A literal IP resolves to itself (the system resolver's answer is checked in the integration suite).
    monkeypatch.setattr(http_get_module, "resolve_addresses", lambda host: [ipaddress.ip_address(host)])
    route = mock_http.get("http://127.0.0.1/")
    result = fetch("http://127.0.0.1/", allow_hosts=["127.0.0.1"])
    assert result == "error: host '127.0.0.1' resolves to non-public address 127.0.0.1"
    assert not route.called


def test_refuses_a_name_that_resolves_to_a_private_address(
    mock_http: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(http_get_module, "resolve_addresses", lambda host: [ipaddress.ip_address("10.1.2.3")])
    mock_http.get("https://example.com/").respond(200, text="intranet", headers={"content-type": "text/html"})
    assert "non-public address 10.1.2.3" in fetch("https://example.com/")
    assert fetch("https://example.com/", allow_private=True) == "intranet"


def test_refuses_a_redirect_off_the_allow_list(mock_http: respx.MockRouter):
    mock_http.get("https://example.com/go").respond(302, headers={"location": "https://evil.example/"})
    assert "'evil.example' is not on the allow-list" in fetch("https://example.com/go")


def test_follows_a_redirect_on_the_allow_list(mock_http: respx.MockRouter):
    mock_http.get("http://example.com/").respond(301, headers={"location": "https://example.com/"})
    mock_http.get("https://example.com/").respond(200, text="secure", headers={"content-type": "text/html"})
    assert fetch("http://example.com/") == "secure"


class EndlessStream(httpx.SyncByteStream):
    def __init__(self) -> None:
        self.chunks_read = 0

    def __iter__(self) -> Iterator[bytes]:
        while True:
            self.chunks_read += 1
            yield b"a" * 1000


def test_stops_reading_at_the_byte_cap(mock_http: respx.MockRouter):
    stream = EndlessStream()
    mock_http.get("https://example.com/big").mock(
        return_value=httpx.Response(200, headers={"content-type": "text/plain"}, stream=stream)
    )
    result = fetch("https://example.com/big", max_bytes=5000)
    assert result == "a" * 5000 + "\n[truncated at 5000 bytes]"
    assert stream.chunks_read <= 6


def test_reports_a_timeout(mock_http: respx.MockRouter):
    mock_http.get("https://example.com/slow").mock(side_effect=httpx.ConnectTimeout("too slow"))
    assert fetch("https://example.com/slow", timeout=2) == "error: timed out after 2 s"


def test_refuses_non_text_content(mock_http: respx.MockRouter):
    mock_http.get("https://example.com/cat.png").respond(200, content=b"\x89PNG", headers={"content-type": "image/png"})
    assert fetch("https://example.com/cat.png") == "error: content type 'image/png' is not text"


def test_reports_http_errors(mock_http: respx.MockRouter):
    mock_http.get("https://example.com/missing").respond(404)
    assert fetch("https://example.com/missing").startswith("error: HTTP 404 Not Found")


def test_refuses_other_schemes():
    assert fetch("file:///etc/passwd").startswith("error: only http and https URLs are allowed")


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("fd00::1", False),
        ("::ffff:127.0.0.1", False),
    ],
)
def test_only_global_addresses_are_public(address: str, public: bool):
    assert http_get_module.is_public(ipaddress.ip_address(address)) is public
