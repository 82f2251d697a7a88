"""``serve --reload``: watch the source folders and roll the workers over on a change.

The watcher runs in the supervisor only (the main interpreter), on a thread
of its own; workers never import this module. When a watched file changes,
it calls back into the supervisor's event loop, which does what SIGHUP does:
a rolling restart, one worker at a time, that keeps the old workers serving
when the new code does not import.

Options and defaults are uvicorn's (``Config.__init__``,
``supervisors/watchfilesreload.py``): the folders are ``--reload-dir``
(default: the current directory); a file counts if it matches an
``--reload-include`` pattern (default ``*.py``) and no ``--reload-exclude``
pattern (default ``.*``, ``.py[cod]``, ``.sw.*``, ``~*``); a pattern that
names an existing folder adds it to (include) or takes it out of (exclude)
the watched folders. Two differences: the polling watcher honours the same
patterns (uvicorn's ignores them), and virtual environments, ``site-packages``,
``__pycache__``, ``node_modules`` and version-control folders below a watched
folder are not watched at all (uvicorn with watchfiles watches them and
filters their events).

``watchfiles`` is used when it can be imported (the ``serve`` extra
installs it); otherwise, or with ``INTERPRETERS_AIO_RELOAD_POLLING=1`` in the
environment, the folders are scanned every ``--reload-delay`` seconds.
Either way a burst of changes gives one restart: the restart waits until no
watched file has changed for ``--reload-delay`` seconds (default 0.25), or
for :data:`BURST_LIMIT` seconds at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

logger = logging.getLogger("interpreters_aio.serve")

DEFAULT_INCLUDES = ("*.py",)
DEFAULT_EXCLUDES = (".*", ".py[cod]", ".sw.*", "~*")

#: Folders never descended into below a watched folder (watchfiles' default
#: ignored folders, and where packages are installed). A folder holding a
#: ``pyvenv.cfg`` (a virtual environment of any name) is not watched either.
PRUNED = frozenset({
    "__pycache__", ".git", ".hg", ".svn", ".tox", ".nox", ".venv", ".idea", "node_modules",
    ".mypy_cache", ".pytest_cache", ".ruff_cache", ".hypothesis", "site-packages",
    "dist-packages",
})

#: Set to 1 to use the polling watcher even when watchfiles is installed.
POLLING_ENV = "INTERPRETERS_AIO_RELOAD_POLLING"

#: A change keeps the restart waiting for ``--reload-delay`` of quiet, but no
#: longer than this many seconds after the first change of the burst.
BURST_LIMIT = 5.0


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


def _prefixes() -> frozenset[str]:
    """Python's own installation folders: never watched below a reload folder."""
    return frozenset(os.path.realpath(p) for p in {sys.prefix, sys.exec_prefix, sys.base_prefix})


def pruned(path: str, name: str, excluded: frozenset[str] = frozenset()) -> bool:
    """Whether the folder ``path`` (called ``name``) is left out below a watched folder."""
    return (
        name in PRUNED
        or path in excluded
        or os.path.exists(os.path.join(path, "pyvenv.cfg"))
        or path in _PREFIXES
    )


_PREFIXES = _prefixes()


class FileFilter:
    """uvicorn's ``FileFilter``: does a change to this file trigger a reload?"""

    def __init__(self, includes: Sequence[str] = (), excludes: Sequence[str] = (),
                 exclude_dirs: Iterable[Path] = (), cwd: Path | None = None) -> None:
        cwd = Path.cwd() if cwd is None else cwd
        self.includes = list(dict.fromkeys(
            [p for p in DEFAULT_INCLUDES if p not in excludes] + list(includes)))
        self.excludes = list(dict.fromkeys(
            [p for p in DEFAULT_EXCLUDES if p not in includes]
            + [p for p in excludes if not _is_dir(cwd / p)]))
        self.exclude_dirs = list(exclude_dirs)
        self._cache: dict[str, bool] = {}

    def __call__(self, path: str | Path) -> bool:
        key = str(path)
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) > 100_000:
                self._cache.clear()
            found = self._cache[key] = self._match(Path(path))
        return found

    def _match(self, path: Path) -> bool:
        for include in self.includes:
            if path.match(include):
                if str(path).endswith(include):
                    return True  # a file named outright
                if any(d in path.parents for d in self.exclude_dirs):
                    return False
                return not any(path.match(exclude) for exclude in self.excludes)
        return False


@dataclasses.dataclass(frozen=True)
class Plan:
    """What to watch: resolved folders, the file filter, and what to warn about."""

    dirs: tuple[Path, ...]
    filter: FileFilter
    excluded: frozenset[str]
    warnings: tuple[str, ...] = ()


