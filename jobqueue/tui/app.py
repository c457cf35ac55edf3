"""The App: it samples the queues every ``refresh`` on a worker thread (``model.Source``),
keeps the session's history for the charts, and hands each sample, or each failure, to the
main screen. Redis going away never ends it: the last figures stay, marked stale, the
status line says since when, and the next good sample brings everything back."""

from __future__ import annotations

import time
from collections.abc import Callable

from textual import work
from textual.app import App

from jobqueue.config import Settings
from jobqueue.errors import JobQueueError
from jobqueue.tui.main import MainScreen
from jobqueue.tui.model import History, Sample, Source
from jobqueue.tui.screens.chart import ChartScreen


class JobqueueApp(App[None]):
    TITLE = "jobqueue"
    ENABLE_COMMAND_PALETTE = False  # every action has its key; the footer needs the room

    def __init__(
        self,
        settings: Settings,
        refresh: float = 2.0,
        dev: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.refresh_every = refresh
        self.dev = dev  # purge-all allowed (the CLI's --dev); the confirm stands for --yes
        self.clock = clock
        self.source = Source(settings, clock)
        self.history = History()
        self.sample: Sample | None = None
        self.error = ""
        self.main = MainScreen()
        self._sampling = False

    async def on_mount(self) -> None:
        await self.push_screen(self.main)  # mounted before the first sample comes back
        self.set_interval(self.refresh_every, self.sample_now, name="sample")
        self.sample_now()

    def on_unmount(self) -> None:
        self.source.close()

    def sample_now(self) -> None:
        """Take a sample now, unless one is under way (a slow Redis never stacks them)."""
        if not self._sampling:
            self._sampling = True
            self._sample()

    @work(thread=True, exit_on_error=False, group="sample")
    def _sample(self) -> None:
        try:
            sample = self.source.sample()
        except JobQueueError as exc:
            self.call_from_thread(self._failed, str(exc))
            return
        self.call_from_thread(self._apply, sample)

    def _apply(self, sample: Sample) -> None:
        self._sampling = False
        self.sample, self.error = sample, ""
        self.history.add(sample)
        self.main.show_sample()
        if isinstance(self.screen, ChartScreen):
            self.screen.redraw()

    def _failed(self, error: str) -> None:
        self._sampling = False
        self.error = error
        self.main.show_failure()
