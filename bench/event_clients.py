"""Open dashboards for bench/events.py: N clients following `GET /api/events`, consuming
every event, in one lean process (raw asyncio streams: the clients' own CPU shares the
machine with the server, so it is kept small).

    python bench/event_clients.py --url http://127.0.0.1:PORT --clients 50

Prints ``ready`` once every client is subscribed; on SIGTERM prints one JSON line:
``{"clients", "events": [per client], "bytes": [per client], "ended": n}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from urllib.parse import urlsplit

_EVENT = b"\nevent: "


class Client:
    def __init__(self) -> None:
        self.events = 0
        self.bytes = 0
        self.ended = False
        self.subscribed = asyncio.Event()

    async def follow(self, host: str, port: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            f"GET /api/events HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        await writer.drain()
        tail = b""
        try:
            while chunk := await reader.read(65536):
                self.bytes += len(chunk)
                # Events are counted by their `event:` line; a chunk boundary may split one.
                data = tail + chunk
                self.events += data.count(_EVENT)
                tail = data[-(len(_EVENT) - 1) :]
                if b"subscribed" in data:
                    self.subscribed.set()
            self.ended = True  # the server closed the stream
        finally:
            self.subscribed.set()
            writer.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args()
    where = urlsplit(args.url)
    host, port = where.hostname or "127.0.0.1", where.port or 80

    clients = [Client() for _ in range(args.clients)]
    tasks = [asyncio.create_task(client.follow(host, port)) for client in clients]
    await asyncio.gather(*(client.subscribed.wait() for client in clients))
    print("ready", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(
        json.dumps(
            {
                "clients": len(clients),
                "events": [client.events for client in clients],
                "bytes": [client.bytes for client in clients],
                "ended": sum(client.ended for client in clients),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    asyncio.run(main())
