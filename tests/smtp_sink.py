#!/usr/bin/env python3
"""A real SMTP server on loopback for the integration tests (tests/api/email_verification.rs).

Runs aiosmtpd (from PyPI) on 127.0.0.1 and a free port; prints `PORT <n>` once it listens, then
one JSON line per message it receives: {"mail_from": ..., "rcpt_tos": [...], "data": "<the
message as sent>"}. It offers no AUTH, and no STARTTLS unless started with `--starttls`: then it
offers STARTTLS with a self-signed certificate made at start (with `openssl`), and prints
{"event": "STARTTLS"} when a client asks for it. It stops when its standard input closes or on
SIGTERM.

    python3 tests/smtp_sink.py [--starttls]      # needs `pip install aiosmtpd`
"""

import asyncio
import json
import logging
import os
import ssl
import subprocess
import sys
import tempfile

from aiosmtpd.smtp import SMTP, syntax


class RecordingSMTP(SMTP):
    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg):
        print(json.dumps({"event": "STARTTLS"}), flush=True)
        await super().smtp_STARTTLS(arg)


def self_signed_context(directory):
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-keyout", key, "-out", cert],
        check=True, capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


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


async def main(tls_context):
    loop = asyncio.get_running_loop()
    if tls_context is not None:
        # A client that rejects the self-signed certificate is what the STARTTLS test expects:
        # keep the handshake failures' tracebacks out of the test output.
        loop.set_exception_handler(lambda loop, context: None)
        logging.getLogger("mail.log").setLevel(logging.CRITICAL)
    handler = PrintEachMessage()
    server = await loop.create_server(
        lambda: RecordingSMTP(
            handler, hostname="tasklight-test-smtp", tls_context=tls_context,
            require_starttls=False,
        ),
        "127.0.0.1",
        0,
    )
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as scratch:
        context = self_signed_context(scratch) if "--starttls" in sys.argv[1:] else None
        asyncio.run(main(context))
