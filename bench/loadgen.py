"""A fixed-rate HTTP load generator that measures latency from the intended send time.

wrk (Debian's) sends as fast as answers come back, so it measures throughput but not the latency
Chargebee sees at a given rate. Here request i is due at start + i / rate; it goes out on the first
idle keep-alive connection, and its latency is counted from when it was due, not from when it was
sent, so a stall shows up in every request that waited behind it (no "coordinated omission").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Result:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    bodies_with: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    seconds: float = 0.0
    sent_ids: list[str] = field(default_factory=list)
    queued_ids: list[str] = field(default_factory=list)

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    body = await reader.readexactly(length) if length else b""
    return status, body


async def run(
    host: str,
    port: int,
    path: str,
    rate: float,
    count: int,
    body_for: Callable[[int], tuple[str, bytes]],
    headers: dict[str, str],
    connections: int = 32,
) -> Result:
    """Send `count` POSTs at `rate` per second; body_for(i) gives (event id, body)."""
    result = Result()
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while True:
                item = await queue.get()
                if item is None:
                    return
                i, due = item
                event_id, body = body_for(i)
                request = (
                    f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n{extra}\r\n"
                ).encode() + body
                try:
                    writer.write(request)
                    await writer.drain()
                    status, answer = await _read_response(reader)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    result.errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                result.latencies_ms.append((time.perf_counter() - due) * 1000)
                result.statuses[status] = result.statuses.get(status, 0) + 1
                result.sent_ids.append(event_id)
                if status == 200 and b'"queued"' in answer:
                    result.queued_ids.append(event_id)
        finally:
            writer.close()

    workers = [asyncio.create_task(connection()) for _ in range(connections)]
    start = time.perf_counter()
    for i in range(count):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((i, due))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    result.seconds = time.perf_counter() - start
    return result
