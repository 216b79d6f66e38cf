"""``status.json``: what a run is doing, readable by anyone who has the run directory (the dashboard after a browser
reload, another notebook, the run registry).

Fields::

    status        "running" | "completed" | "stopped" | "failed"
    reason        why it stopped: "STOP file", "KeyboardInterrupt", "SIGTERM" (stopped runs resume exactly)
    error         the exception in one line, e.g. "ValueError: data.max_seq_len=... exceeds ..." (failed runs)
    error_tail    the last lines of the output or traceback (failed runs)
    step, max_steps
    checkpoint    the checkpoint a resumed run continues exactly from, relative to the run directory (after Stop)
    task, run_dir, pid, host, started_at, updated_at (seconds since the epoch)

The journal (``perceiver.training.journal.RunJournal``) writes it during training; the CLI when a run fails before
training starts; the workbench's runner when the process ends without a final status (killed, or an error before
the CLI could write). A "running" status whose process is gone (same host) reads as failed.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from pathlib import Path
from typing import Any

FILE = "status.json"
STATES = ("running", "completed", "stopped", "failed")
_EXCEPTION_LINE = re.compile(r"^(\w[\w.]*(Error|Exception|Exit|Interrupt|Warning)|\w+Error)\b.*")


def read(run_dir: str | os.PathLike, check_process: bool = True) -> dict[str, Any]:
    """The run's status (``{}`` if it has none yet). With ``check_process``, a running status of a process that no
    longer exists on this host reads as "failed"."""
    path = Path(run_dir, FILE)
    try:
        status = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if check_process and status.get("status") == "running" and not alive(status):
        status.update(status="failed", error=status.get("error") or
                      f"the training process (pid {status.get('pid')}) ended without a final status (killed?)")
    return status


def write(run_dir: str | os.PathLike, /, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into the run's status and write it atomically (readers never see half a file)."""
    path = Path(run_dir, FILE)
    try:
        status = json.loads(path.read_text())
    except (OSError, ValueError):
        status = {}
    now = time.time()
    status.update(fields, updated_at=now)
    if fields.get("status") == "running":  # this process runs it (a resumed run keeps its first start time)
        status.setdefault("pid", os.getpid())
        status.setdefault("host", socket.gethostname())
        status.setdefault("started_at", now)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(status, indent=1))
    os.replace(tmp, path)
    return status


def alive(status: dict[str, Any]) -> bool:
    """Whether the process of a status may still run: unknown hosts and pids count as alive."""
    pid, host = status.get("pid"), status.get("host")
    if not pid or host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, ValueError):
        return True
    return True


def error_fields(text: str, lines: int = 15) -> dict[str, str]:
    """``error`` (the last exception line of an output or traceback) and ``error_tail`` (its last lines)."""
    rows = [r.rstrip() for r in text.splitlines() if r.strip()]
    tail = rows[-lines:]
    error = next((r.strip() for r in reversed(rows) if _EXCEPTION_LINE.match(r.strip())), tail[-1] if tail else "")
    return {"error": error, "error_tail": "\n".join(tail)}


def describe(status: dict[str, Any]) -> str:
    """One line: "running, step 12/200", "stopped at step 40 (STOP file)", "failed: ValueError: ..."."""
    state = status.get("status")
    if not state:
        return "not started"
    step = status.get("step")
    steps = f"step {step}/{status['max_steps']}" if step is not None and status.get("max_steps") else (
        f"step {step}" if step is not None else "")
    if state == "running":
        return f"running{', ' + steps if steps else ''}"
    if state == "failed":
        return f"failed{' at ' + steps if steps else ''}: {status.get('error') or 'unknown error'}"
    reason = f" ({status['reason']})" if status.get("reason") else ""
    return f"{state}{' at ' + steps if steps else ''}{reason}"

