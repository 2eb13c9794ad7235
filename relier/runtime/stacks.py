"""Where a task is right now, as text: the stack of a suspended coroutine or of a thread.

Used when a task is timed out (the DLQ entry keeps where it hung) and by the watchdog
(the log says what blocks the loop). Only frames are read; nothing is changed.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Iterator
from types import FrameType
from typing import Any, Final

#: Frames kept in a logged or stored stack, innermost last.
STACK_LIMIT: Final = 30
#: Source directory of the runtime: frames from here are Relier's, not the task's.
RUNTIME_DIR: Final = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _format(frames: list[FrameType], header: str) -> str:
    summary = traceback.StackSummary.from_list(
        [(f.f_code.co_filename, f.f_lineno, f.f_code.co_name, None)
         for f in frames[-STACK_LIMIT:]]
    )
    return header + "\n" + "".join(summary.format()).rstrip("\n")


def coroutine_stack(coroutine: Any, header: str = "Suspended at (most recent call last):") -> str:
    """The await chain of a suspended coroutine, outermost first (as a traceback reads).

    Follows ``cr_await`` (and a generator's ``gi_yieldfrom``) until it reaches something
    that is not a coroutine, typically the future the task waits on.
    """
    frames: list[FrameType] = []
    current = coroutine
    while current is not None:
        frame = _first_attr(current, "cr_frame", "gi_frame", "ag_frame")
        if not isinstance(frame, FrameType):
            break
        frames.append(frame)
        current = _first_attr(current, "cr_await", "gi_yieldfrom", "ag_await")
    if not frames:
        return header + "\n  (the coroutine is not suspended)"
    return _format(frames, header)


def _first_attr(value: Any, *names: str) -> Any:
    for name in names:
        found = getattr(value, name, None)
        if found is not None:
            return found
    return None


def thread_frame(ident: int) -> FrameType | None:
    """The frame a live thread is executing now, or None if it has ended."""
    return sys._current_frames().get(ident)


def _outward(frame: FrameType | None) -> Iterator[FrameType]:
    while frame is not None:
        yield frame
        frame = frame.f_back


def thread_stack(
    ident: int, header: str = "Running at (most recent call last):", *,
    task_only: bool = False,
) -> str:
    """The stack of a live thread, outermost first. With ``task_only``, only the frames
    the task's own code runs in: those called from the innermost frame of Relier's
    runtime (the CLI, the event loop and the thread pool are left out)."""
    frames = list(_outward(thread_frame(ident)))
    if not frames:
        return header + "\n  (the thread has ended)"
    frames.reverse()
    if task_only:
        inner = [i for i, f in enumerate(frames) if f.f_code.co_filename.startswith(RUNTIME_DIR)]
        if inner and inner[-1] + 1 < len(frames):
            frames = frames[inner[-1] + 1:]
    return _format(frames, header)

