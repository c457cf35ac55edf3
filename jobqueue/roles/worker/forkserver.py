"""The fork server worker processes start from.

Worker processes are forked from a multiprocessing fork server, not from the supervisor: a
fork of a process whose threads may hold locks (the supervisor runs several) can deadlock the
child, and spawning a fresh interpreter per process costs the imports every time. The server
is started once per supervisor process, as early as possible (``run_role`` does it before
importing the roles), and preloads the worker modules while the supervisor imports its own:
a new worker process then starts in milliseconds.

Its environment carries a folder for prometheus-client's multiprocess mode, which the client
reads when it is first imported: every worker process records its series there, and the
supervisor serves them all (observe/metrics.py). This module imports only the standard
library, so that the server can start before anything heavy is imported.
"""

from __future__ import annotations

import atexit
import multiprocessing
import multiprocessing.forkserver
import os
import shutil
import tempfile
from multiprocessing.context import ForkServerContext

PRELOAD = ["jobqueue.roles.worker.preload"]  # the worker modules; dies with its parent
_metrics_dir: str | None = None


def worker_context() -> tuple[ForkServerContext, str]:
    """The fork server's context (started on first call) and the worker metrics folder."""
    global _metrics_dir  # noqa: PLW0603 - one fork server per process, so one folder
    context = multiprocessing.get_context("forkserver")
    if _metrics_dir is None:
        _metrics_dir = tempfile.mkdtemp(prefix="jobqueue-metrics-")
        atexit.register(shutil.rmtree, _metrics_dir, True)
        context.set_forkserver_preload(PRELOAD)
        previous = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir
        try:
            multiprocessing.forkserver.ensure_running()
        finally:
            if previous is None:
                del os.environ["PROMETHEUS_MULTIPROC_DIR"]
            else:
                os.environ["PROMETHEUS_MULTIPROC_DIR"] = previous
    return context, _metrics_dir
