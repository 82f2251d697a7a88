"""``python -m interpreters_aio check MODULE:APP``: can this app run in subinterpreters?

Imports the app in a fresh subinterpreter, in a child process (an extension
that crashes there takes only the child down), and prints:

* each C extension module that refused to load there, and the distribution it
  comes from: the ones the app could not do without (its import failed) and
  the ones it silently did without (a package that falls back to pure Python,
  such as websockets' or Falcon's speed-ups);
* the isolation ``serve --isolation auto`` would pick, and why.

Exit status: 0 when the app imports in a subinterpreter (``serve`` runs it in
interpreters), 1 otherwise (or when the app does not import at all), 2 for a
usage error.

The child imports the app in its main interpreter first, as ``serve`` does
(CPython 3.13.0 crashes when a subinterpreter is first to import some
extension modules), then in a subinterpreter with CPython's extension loader
watched, and reports back as JSON on its stdout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from .._cli import ArgumentParser
from .config import ConfigError, parse_app_path


def _distributions(modules: list[str]) -> dict[str, str]:
    """The installed distribution of each module's top-level package, where known."""
    from importlib.metadata import packages_distributions

    owners = packages_distributions()
    found = {}
    for name in modules:
        dists = owners.get(name.split(".")[0])
        if dists:
            found[name] = ", ".join(sorted(set(dists)))
    return found


def probe(app: str, app_dir: str) -> dict[str, Any]:
    """In the child: imports ``app`` here, then in a subinterpreter; returns the findings."""
    from interpreters_aio.serve import isolation
    from interpreters_aio.serve.preflight import interpreters_unsafe, probe_subinterpreter

    module, _ = parse_app_path(app)
    sys.path.insert(0, os.path.abspath(app_dir))
    report: dict[str, Any] = {"python": sys.version.split()[0]}
    report["free_threaded"] = isolation.free_threaded()
    try:
        __import__(module)
    except BaseException as exc:
        report["error"] = f"the app does not import: {type(exc).__name__}: {exc}"
        return report
    report["gil_enabled"] = isolation.gil_enabled()
    unsafe = interpreters_unsafe()
    if unsafe is not None:  # no subinterpreter: it would abort this process at exit
        choice = isolation.choose("auto", app, None, unsafe)
        report.update(refused=[], decisive=None, distributions={}, unsafe=unsafe,
                      isolation=choice.isolation.name, reason=choice.reason)
        return report
    refusals = probe_subinterpreter(module)
    decisive = refusals.decisive
    report["refused"] = refusals.refused
    report["decisive"] = decisive
    report["distributions"] = _distributions(refusals.refused)
    if refusals.failure is not None and decisive is None:
        report["error"] = f"the app does not import in a subinterpreter: {refusals.failure}"
        return report
    choice = isolation.choose("auto", app, decisive)
    report["isolation"] = choice.isolation.name
    report["reason"] = choice.reason
    return report


def _print_report(app: str, report: dict[str, Any]) -> int:
    build = "free-threaded" if report.get("free_threaded") else "default build"
    print(f"{app} on CPython {report.get('python', '?')} ({build})")
    if "error" in report:
        print(f"  {report['error']}")
        return 1
    refused = report["refused"]
    dists = report["distributions"]
    for name in refused:
        origin = f" (from {dists[name]})" if name in dists else ""
        if name == report["decisive"]:
            print(f"  refuses subinterpreters: {name}{origin}; the app cannot import without it")
        else:
            print(f"  refuses subinterpreters: {name}{origin}; the app falls back without it "
                  "(a slower pure-Python path, most likely)")
    if report.get("unsafe"):
        print("  not tried in a subinterpreter on this CPython")
    elif not refused:
        print("  every module it imports loads in a subinterpreter")
    print(f"  serve --isolation auto would use: {report['isolation']} ({report['reason']})")
    return 0 if report["isolation"] == "interpreters" else 1


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="python -m interpreters_aio check",
        description="Import an app in a fresh subinterpreter (in a child process) and say "
        "which modules refuse subinterpreters and which isolation serve would use. "
        "Exit 0 when the app runs in subinterpreters, 1 otherwise.",
    )
    parser.add_argument("app", metavar="MODULE:APP", help='the app, e.g. "main:app"')
    parser.add_argument("--app-dir", default=".", help="look for the app here (default: .)")
    args = parser.parse_args(argv)
    try:
        parse_app_path(args.app)
    except ConfigError as exc:
        parser.error(str(exc))
    child = subprocess.run(
        [sys.executable, "-c",
         "import json, sys; from interpreters_aio.serve.check import probe; "
         "print(json.dumps(probe(sys.argv[1], sys.argv[2])))", args.app, args.app_dir],
        capture_output=True, text=True,
    )
    lines = child.stdout.strip().splitlines()
    if child.returncode != 0 or not lines:
        how = (f"was killed by signal {-child.returncode}" if child.returncode < 0
               else f"exited with status {child.returncode}")
        print(f"{args.app}: importing it in a subinterpreter {how} (a C extension that "
              "crashes there?)", file=sys.stderr)
        if child.stderr:
            print(child.stderr.rstrip(), file=sys.stderr)
        return 1
    return _print_report(args.app, json.loads(lines[-1]))
