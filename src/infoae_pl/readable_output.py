"""Lightning's progress bar and results table as they should read (added to every trainer of the CLI).

* A rich training bar bounded by steps (``max_epochs=-1``) is titled ``Epoch N``, not ``Epoch N/-2``.
* ``infoae validate``/``test`` print their metrics in a table whose names are plain text, in place of
  Lightning's table, which parses them as rich markup (``test/E_q[log p(x|z)]`` would read ``test/E_q``).
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import RichProgressBar
from rich import get_console
from rich.table import Table
from rich.text import Text


class ReadableOutput(Callback):
    """Retitles a steps-bounded rich training bar and prints the validate/test table with plain-text names."""

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        bar = trainer.progress_bar_callback  # runs after the bar's own hook, which set the title
        if (isinstance(bar, RichProgressBar) and trainer.max_epochs == -1 and bar.progress is not None
                and bar.train_progress_bar_id is not None):
            bar.progress.update(bar.train_progress_bar_id, description=f"Epoch {trainer.current_epoch}")

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.state.fn == "validate":  # not the validations during fit, which print no table
            _print_instead(trainer, trainer.validate_loop, "Validate")

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        _print_instead(trainer, trainer.test_loop, "Test")


def _print_instead(trainer: Trainer, loop: Any, stage: str) -> None:
    """Print the stage's metrics (the run's ``callback_metrics``) and stop Lightning printing its table,
    which it does after this hook when the loop is ``verbose``."""
    if not loop.verbose or not trainer.is_global_zero:
        return
    loop.verbose = False
    print_metrics_table(stage, dict(trainer.callback_metrics))


def print_metrics_table(stage: str, metrics: dict[str, Any]) -> None:
    """A two-column table of metric names (plain text, never markup) and values, sorted by name."""
    if not metrics:
        return
    table = Table(f"{stage} metric", "Value")
    for name in sorted(metrics):
        value = metrics[name]
        if hasattr(value, "numel") and value.numel() == 1:
            value = value.item()
        table.add_row(Text(name, style="cyan"), Text(str(value), style="magenta"))
    get_console().print(table)


__all__ = ["ReadableOutput", "print_metrics_table"]
