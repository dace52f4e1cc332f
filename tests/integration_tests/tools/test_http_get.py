"""http_get with the system resolver: a loopback literal is refused before any request is sent."""

from collections.abc import Iterator

import pytest
import respx

from metaspider.tools import http_get as http_get_module
from metaspider.tools.http_get import make_http_get_tool


@pytest.fixture
def mock_http() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


def test_the_system_resolver_maps_a_literal_to_itself():
    assert [str(a) for a in http_get_module.resolve_addresses("127.0.0.1")] == ["127.0.0.1"]


def test_refuses_loopback_literal_even_when_allowed(mock_http: respx.MockRouter):
    route = mock_http.get("http://127.0.0.1/")
    result = make_http_get_tool(allow_hosts=["127.0.0.1"]).invoke({"url": "http://127.0.0.1/"})
    assert result == "error: host '127.0.0.1' resolves to non-public address 127.0.0.1"
    assert not route.called
