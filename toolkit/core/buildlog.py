"""The build's log file: everything the process and its children write goes there, the terminal
shows what the toolkit says.

Libraries write to the process's stdout and stderr on their own (ONNX's exporter warns about
torchvision, ExecuTorch's runtime prints `[cpuinfo_utils.cpp]` lines, torch warns), from Python and
from C++, in this process and in the profiler's fresh processes. `captured(path, verbose)`
redirects file descriptors 1 and 2 into a pipe that a thread copies to `path` (and, with
`verbose`, to the terminal too), so every byte lands in the file whoever wrote it; the toolkit's
own lines go through `Console.log` to the terminal and the file.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from pathlib import Path

READ_CHUNK = 65536
DRAIN_TIMEOUT_S = 5.0  # a child that still holds the pipe when the build ends is not waited for longer


class Console:
    """Where the toolkit's lines go while the process's own output is captured."""

    def __init__(self, terminal, file):
        self.terminal, self.file = terminal, file
        self.lock = threading.Lock()

    def log(self, msg: str) -> None:
        with self.lock:
            self.terminal.write(msg + "\n")
            self.terminal.flush()
            self.file.write(f"{msg}\n".encode())
            self.file.flush()


@contextlib.contextmanager
def captured(path: Path, verbose: bool = False):
    """Capture fds 1 and 2 into `path` for the duration; yields a `Console` for the toolkit's lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    terminal = os.fdopen(os.dup(saved[1]), "w", buffering=1)
    chatter = os.fdopen(os.dup(saved[2]), "wb", buffering=0) if verbose else None
    file = open(path, "ab", buffering=0)
    file.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} python -m toolkit {' '.join(sys.argv[1:])}\n".encode())
    read_end, write_end = os.pipe()

    def copy() -> None:
        while chunk := os.read(read_end, READ_CHUNK):
            file.write(chunk)
            if chatter is not None:
                chatter.write(chunk)

    reader = threading.Thread(target=copy, name="build-log", daemon=True)
    reader.start()
    for fd in (1, 2):
        os.dup2(write_end, fd)
    os.close(write_end)
    try:
        yield Console(terminal, file)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, original in saved.items():
            os.dup2(original, fd)  # the pipe's last writer in this process closes: the reader sees EOF
            os.close(original)
        reader.join(DRAIN_TIMEOUT_S)
        if not reader.is_alive():
            os.close(read_end)
            file.close()
        terminal.close()
        if chatter is not None:
            chatter.close()
