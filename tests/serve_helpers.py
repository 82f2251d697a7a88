"""A ``serve`` command in a child process, driven over 127.0.0.1 (tests/test_serve.py)."""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

APPS = Path(__file__).resolve().parent / "serve_apps"

needs_safe_asyncio = sys.version_info[:2] == (3, 12) and sys.version_info < (3, 12, 4)


class ServeProcess:
    """``python -m interpreters_aio serve ARGS`` with its output collected line by line."""

    def __init__(self, *args: str, app_dir: Path = APPS, env: dict[str, str] | None = None):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "interpreters_aio", "serve", "--app-dir", str(app_dir), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
            cwd=str(app_dir),
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.port: int | None = None

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 60, count: int = 1) -> list[re.Match[str]]:
        """Waits until ``count`` output lines match ``pattern``; returns the matches."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [m for m in map(regex.search, self.lines) if m]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(
                        f"no {count} lines matching {pattern!r} in:\n" + "\n".join(self.lines)
                    )
                self._changed.wait(min(left, 0.5))

    def wait_serving(self, timeout: float = 60) -> int:
        """Waits for the "serving ... on http://127.0.0.1:PORT" line; returns the port."""
        match = self.wait_for(r"serving \S+ on http://127\.0\.0\.1:(\d+)", timeout)[0]
        self.port = int(match.group(1))
        return self.port

    def get(self, path: str = "/", timeout: float = 30) -> tuple[int, str]:
        """One request on a new connection; returns (status, body)."""
        assert self.port is not None
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read().decode()
        finally:
            conn.close()

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 60) -> int:
        """Waits for the process to exit; returns its exit code."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("serve did not exit in time:\n" + self.output) from None
        self._reader.join(10)
        return code

    def stop(self) -> int:
        """SIGTERM, then the exit code (killed if it does not stop in time)."""
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
        return self.wait()

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(10)
