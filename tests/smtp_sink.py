#!/usr/bin/env python3
"""A real SMTP server on loopback for the integration tests (tests/api/email_verification.rs).

Runs aiosmtpd (from PyPI) on 127.0.0.1 and a free port; prints `PORT <n>` once it listens, then
one JSON line per message it receives: {"mail_from": ..., "rcpt_tos": [...], "data": "<the
message as sent>"}. It offers no STARTTLS (so a client's opportunistic STARTTLS goes on in plain
text) and no AUTH. It stops when its standard input closes or on SIGTERM.

    python3 tests/smtp_sink.py        # needs `pip install aiosmtpd`
"""

import asyncio
import json
import sys

from aiosmtpd.smtp import SMTP


class PrintEachMessage:
    async def handle_DATA(self, server, session, envelope):
        print(
            json.dumps(
                {
                    "mail_from": envelope.mail_from,
                    "rcpt_tos": envelope.rcpt_tos,
                    "data": envelope.content.decode("utf-8", errors="replace"),
                }
            ),
            flush=True,
        )
        return "250 Message accepted for delivery"


async def main():
    loop = asyncio.get_running_loop()
    handler = PrintEachMessage()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="tasklight-test-smtp"), "127.0.0.1", 0
    )
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
