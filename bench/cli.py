"""`python -m bench`: start a private stack, measure the referral path against raw Temporal."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bench.options import parse
from bench.stack import Stack
from bench.suite import run

T = TypeVar("T")


class Progress:
    """Where the run is, on stderr, so stdout holds the table alone."""

    def __init__(self) -> None:
        self.began = time.monotonic()

    def __call__(self, message: str) -> None:
        print(f"[{time.monotonic() - self.began:6.1f}s] {message}", file=sys.stderr, flush=True)


class Interrupt:
    """Ctrl-C or SIGTERM: stop the run, and with it every process it started.

    Installed for SIGINT too, as a shell that starts us in the background leaves SIGINT ignored.
    A second signal while stopping is ignored, so the clean-up itself is not cut short."""

    def __init__(self) -> None:
        self.caught = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        if not self.caught:
            self.caught = True
            raise KeyboardInterrupt

    def quiet(self, loop: asyncio.AbstractEventLoop, context: dict) -> None:
        """Requests cut short by the interrupt fail as they are cancelled: not worth a trace."""
        if not self.caught:
            loop.default_exception_handler(context)


def interruptible(stack: Stack, say: Progress, work: Callable[[], Awaitable[T]]) -> T | None:
    """Run `work` on `stack`, then close the stack; None when Ctrl-C or SIGTERM stopped it (every
    process the run started is stopped all the same)."""
    interrupt = Interrupt()

    async def measured() -> T:
        asyncio.get_running_loop().set_exception_handler(interrupt.quiet)
        return await work()

    try:
        return asyncio.run(measured())
    except BaseException:
        if not interrupt.caught:
            raise
        say("interrupted: stopping the run's processes")
        return None
    finally:
        stack.close()


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    say = Progress()
    stack = Stack.create(keep=options.keep)
    say(f"working in {stack.home}")
    report = interruptible(stack, say, lambda: run(options, stack, say))
    if report is None:
        return 130
    say("done; every process it started is stopped")
    if options.keep:
        say(f"logs and databases kept in {stack.home}")
    print(report.render())
    return 0
