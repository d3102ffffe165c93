"""The baseline: a bare aiosmtpd server whose handler only answers 250 OK (stores nothing).

Run: python benchmarks/bare_aiosmtpd.py PORTFILE  (binds 127.0.0.1:0 and writes the port to PORTFILE)
"""

from __future__ import annotations

import asyncio
import signal
import sys

from aiosmtpd.smtp import SMTP


class Sink:
    async def handle_DATA(self, server: SMTP, session: object, envelope: object) -> str:
        return "250 OK"


async def main(port_file: str) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(Sink(), hostname="bare", data_size_limit=100 * 1024 * 1024, decode_data=False),
        "127.0.0.1", 0)
    with open(port_file, "w") as f:
        f.write(str(server.sockets[0].getsockname()[1]))
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