def _pattern_dirs(patterns: Sequence[str], cwd: Path) -> list[Path]:
    """uvicorn's ``resolve_reload_patterns``: the folders a pattern names or globs to."""
    found: list[Path] = []
    for pattern in patterns:
        if pattern == ".*":
            continue  # would only match hidden folders
        if _is_dir(cwd / pattern):
            found.append(cwd / pattern)
            continue
        with contextlib.suppress(ValueError, NotImplementedError, OSError):
            found.extend(m for m in cwd.glob(pattern) if _is_dir(m))
    return found


def _outermost(dirs: Iterable[Path]) -> list[Path]:
    kept: list[Path] = []
    for d in sorted(set(dirs), key=lambda p: len(p.parts)):
        if not any(k == d or k in d.parents for k in kept):
            kept.append(d)
    return kept


def plan(dirs: Sequence[str] = (), includes: Sequence[str] = (), excludes: Sequence[str] = (),
         cwd: Path | None = None) -> Plan:
    """Resolves the ``--reload-*`` options the way uvicorn's Config does."""
    cwd = Path.cwd() if cwd is None else cwd
    warnings: list[str] = []
    given = [(cwd / d).resolve() for d in dirs]
    valid = [d for d in given if _is_dir(d)]
    for d, raw in zip(given, dirs, strict=True):
        if d not in valid:
            warnings.append(f"--reload-dir {raw!r} is not a directory: not watched")
    # A folder named by an include pattern is watched too, unless it is where
    # packages live (a pattern such as "*" globs the venv as well).
    extra = [d.resolve() for d in _pattern_dirs(includes, cwd)]
    valid += [d for d in extra if not pruned(str(d), d.name)]
    excluded = [d.resolve() for d in _pattern_dirs(excludes, cwd)]
    valid = [d for d in valid if not any(x == d or x in d.parents for x in excluded)]
    if not valid:
        if dirs:
            warnings.append(f"--reload-dir {', '.join(map(repr, dirs))}: no directory left to "
                            "watch, watching the current directory")
        valid = [cwd.resolve()]
    return Plan(
        dirs=tuple(_outermost(valid)),
        filter=FileFilter(includes, excludes, excluded, cwd),
        excluded=frozenset(map(str, excluded)),
        warnings=tuple(warnings),
    )


def _walk(plan: Plan) -> Iterator[tuple[str, list[os.DirEntry[str]]]]:
    """Each watched folder (pruned) with its file entries."""
    stack = [str(d) for d in plan.dirs]
    seen: set[str] = set()
    while stack:
        folder = stack.pop()
        if folder in seen:
            continue
        seen.add(folder)
        files = []
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            if not pruned(entry.path, entry.name, plan.excluded):
                                stack.append(entry.path)
                        else:
                            files.append(entry)
                    except OSError:
                        continue
        except OSError:
            continue
        yield folder, files


Stamp = tuple[int, int, int]


def _snapshot(plan: Plan) -> dict[str, Stamp]:
    stamps: dict[str, Stamp] = {}
    for _, files in _walk(plan):
        for entry in files:
            if plan.filter(entry.path):
                try:
                    st = entry.stat()
                except OSError:
                    continue
                stamps[entry.path] = (st.st_mtime_ns, st.st_size, st.st_ino)
    return stamps


def _diff(old: dict[str, Stamp], new: dict[str, Stamp]) -> set[str]:
    changed = {path for path, stamp in new.items() if old.get(path) != stamp}
    changed.update(old.keys() - new.keys())
    return changed


def watchfiles_available() -> bool:
    """Whether :class:`Watcher` will use watchfiles (installed, and polling not forced)."""
    if os.environ.get(POLLING_ENV, "") not in ("", "0"):
        return False
    try:
        import watchfiles  # noqa: F401
    except ImportError:
        return False
    return True


