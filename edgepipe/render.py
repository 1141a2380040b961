"""Terminal rendering of results (the CLI's job; the library never prints).

Colour follows rich's rules, which honour NO_COLOR; progress bars are drawn
on stderr only when stderr is a terminal, so logs from CI stay clean.
"""

from __future__ import annotations

from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichBar
from rich.table import Table

from edgepipe.checks import Check
from edgepipe.pipeline.progress import Progress
from edgepipe.units import format_size, format_time

_STATUS = {"pass": "[green]pass[/]", "fail": "[bold red]FAIL[/]", "skip": "[dim]skip[/]"}


def console(err: bool = False) -> Console:
    """A console; when output is piped, lines are not squeezed to 80 columns."""
    con = Console(stderr=err, highlight=False, soft_wrap=False)
    if not con.is_terminal:
        con = Console(stderr=err, highlight=False, soft_wrap=False, width=160)
    return con


class TerminalProgress(Progress):
    """Stage names and bars on stderr, only when it is a terminal."""

    def __init__(self, quiet: bool = False):
        self.con = console(err=True)
        self.live = self.con.is_terminal and not quiet

    def stage(self, name: str) -> None:
        if self.live:
            self.con.print(f"[dim]▸ {name}[/]")

    def note(self, message: str) -> None:
        if self.live:
            self.con.print(f"[yellow]note:[/] {message}")

    @contextmanager
    def task(self, description: str, total: int):
        if not self.live or total <= 0:
            yield lambda done: None
            return
        cols = (TextColumn("  {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with RichBar(*cols, console=self.con, transient=True) as bar:
            tid = bar.add_task(description, total=total)
            yield lambda done: bar.update(tid, completed=done)


def fmt_value(value, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "bytes":
        return format_size(value)
    if unit == "s":
        return format_time(value)
    if isinstance(value, float):
        return f"{value:.2f} {unit}".strip()
    return f"{value} {unit}".strip()


def checks_table(checks: list[Check]) -> Table:
    table = Table(title="checks", show_lines=False)
    for col in ("check", "status", "measured", "budget", "source"):
        table.add_column(col)
    for c in checks:
        table.add_row(c.name, _STATUS[c.status], fmt_value(c.measured, c.unit),
                      fmt_value(c.budget, c.unit), c.source or "")
    return table


def build_summary(con: Console, result) -> None:
    """A short human summary of one build."""
    rep = result.report.to_dict()
    m = rep.get("model", {})
    con.print(f"[bold]edgepipe build[/] target [cyan]{rep['target']['name']}[/] "
              f"({rep['quantization']['scheme']}, I/O {rep['quantization']['input_dtype']})")
    if m:
        con.print(f"  model  {m['keras_name']}: {m['params']:,} params -> {format_size(m['tflite_bytes'])} .tflite, "
                  f"{sum(m['ops'].values())} ops ({', '.join(m['ops'])})")
    acc = rep.get("accuracy")
    if acc and acc["task"] == "classification":
        con.print(f"  top-1  float {acc['float']['top1']:.2f}%  quantized {acc['quantized']['top1']:.2f}%  "
                  f"agreement {acc['agreement']:.1f}%  SQNR {acc['output_error']['sqnr_db']:.1f} dB  "
                  f"({acc['samples']} samples)")
    elif acc:
        con.print(f"  RMSE   float {acc['float']['rmse']:.4g}  quantized {acc['quantized']['rmse']:.4g}")
    lat = rep.get("latency", {}).get("host")
    if lat:
        con.print(f"  latency {format_time(lat['median_s'])} median on this host ({lat['threads']} threads; "
                  "host-measured, not the device)")
    con.print(checks_table(result.report.checks))
    for name, path in result.artifacts.items():
        con.print(f"  wrote {path}")
    failed = result.report.failed_checks
    if failed:
        con.print(f"[bold red]FAILED[/] ({len(failed)} check{'s' if len(failed) > 1 else ''}): exit 1")
        for c in failed:
            con.print(f"  [red]✗[/] {c.name}: {c.detail}")
    else:
        con.print("[bold green]PASSED[/]: every check within budget")
