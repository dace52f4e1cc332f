"""The `http_get` tool: fetch a text page from a host on an allow-list.

The URL comes from a model, so the tool guards against it reaching what it should not: hosts off the
allow-list; addresses inside the machine or its network (every address the host resolves to is checked,
so a public name pointing at 127.0.0.1 is refused too); redirects are followed only after the same
checks; slow servers (timeout over the whole fetch), huge bodies (read in chunks, stopped at the cap)
and binary content are refused.
"""

import ipaddress
import socket
import time
from collections.abc import Callable, Iterator

import httpx
from langchain_core.tools import StructuredTool, ToolException

from metaspider.tools.errors import error_safe_tool

MAX_REDIRECTS = 3
TEXT_MEDIA_TYPES = {"application/json", "application/xml", "application/javascript"}

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def resolve_addresses(host: str) -> list[IpAddress]:
    """Every address `host` resolves to (a literal IP resolves to itself)."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ToolException(f"cannot resolve host {host!r}: {exc.strerror}") from exc
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


def is_public(address: IpAddress) -> bool:
    """Whether an address is on the public internet: `http_get` refuses private, loopback and link-local ones."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def is_text(content_type: str) -> bool:
    """Whether a content type is text the model can read (HTML, JSON, plain text, ...)."""
    media_type = content_type.split(";")[0].strip().lower()
    return (
        media_type.startswith("text/")
        or media_type in TEXT_MEDIA_TYPES
        or media_type.endswith(("+json", "+xml"))
    )


def make_http_get_tool(
    allow_hosts: list[str],
    allow_private: bool = False,
    timeout: float = 10,
    max_bytes: int = 100_000,
) -> StructuredTool:
    """The `http_get` tool, limited to `allow_hosts` (exact host names, case-insensitive)."""
    allowed = {host.lower() for host in allow_hosts}

    def check_url(url: httpx.URL) -> None:
        if url.scheme not in ("http", "https"):
            raise ToolException(f"only http and https URLs are allowed, not {str(url)!r}")
        if url.host not in allowed:
            hosts = ", ".join(sorted(allowed))
            raise ToolException(f"host {url.host!r} is not on the allow-list ({hosts})")
        if not allow_private:
            for address in resolve_addresses(url.host):
                if not is_public(address):
                    raise ToolException(f"host {url.host!r} resolves to non-public address {address}")

    def http_get(url: str) -> str:
        """Fetch a web page by URL (GET) and return its text. Only some hosts are allowed."""
        deadline = time.monotonic() + timeout
        try:
            with httpx.Client(timeout=timeout, follow_redirects=False) as client:
                return _fetch(client, httpx.URL(url), check_url, deadline, max_bytes)
        except httpx.TimeoutException as exc:
            raise ToolException(f"timed out after {timeout:g} s") from exc
        except httpx.InvalidURL as exc:
            raise ToolException(f"invalid URL {url!r}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise ToolException(f"request failed: {exc}") from exc

    return error_safe_tool(http_get, name="http_get")


def _fetch(
    client: httpx.Client,
    url: httpx.URL,
    check_url: Callable[[httpx.URL], None],
    deadline: float,
    max_bytes: int,
) -> str:
    for _ in range(MAX_REDIRECTS + 1):
        check_url(url)
        with client.stream("GET", url) as response:
            if response.is_redirect and "location" in response.headers:
                url = url.join(response.headers["location"])
                continue
            if response.status_code >= 400:
                raise ToolException(f"HTTP {response.status_code} {response.reason_phrase} from {url}")
            content_type = response.headers.get("content-type", "")
            if not is_text(content_type):
                raise ToolException(f"content type {content_type or 'missing'!r} is not text")
            body, truncated = _read_capped(response.iter_bytes(), deadline, max_bytes)
            text = body.decode(response.encoding or "utf-8", errors="replace")
            return f"{text}\n[truncated at {max_bytes} bytes]" if truncated else text
    raise ToolException(f"more than {MAX_REDIRECTS} redirects")


def _read_capped(chunks: Iterator[bytes], deadline: float, max_bytes: int) -> tuple[bytes, bool]:
    """The first `max_bytes` bytes, and whether there was more. Stops reading at the cap."""
    body = bytearray()
    for chunk in chunks:
        if time.monotonic() > deadline:
            raise httpx.ReadTimeout("total time exceeded")
        body += chunk
        if len(body) > max_bytes:
            return bytes(body[:max_bytes]), True
    return bytes(body), False
