"""gunicorn's worker class for the ``serve`` section: uvicorn's, with its access log off.

``UvicornWorker`` lives in the ``uvicorn-worker`` package since uvicorn 0.30
(``uvicorn.workers`` still has it, deprecated); this takes whichever imports.
gunicorn writes no access log unless asked to, but ``UvicornWorker`` leaves
uvicorn's ``access_log`` on, and uvicorn then formats a record per request that
no handler prints: turned off here, as ``--no-access-log`` does for the others.
"""

from __future__ import annotations

import warnings

try:
    from uvicorn_worker import UvicornWorker

    SOURCE = "uvicorn_worker.UvicornWorker"
except ImportError:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from uvicorn.workers import UvicornWorker
    SOURCE = "uvicorn.workers.UvicornWorker (deprecated)"


class QuietUvicornWorker(UvicornWorker):
    """``UvicornWorker`` (uvloop and httptools where installed), without an access log."""

    CONFIG_KWARGS = {**UvicornWorker.CONFIG_KWARGS, "access_log": False}
