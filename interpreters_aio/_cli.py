"""What every ``python -m interpreters_aio`` command's parser shares.

An :class:`argparse.ArgumentParser` that names the near match of a misspelled
option or choice, with difflib, in one message on every Python we support
(3.14's ``suggest_on_error`` does choices only, words them differently and is
on by default from 3.15), and that takes option names whole: no unique
prefixes (``--worker`` for ``--workers``), as uvicorn (click) does, so an
option added later cannot turn a working command line into an ambiguous one.
Cheap to import: the top-level help and ``--version`` load nothing else.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from . import __version__

VERSION = f"interpreters-aio {__version__} (Python {sys.version.split()[0]})"
#: How help and errors name the command: as it was typed, the console script
#: ``interpreters-aio`` or ``python -m interpreters_aio``.
_SCRIPT = "interpreters-aio"
PROG = _SCRIPT if os.path.basename(sys.argv[0] if sys.argv else "") == _SCRIPT else (
    "python -m interpreters_aio")


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """``" (did you mean 'serve'?)"`` for the closest candidate, or ``""``."""
    close = difflib.get_close_matches(word, list(candidates), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with "did you mean" for a misspelled option or choice."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        if sys.version_info >= (3, 14):
            kwargs.setdefault("suggest_on_error", False)  # ours, below, on every version
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args: Sequence[str] | None = None,
                         namespace: Any = None) -> tuple[Any, list[str]]:
        self._check_options(sys.argv[1:] if args is None else list(args))
        return super().parse_known_args(args, namespace)

    def _check_options(self, args: list[str]) -> None:
        """Stops at the first option this parser does not have, naming the near one."""
        known = self._option_string_actions
        for arg in args:
            if arg == "--":
                return
            if not arg.startswith("-") or arg == "-" or self._negative_number_matcher.match(arg):
                continue
            name = arg.split("=", 1)[0] if arg.startswith("--") else arg
            if name in known or (not arg.startswith("--") and arg[:2] in known):
                continue  # a long option, or a short one with its value or others attached
            long_options = [o for o in known if o.startswith("--")]
            self.error(f"unrecognized option {name!r}{did_you_mean(name, long_options)}")

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        choices = action.choices
        if choices is None or value in choices:
            return
        names = [str(choice) for choice in choices]
        hint = did_you_mean(value, names) if isinstance(value, str) else ""
        raise argparse.ArgumentError(
            action, f"invalid choice {str(value)!r}{hint}; choose from {', '.join(names)}")
