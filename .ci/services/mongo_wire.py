"""Serve a MongoDB wire-protocol endpoint backed by mongoeco (CI only).

Usage: python mongo_wire.py --host 127.0.0.1 --port 27217 [--sqlite PATH]

Runs in the mongoeco venv (Python >= 3.13). Memory engine by default; with
--sqlite the data lives in a SQLite file. Stops cleanly on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from mongoeco.engines import MemoryEngine, SQLiteEngine
from mongoeco.wire import AsyncMongoEcoProxyServer


async def serve(host: str, port: int, sqlite: str | None) -> None:
    engine = SQLiteEngine(sqlite, executor_workers=1) if sqlite else MemoryEngine()
    server = AsyncMongoEcoProxyServer(engine=engine, host=host, port=port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    address = await server.start()
    print(f"mongoeco wire server listening on {address.uri}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.close()
        print("mongoeco wire server stopped", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=27217)
    parser.add_argument("--sqlite", default=None, help="SQLite file (default: in memory)")
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, args.sqlite))


if __name__ == "__main__":
    main()
