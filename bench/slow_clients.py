"""Slow HTTP/1.1 clients for bench/app_mode.sh: each sends its request head a
few bytes at a time and reads the response slowly, over and over, until the
deadline. The kind of client that holds a Gunicorn sync worker for its whole
life (Gunicorn's docs: "sync workers ... need a buffering proxy").

usage: slow_clients.py HOST PORT PATH CLIENTS SECONDS
Prints "completed=N failed=M" when the deadline passes (bounded in time).
"""
import asyncio
import sys
import time


async def one(host, port, path, deadline, counts):
    head = ("GET %s HTTP/1.1\r\nHost: bench\r\nUser-Agent: slow\r\n"
            "Connection: close\r\n\r\n" % path).encode()
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), 5)
        except (OSError, asyncio.TimeoutError):
            counts["failed"] += 1
            await asyncio.sleep(0.2)
            continue
        try:
            # The head in 8 pieces, 0.25 s apart: 2 s to send one request.
            step = max(1, len(head) // 8)
            for i in range(0, len(head), step):
                writer.write(head[i:i + step])
                await writer.drain()
                await asyncio.sleep(0.25)
            # Read 16 KiB every 50 ms (~320 KiB/s): a phone on a poor link.
            first = b""
            while time.monotonic() < deadline + 10:
                chunk = await asyncio.wait_for(reader.read(16384), 30)
                if not chunk:
                    break
                first = first or chunk
                await asyncio.sleep(0.05)
            ok = first.startswith(b"HTTP/1.1 200") or first.startswith(b"HTTP/1.0 200")
            counts["completed" if ok else "failed"] += 1
        except (OSError, asyncio.TimeoutError):
            counts["failed"] += 1
        finally:
            writer.close()


async def main():
    host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    clients, seconds = int(sys.argv[4]), float(sys.argv[5])
    deadline = time.monotonic() + seconds
    counts = {"completed": 0, "failed": 0}
    await asyncio.wait_for(
        asyncio.gather(*(one(host, port, path, deadline, counts)
                         for _ in range(clients))), seconds + 60)
    print("completed=%d failed=%d" % (counts["completed"], counts["failed"]))


if __name__ == "__main__":
    asyncio.run(main())
