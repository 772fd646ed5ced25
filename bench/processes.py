"""Child processes of the bench: start with a log file, stop politely, read their memory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

STOP_TIMEOUT_SECONDS = 20.0
REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
KIBIBYTE = 1024


class ManagedProcess:
    """One child process whose stdout and stderr go to a log file."""

    def __init__(
        self, name: str, command: Sequence[str], env: Mapping[str, str], log_path: Path
    ) -> None:
        self.name = name
        self.command = list(command)
        self.env = dict(env)
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None, f"{self.name} is not running"
        return self._process.pid

    def start(self) -> ManagedProcess:
        environment = {**os.environ, **self.env}
        # The bench package lives at the repository root, next to src/.
        environment["PYTHONPATH"] = os.pathsep.join(
            part for part in (str(REPOSITORY_ROOT), environment.get("PYTHONPATH", "")) if part
        )
        log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            self.command, env=environment, cwd=REPOSITORY_ROOT, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        return self

    def exited(self) -> int | None:
        """Return the exit code, or None while the process runs."""
        return None if self._process is None else self._process.poll()

    def stop(self) -> None:
        """Send SIGTERM, and SIGKILL if the process outlives the stop timeout."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def log_tail(self, characters: int = 2000) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-characters:]


def python_module(module: str, *arguments: str) -> list[str]:
    """Build the command that runs `python -m module` with the bench's own interpreter."""
    return [sys.executable, "-m", module, *arguments]


def _status_field(pid: int, field: str) -> int | None:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith(field + ":"):
            return int(line.split()[1]) * KIBIBYTE
    return None


def rss_bytes(pid: int) -> int | None:
    """Return the resident set size of a process now, or None once it has exited."""
    return _status_field(pid, "VmRSS")


def peak_rss_bytes(pid: int) -> int | None:
    """Return the largest resident set size the process has had so far."""
    return _status_field(pid, "VmHWM")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name in brackets may contain spaces; the fields after it do not.
    return text.rpartition(")")[2].split()


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        queue.extend(children.get(current, []))
    return found


def tree_cpu_seconds(pid: int) -> float:
    """Return user plus system CPU time of a process and all its live descendants."""
    ticks_per_second = os.sysconf("SC_CLK_TCK")
    total = 0
    for member in _descendants(pid):
        fields = _stat_fields(member)
        if fields:
            # utime and stime are fields 14 and 15 of stat, indexes 11 and 12 once the pid
            # and the name are cut off.
            total += int(fields[11]) + int(fields[12])
    return total / ticks_per_second
