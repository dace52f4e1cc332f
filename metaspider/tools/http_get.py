"""The `http_get` tool: fetch a text page from a host on an allow-list.

The URL comes from a model, so the tool guards against it reaching what it should not:
- hosts off the allow-list are refused;
- every address a host resolves to is checked (a public name pointing at 127.0.0.1 is refused too, and
  so are IPv4-mapped, IPv4-compatible, NAT64 and 6to4 spellings of private IPv4 addresses), and the
  connection goes to the very address that was checked: the name is resolved once, so a DNS answer that
  changes between check and connect (DNS rebinding) cannot redirect it;
- proxies and certificates from the environment are ignored (`trust_env=False`): a proxy would connect
  on our behalf to an address never checked;
- redirects are followed only after the same checks;
- one deadline covers resolution, connection, every redirect and the body;
- the body is read in chunks and stopped at the cap, counted after decompression, and gzip/deflate are
  decoded in bounded steps so a small compressed chunk cannot expand without limit;
- binary content is refused.
"""

import ipaddress
import socket
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import httpcore
import httpx
from langchain_core.tools import StructuredTool, ToolException

from metaspider.tools.errors import error_safe_tool

MAX_REDIRECTS = 3
TEXT_MEDIA_TYPES = {"application/json", "application/xml", "application/javascript"}

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_COMPATIBLE = ipaddress.ip_network("::/96")


def resolve_addresses(host: str) -> list[IpAddress]:
    """Every address `host` resolves to (a literal IP resolves to itself)."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ToolException(f"cannot resolve host {host!r}: {exc.strerror}") from exc
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


def embedded_ipv4(address: IpAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, compatible, NAT64, 6to4), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: IpAddress) -> bool:
    """Globally routable unicast, judged on the IPv4 address an IPv6 spelling stands for."""
    inner = embedded_ipv4(address)
    if inner is not None:
        return is_public(inner)
    return address.is_global and not address.is_multicast


def is_text(content_type: str) -> bool:
    """Whether a content type is text the model can read (HTML, JSON, plain text, ...)."""
    media_type = content_type.split(";")[0].strip().lower()
    return media_type.startswith("text/") or media_type in TEXT_MEDIA_TYPES or media_type.endswith(("+json", "+xml"))


class _Deadline:
    """One time budget for the whole fetch."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise httpx.ReadTimeout("total time exceeded")
        return left


class _PinnedBackend(httpcore.SyncBackend):
    """Connects each host name only to the address that was checked for it."""

    def __init__(self) -> None:
        self.pins: dict[str, str] = {}

    def connect_tcp(self, host: str, port: int, timeout=None, local_address=None, socket_options=None):
        address = self.pins.get(host)
        if address is None:
            raise httpcore.ConnectError(f"host {host!r} was not checked before connecting")
        return super().connect_tcp(address, port, timeout, local_address, socket_options)


class _PinnedTransport(httpx.HTTPTransport):
    """httpx's transport with the pinned backend and nothing taken from the environment."""

    def __init__(self, backend: _PinnedBackend):
        super().__init__(trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False), network_backend=backend
        )


