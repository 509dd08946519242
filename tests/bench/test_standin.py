"""bench/standin.py and its HTTP/1.1 server (bench/standin_http.py), over raw sockets:
pipelined, split and chunked requests, 100-continue, keep-alive and close, the refusals, the
cached order answer and the conflict path."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest

from bench.children import API_KEY, HttpApi, standin_process
from consumer.afosto.operations import OperationName, document

Answer = tuple[int, dict[str, str], bytes]


def _request(method: str, path: str, body: bytes = b"", **headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: standin"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _graphql(operation: OperationName, variables: dict[str, Any], key: str = API_KEY) -> bytes:
    body = orjson.dumps({"query": document(operation), "variables": variables})
    return _request("POST", "/graphql", body, Authorization=f"Bearer {key}")


async def _answer(reader: asyncio.StreamReader) -> Answer:
    head = (await reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:] if h)}
    body = await reader.readexactly(int(headers["content-length"]))
    return int(head[0].split()[1]), headers, body


async def _exchange(
    api: HttpApi, *requests: bytes, chunk: int = 0, expect: int | None = None
) -> tuple[list[Answer], bool]:
    """Send the requests on one connection (all in one write, or `chunk` bytes at a time); the
    `expect` answers (one per request by default), and whether the stand-in closed then."""
    host, port = api.base_url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        data = b"".join(requests)
        for start in range(0, len(data), chunk or len(data)):
            writer.write(data[start : start + (chunk or len(data))])
            await writer.drain()
            if chunk:
                await asyncio.sleep(0.001)
        answers = [
            await _answer(reader) for _ in range(len(requests) if expect is None else expect)
        ]
        closed = await asyncio.wait_for(reader.read(1), 0.3) == b""
    except TimeoutError:
        closed = False
    finally:
        writer.close()
    return answers, closed


def _data(answer: Answer) -> Any:
    status, headers, body = answer
    assert status == 200
    assert headers["content-type"] == "application/json"
    return orjson.loads(body)


def _chunked(request: bytes) -> bytes:
    """The same request with its body in two chunks instead of a Content-Length."""
    head, _, body = request.partition(b"\r\n\r\n")
    head = b"\r\n".join(h for h in head.split(b"\r\n") if not h.startswith(b"Content-Length"))
    half = len(body) // 2
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (body[:half], body[half:]))
    return head + b"\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"


@pytest.mark.parametrize("loop", ["--uvloop", "--no-uvloop"])
async def test_pipelined_split_chunked_and_closing_requests(loop: str) -> None:
    async with standin_process(extra=[loop]) as api:
        (order,) = await api.control("POST", "orders", {"count": 1, "items": 2})
        query = _graphql("order", {"id": order["id"]})
        health = _request("GET", "/_control/health")
        # Four requests in one write, then the same four a few bytes at a time.
        for chunk in (0, 7):
            answers, closed = await _exchange(
                api, health, query, _chunked(query), health, chunk=chunk
            )
            assert [_data(a) for a in answers[::3]] == [{"ok": True}, {"ok": True}]
            assert _data(answers[1]) == _data(answers[2])
            assert _data(answers[1])["data"]["order"]["id"] == order["id"]
            assert not closed  # kept alive
        # `Expect: 100-continue`: the interim answer once the head is in, the answer after.
        host, port = api.base_url.removeprefix("http://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        head, _, body = query.partition(b"\r\n\r\n")
        writer.write(head + b"\r\nExpect: 100-continue\r\n\r\n")
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(body)
        assert _data(await _answer(reader))["data"]["order"]["id"] == order["id"]
        writer.close()
        # After `Connection: close` the stand-in answers, closes, and reads nothing more.
        close = _request("GET", "/_control/health?probe=1", Connection="close")
        answers, closed = await _exchange(api, close, query, expect=1)
        assert _data(answers[0]) == {"ok": True}
        assert closed
        ledger = await api.control("GET", "ledger")
    assert ledger["calls"] == {"order": {"ok": 5}}


async def test_refusals() -> None:
    async with standin_process() as api:
        answers, closed = await _exchange(
            api,
            _request("GET", "/nowhere"),
            _request("GET", "/graphql"),
            _graphql("order", {"id": "x"}, key="wrong-key"),
            _graphql("order", {"id": "no-such-order"}),
        )
        assert [a[0] for a in answers] == [404, 405, 200, 200]
        assert _data(answers[2])["errors"][0]["extensions"]["code"] == "UNAUTHORIZED"
        assert _data(answers[3])["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        assert not closed
        # Each broken request gets its 4xx and a close; what follows it goes unanswered.
        health = _request("GET", "/_control/health")
        too_large = b"POST /graphql HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (2**26 + 1)
        for sent, status in ((b"NOT HTTP\r\n\r\n" + health, 400), (too_large + health, 413)):
            answers, closed = await _exchange(api, sent, expect=1)
            assert answers[0][0] == status
            assert answers[0][1]["connection"] == "close"
            assert closed
        # A head that never ends: sent until the refusal comes (writing on would meet a reset).
        host, port = api.base_url.removeprefix("http://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET / HTTP/1.1\r\nX-Filler: ")
        refusal = asyncio.ensure_future(_answer(reader))
        for _ in range(100):  # 1.6 MB at most
            writer.write(b"x" * 16_384)
            await asyncio.wait([refusal], timeout=0.01)
            if refusal.done():
                break
        assert (await refusal)[0] == 431
        writer.close()
        ledger = await api.control("GET", "ledger")
    assert ledger["calls"] == {"auth": {"unauthorized": 1}, "order": {"not_found": 1}}


async def test_conflict_path_and_the_cached_order_answer() -> None:
    async with standin_process() as api:
        (order,) = await api.control("POST", "orders", {"count": 1, "items": 2})
        items = order["item_ids"]
        query = _graphql("order", {"id": order["id"]})
        mutation = _graphql("invoice_items", {"input": {"items": items, "invoice_id": "inv-1"}})
        again = _graphql("invoice_items", {"input": {"items": items, "invoice_id": "inv-2"}})
        answers, _ = await _exchange(api, query, query, mutation, query, mutation, again)
        before, cached, created, after, repeated, other_id = answers
        assert before[2] == cached[2]
        assert _data(before)["data"]["order"]["actions"] == [{"action": "INVOICE", "ids": items}]
        invoice = _data(created)["data"]["invoiceItems"]["invoice"]
        assert invoice["id"] == "inv-1"
        assert invoice["pdf_url"].endswith("/pdf/inv-1.pdf")
        changed = _data(after)["data"]["order"]
        assert changed["actions"] == []
        assert [i["id"] for i in changed["invoices"]] == ["inv-1"]
        for refused, field in ((repeated, "invoice_id"), (other_id, "items")):
            (error,) = _data(refused)["errors"]
            assert error["extensions"] == {"code": "VALIDATION_ERROR", "field": field}
        ledger = await api.control("GET", "ledger")
    assert ledger["calls"]["mutation"] == {"ok": 1, "validation_error": 2}
    assert ledger["calls"]["order"] == {"ok": 3}
    assert ledger["invoiced_more_than_once"] == {}


async def test_latency_keeps_pipelined_answers_in_order() -> None:
    async with standin_process(latency_ms=200, pdf_delay_s=30) as api:
        (order,) = await api.control("POST", "orders", {"count": 1, "items": 1})
        mutation = _graphql(
            "invoice_items", {"input": {"items": order["item_ids"], "invoice_id": "inv-1"}}
        )
        health = _request("GET", "/_control/health")
        started = time.monotonic()
        answers, closed = await _exchange(
            api, mutation, health, _graphql("invoice", {"id": "inv-1"}), health
        )
        assert time.monotonic() - started >= 0.4  # two GraphQL calls, one after the other
        assert _data(answers[0])["data"]["invoiceItems"]["invoice"]["pdf_url"] is None
        assert _data(answers[1]) == {"ok": True}
        assert _data(answers[2])["data"]["invoice"]["id"] == "inv-1"
        assert not closed