class Watcher:
    """A thread that watches ``plan``'s folders and calls ``on_change(paths)`` in ``loop``.

    ``on_ready(backend)`` is called (in the loop) once watching has begun,
    ``on_error(message)`` if the watcher fails (watchfiles then gives way to
    polling). :meth:`stop` ends the thread and waits for it.
    """

    def __init__(
        self,
        plan: Plan,
        delay: float,
        loop: asyncio.AbstractEventLoop,
        on_change: Callable[[list[str]], None],
        *,
        on_ready: Callable[[str], None] | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.plan = plan
        self.delay = max(delay, 0.0)
        self.backend = "watchfiles" if watchfiles_available() else "polling"
        self._loop = loop
        self._on_change = on_change
        self._on_ready = on_ready
        self._on_error = on_error
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Starts watching, on a daemon thread."""
        self._thread = threading.Thread(
            target=self._run, name="interpreters-aio reload watcher", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stops the thread; returns whether it ended within ``timeout`` seconds."""
        self._stop.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # --- in the thread -----------------------------------------------------

    def _call(self, callback: Callable[..., None] | None, *args: object) -> None:
        if callback is not None and not self._stop.is_set():
            with contextlib.suppress(RuntimeError):  # the loop is closed
                self._loop.call_soon_threadsafe(callback, *args)

    def _run(self) -> None:
        try:
            batches = self._watchfiles() if self.backend == "watchfiles" else self._polling()
            self._coalesce(batches)
        except Exception as exc:  # never let the thread die with a traceback on stderr
            self._call(self._on_error, f"the reload watcher stopped: {type(exc).__name__}: {exc}")

    def _coalesce(self, batches: Iterator[set[str]]) -> None:
        """Turns batches of changed paths (an empty one at least every ``delay``
        seconds while nothing changes) into one callback per burst."""
        pending: set[str] = set()
        first = last = 0.0
        for batch in batches:
            if self._stop.is_set():
                return
            now = time.monotonic()
            if batch:
                if not pending:
                    first = now
                pending |= batch
                last = now
            if pending and (now - last >= self.delay or now - first >= max(BURST_LIMIT,
                                                                             4 * self.delay)):
                self._call(self._on_change, sorted(pending))
                pending = set()

    def _polling(self) -> Iterator[set[str]]:
        interval = max(self.delay, 0.05)
        stamps = _snapshot(self.plan)
        self._call(self._on_ready, f"polling every {interval:g} s")
        while not self._stop.wait(interval):
            new = _snapshot(self.plan)
            yield _diff(stamps, new)
            stamps = new

    def _watchfiles(self) -> Iterator[set[str]]:
        import watchfiles

        # watchfiles says "1 change detected" at INFO for each batch: not ours to print.
        wf_logger = logging.getLogger("watchfiles")
        if wf_logger.level == logging.NOTSET:
            wf_logger.setLevel(logging.WARNING)
        timeout_ms = max(50, round(self.delay * 1000))
        announced = False
        while not self._stop.is_set():
            # Each folder is watched on its own, not recursively, so that pruned
            # folders (a venv below the project) are not watched at all; a new
            # folder restarts the watch with it included.
            folders = [folder for folder, _ in _walk(self.plan)]
            try:
                changes = watchfiles.watch(
                    *folders, watch_filter=None, debounce=1600, step=50,
                    stop_event=self._stop, rust_timeout=timeout_ms, yield_on_timeout=True,
                    debug=False, raise_interrupt=False, recursive=False,
                    ignore_permission_denied=True,
                )
                with contextlib.closing(changes):
                    for raw in changes:
                        if not announced:
                            # The first (empty, timed-out) batch: the watch is set up.
                            announced = True
                            self._call(self._on_ready, "watchfiles")
                        batch, added = self._relevant(raw)
                        yield batch
                        if added:
                            break  # watch again, with the new folders
                    else:
                        return  # stopped
            except Exception as exc:  # the watch limit, a folder gone while set up...
                if self._stop.is_set():
                    return
                self._call(self._on_error, f"watchfiles failed ({type(exc).__name__}: {exc}); "
                           "polling instead")
                yield from self._polling()
                return

    def _relevant(self, raw: set[tuple[object, str]]) -> tuple[set[str], bool]:
        import watchfiles

        batch: set[str] = set()
        added = False
        for change, path in raw:
            if change == watchfiles.Change.added and _is_dir(Path(path)):
                if pruned(path, os.path.basename(path), self.plan.excluded):
                    continue
                added = True
                # Its files may have been written before the new watch is set up.
                sub = dataclasses.replace(self.plan, dirs=(Path(path),))
                batch.update(_snapshot(sub))
            elif self.plan.filter(path):
                batch.add(path)
        return batch, added


def display(paths: Sequence[str], cwd: Path | None = None, limit: int = 5) -> str:
    """uvicorn's ``_display_path`` for a few paths: relative to ``cwd`` where possible."""
    cwd = Path.cwd() if cwd is None else cwd
    shown = []
    for raw in paths[:limit]:
        path = Path(raw)
        try:
            shown.append(f"'{path.relative_to(cwd)}'")
        except ValueError:
            shown.append(f"'{path}'")
    if len(paths) > limit:
        shown.append(f"and {len(paths) - limit} more")
    return ", ".join(shown)