def make_http_get_tool(
    allow_hosts: list[str],
    allow_private: bool = False,
    timeout: float = 10,
    max_bytes: int = 100_000,
) -> StructuredTool:
    """The `http_get` tool, limited to `allow_hosts` (exact host names, case-insensitive)."""
    allowed = {host.lower() for host in allow_hosts}

    def check_url(url: httpx.URL, deadline: _Deadline) -> str:
        """The address to connect to, once `url` passed every check."""
        if url.scheme not in ("http", "https"):
            raise ToolException(f"only http and https URLs are allowed, not {str(url)!r}")
        if url.host not in allowed:
            hosts = ", ".join(sorted(allowed))
            raise ToolException(f"host {url.host!r} is not on the allow-list ({hosts})")
        addresses = _resolve_within(url.host, deadline)
        if not addresses:
            raise ToolException(f"cannot resolve host {url.host!r}: no address")
        if not allow_private:
            for address in addresses:
                if not is_public(address):
                    raise ToolException(f"host {url.host!r} resolves to non-public address {address}")
        return str(addresses[0])

    def http_get(url: str) -> str:
        """Fetch a web page by URL (GET) and return its text. Only some hosts are allowed."""
        deadline = _Deadline(timeout)
        backend = _PinnedBackend()
        try:
            with httpx.Client(transport=_PinnedTransport(backend), follow_redirects=False, trust_env=False) as client:
                return _fetch(client, backend, httpx.URL(url), check_url, deadline, max_bytes)
        except httpx.TimeoutException as exc:
            raise ToolException(f"timed out after {timeout:g} s") from exc
        except httpx.InvalidURL as exc:
            raise ToolException(f"invalid URL {url!r}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise ToolException(f"request failed: {exc}") from exc

    return error_safe_tool(http_get, name="http_get")


def _resolve_within(host: str, deadline: _Deadline) -> list[IpAddress]:
    """`resolve_addresses` under the fetch's deadline (getaddrinfo itself cannot be given one)."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="http_get-dns")
    try:
        return pool.submit(resolve_addresses, host).result(timeout=deadline.left())
    except FutureTimeout:
        raise httpx.ConnectTimeout(f"resolving {host!r} took too long") from None
    finally:
        pool.shutdown(wait=False)


def _fetch(
    client: httpx.Client,
    backend: _PinnedBackend,
    url: httpx.URL,
    check_url: Callable[[httpx.URL, _Deadline], str],
    deadline: _Deadline,
    max_bytes: int,
) -> str:
    for _ in range(MAX_REDIRECTS + 1):
        backend.pins[url.host] = check_url(url, deadline)
        headers = {"accept-encoding": "gzip, deflate"}
        with client.stream("GET", url, headers=headers, timeout=httpx.Timeout(deadline.left())) as response:
            if response.is_redirect and "location" in response.headers:
                url = url.join(response.headers["location"])
                continue
            if response.status_code >= 400:
                raise ToolException(f"HTTP {response.status_code} {response.reason_phrase} from {url}")
            content_type = response.headers.get("content-type", "")
            if not is_text(content_type):
                raise ToolException(f"content type {content_type or 'missing'!r} is not text")
            chunks = _decoded(response.iter_raw(), response.headers.get("content-encoding", ""), max_bytes)
            body, truncated = _read_capped(chunks, deadline, max_bytes)
            text = body.decode(response.encoding or "utf-8", errors="replace")
            return f"{text}\n[truncated at {max_bytes} bytes]" if truncated else text
    raise ToolException(f"more than {MAX_REDIRECTS} redirects")


def _decoded(raw: Iterator[bytes], encoding: str, max_bytes: int) -> Iterator[bytes]:
    """The body decompressed in steps of at most `max_bytes + 1` bytes (identity, gzip, deflate)."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        yield from raw
        return
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise ToolException(f"content encoding {encoding!r} is not supported (gzip, deflate)")
    decoder = zlib.decompressobj(wbits=47)  # gzip or zlib header, detected
    step = max_bytes + 1
    try:
        for chunk in raw:
            data = decoder.decompress(chunk, step)
            yield data
            while decoder.unconsumed_tail:
                yield decoder.decompress(decoder.unconsumed_tail, step)
    except zlib.error as exc:
        raise ToolException(f"corrupt {encoding} body: {exc}") from None


def _read_capped(chunks: Iterator[bytes], deadline: _Deadline, max_bytes: int) -> tuple[bytes, bool]:
    """The first `max_bytes` bytes, and whether there was more. Stops reading at the cap."""
    body = bytearray()
    for chunk in chunks:
        deadline.left()
        body += chunk
        if len(body) > max_bytes:
            return bytes(body[:max_bytes]), True
    return bytes(body), False
