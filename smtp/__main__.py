"""`python -m smtp`: the inbound SMTP server, SMTP_SERVER_PROCESSES processes sharing SMTP_LISTEN (SO_REUSEPORT)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys

from mailferry.logs import get_logger, log, setup_logging
from mailferry.settings import Settings, settings_or_exit

from .check import check
from .server import InboundServer, bind_socket

logger = get_logger("smtp")
GIL_SWITCH_INTERVAL = 0.0005  # seconds; CPython's default is 0.005


async def serve(settings: Settings, reuse_port: bool) -> None:
    """Run one server until SIGTERM or SIGINT, then shut it down cleanly."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server = InboundServer(settings)
    await server.start(reuse_port=reuse_port)
    gc.freeze()  # what start-up built lives as long as the process: full GC passes need not walk it again
    try:
        await stop.wait()
    finally:
        await server.close()


def run_one(settings: Settings, reuse_port: bool = False) -> None:
    setup_logging(settings.LOG_LEVEL, settings.LOG_FORMAT)
    # The spool's writer and dispatcher threads need the GIL back after every database or Redis round trip,
    # several per commit, and the commit is on the way to each 250: with CPython's default 5 ms switch
    # interval a busy event loop made them wait up to 5 ms each time (PostgreSQL accept p99 ~200 ms).
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    asyncio.run(serve(settings, reuse_port))


def run_many(settings: Settings) -> int:
    """Fork the servers; on SIGTERM/SIGINT pass it on and wait. A server that dies takes the group down."""
    bind_socket(*settings.SMTP_LISTEN, reuse_port=True).close()  # fail here, once, if the address is taken
    context = multiprocessing.get_context("fork")
    children = [context.Process(target=run_one, args=(settings, True), name=f"smtp-{i}")
                for i in range(settings.SMTP_SERVER_PROCESSES)]
    for child in children:
        child.start()

    def forward(signum, _frame) -> None:
        for child in children:
            if child.is_alive():
                os.kill(child.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    sentinels = {child.sentinel: child for child in children}
    multiprocessing.connection.wait(list(sentinels))
    forward(signal.SIGTERM, None)
    for child in children:
        child.join()
    failed = [c for c in children if c.exitcode not in (0, -signal.SIGTERM)]
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m smtp", description="Mailferry inbound SMTP server")
    parser.add_argument("--check", action="store_true",
                        help="exit 0 when the server on SMTP_LISTEN greets with 220, else 1 (healthchecks)")
    args = parser.parse_args(argv)
    settings = settings_or_exit()
    if args.check:
        ok, line = check(settings)
        print(line, file=sys.stdout if ok else sys.stderr)
        return 0 if ok else 1
    setup_logging(settings.LOG_LEVEL, settings.LOG_FORMAT)
    if settings.SMTP_SERVER_PROCESSES == 1:
        run_one(settings)
        return 0
    log(logger, logging.INFO, "starting servers", processes=settings.SMTP_SERVER_PROCESSES)
    return run_many(settings)


if __name__ == "__main__":
    raise SystemExit(main())
