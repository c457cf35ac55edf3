"""``jobqueue tui``: the interactive terminal UI (Textual), a thin face over jobqueue.admin.

Every figure it shows comes from the functions the CLI's ``admin`` commands call
(``admin.commands``, ``admin.repairs``, ``admin.bench``), so the TUI, the CLI and ``--json``
never disagree. Layout, in posting's manner: ``app.py`` (the App: sampling and status),
``main.py`` (the tabs and their keys), one modal per file under ``screens/``, widgets under
``widgets/``, and ``model.py``/``rows.py`` (plain data, no Textual) between them and the
admin layer. Textual is the ``tui`` extra; nothing below this package imports it.
"""

from __future__ import annotations

from jobqueue.config import Settings
from jobqueue.errors import OperationalError

EXTRA_MISSING = "jobqueue tui needs the tui extra: pip install 'jobqueue[tui]'"


def run(settings: Settings, refresh: float, dev: bool) -> None:
    """Run the TUI until the operator quits; one line (exit 1) when the extra is missing."""
    try:
        from jobqueue.tui.app import JobqueueApp  # noqa: PLC0415 - the optional extra
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] in ("textual", "textual_plotext"):
            raise OperationalError(EXTRA_MISSING) from None
        raise
    JobqueueApp(settings, refresh=refresh, dev=dev).run()
