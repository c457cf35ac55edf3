"""``c``: the session's history as line charts (textual-plotext): pending jobs per queue,
and completions per second across queues (from the ``completed`` counters every worker
bumps). It redraws with each sample while open; esc or q closes it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual_plotext import PlotextPlot

from jobqueue.tui.model import History


class ChartScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    ChartScreen { align: center middle; }
    ChartScreen > Vertical { width: 95%; height: 95%; border: thick $accent; }
    ChartScreen PlotextPlot { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,c", "dismiss", "close")]

    def __init__(self, history: History) -> None:
        super().__init__()
        self.history = history

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "this session · esc closes"
            yield PlotextPlot(id="lengths")
            yield PlotextPlot(id="throughput")

    def on_mount(self) -> None:
        self.redraw()

    def redraw(self) -> None:
        """Both charts from the history as it is now."""
        seconds = self.history.seconds()
        pending = {label: list(values) for label, values in self.history.pending.items()}
        self._draw("#lengths", "pending jobs per queue", seconds, pending)
        rate = {"all queues": list(self.history.throughput)}
        self._draw("#throughput", "throughput: completed jobs per second", seconds, rate)

    def _draw(
        self, selector: str, title: str, seconds: list[float], series: Mapping[str, Sequence[float]]
    ) -> None:
        plot = self.query_one(selector, PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.title(title)
        plt.xlabel("seconds since the first sample")
        top = max((max(values) for values in series.values() if values), default=0)
        plt.ylim(0, max(1.0, top * 1.1))  # counts and rates: never below zero
        for label, values in series.items():
            plt.plot(seconds, values, label=label, marker="braille")
        plot.refresh()
