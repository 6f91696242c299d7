"""Run one check in a forked child process, so that a crash, a hang or a broken CUDA context stays in that check.

The parent never initialises CUDA (forked children could not use it then); each child does, from scratch. Rows
stream back through a pipe as they are made, so a child that dies or runs out of time keeps the rows it finished,
and the check gets one more FAIL row saying what happened.
"""
from __future__ import annotations

import faulthandler
import multiprocessing
import os
import signal
import time
import traceback
from typing import Callable

from gpu_checks.registry import FAIL, WHOLE_CHECK, Check, Row, one_line


def cuda_context_failure() -> str | None:
    """None if CUDA (when this process uses it) still runs work, else the error: after an illegal memory access,
    say, every later CUDA call fails, and the rest of the check would only repeat that error."""
    import torch
    if not torch.cuda.is_initialized():
        return None
    try:
        torch.ones(1, device="cuda").add_(1).item()
    except Exception as error:  # the context is gone, whatever the exception type
        return one_line(error)
    return None


def _child(check: Check, settings, sender) -> None:
    faulthandler.enable()  # a segmentation fault prints the Python stack before the process dies
    try:
        for row in check.function(settings):
            sender.send(row)
            if check.name in settings.inject_crash:
                os.kill(os.getpid(), signal.SIGSEGV)
            broken = cuda_context_failure() if row.status == FAIL else None
            if broken:
                sender.send(Row(check.name, WHOLE_CHECK, FAIL, f"CUDA no longer works after the case above "
                                                               f"({broken}): the rest of this check was not run"))
                return
    except Exception as error:  # a failure outside any case (a bug of the check itself) ends only this check
        traceback.print_exc()
        sender.send(Row(check.name, WHOLE_CHECK, FAIL, f"the check stopped: {one_line(error)}"))
    finally:
        sender.close()


def death(exit_code: int) -> str:
    if exit_code < 0:
        return f"killed by {signal.Signals(-exit_code).name}"
    return f"exit code {exit_code}"


def run_isolated(check: Check, settings, timeout_s: float, on_row: Callable[[Row], None]) -> list[Row]:
    """The rows of ``check`` run in a forked process, stopped after ``timeout_s``; ``on_row`` sees each as it comes."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(check, settings, sender), name=f"gpu_check:{check.name}",
                              daemon=True)
    process.start()
    sender.close()  # the child holds the only writer now: its exit, however it happens, ends the stream
    rows, deadline, timed_out = [], time.monotonic() + timeout_s, False
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        if not receiver.poll(min(remaining, 1.0)):
            continue
        try:
            row = receiver.recv()
        except EOFError:
            break
        rows.append(row)
        on_row(row)
    if timed_out:
        process.kill()
    process.join(30)
    hung = process.exitcode is None
    if hung:
        process.kill()
        process.join()
    problem = (f"stopped after its time limit of {timeout_s:.0f} s" if timed_out else
               "its process did not exit within 30 s of its last row" if hung else
               None if process.exitcode == 0 else f"its process died ({death(process.exitcode)})")
    if problem:
        row = Row(check.name, WHOLE_CHECK, FAIL, f"{problem} after {len(rows)} row(s); see the output above")
        rows.append(row)
        on_row(row)
    receiver.close()
    return rows
