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

from edgepipe.checks import Check, verdict_of
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


def build_summary(con: Console, result, quiet: bool = False) -> None:
    """A short human summary of one build (``quiet``: only the verdict and failures)."""
    rep = result.report.to_dict()
    if not quiet:
        m = rep.get("model", {})
        con.print(f"[bold]edgepipe build[/] target [cyan]{rep['target']['name']}[/] "
                  f"({rep['quantization']['scheme']}, I/O {rep['quantization']['input_dtype']})")
        if m:
            con.print(f"  model  {m['keras_name']}: {m['params']:,} params -> {format_size(m['tflite_bytes'])} "
                      f".tflite, {sum(m['ops'].values())} ops ({', '.join(m['ops'])})")
        _source_line(con, ((rep.get("inputs") or {}).get("model") or {}).get("source"))
        _accuracy_line(con, rep.get("accuracy"))
        _latency_line(con, rep.get("latency", {}).get("host"))
        _estimate_line(con, rep.get("latency", {}).get("target"), rep.get("energy"))
        con.print(checks_table(result.report.checks))
        for name, path in result.artifacts.items():
            con.print(f"  wrote {path}")
        replayed = [k for k, v in rep.get("cache", {}).get("stages", {}).items() if v == "hit"]
        if replayed:
            con.print(f"  [dim]replayed from the cache: {', '.join(replayed)}[/]")
    verdict(con, result.report.checks)


def verify_summary(con: Console, result, quiet: bool = False) -> None:
    """A short human summary of one ``edgepipe verify``."""
    rep = result.report.to_dict()
    if not quiet:
        m = rep["model"]
        con.print(f"[bold]edgepipe verify[/] {m['path']} on target [cyan]{rep['target']['name']}[/]: "
                  f"{format_size(m['tflite_bytes'])}, {sum(m['ops'].values())} ops ({', '.join(m['ops'])})")
        _accuracy_line(con, rep.get("accuracy"))
        _latency_line(con, rep.get("latency", {}).get("host"))
        _estimate_line(con, rep.get("latency", {}).get("target"), rep.get("energy"))
        con.print(checks_table(result.report.checks))
        for note in rep["notes"]:
            con.print(f"  [yellow]note:[/] {note}")
    verdict(con, result.report.checks)


def inspect_summary(con: Console, res, quiet: bool = False) -> None:
    """Ops, I/O tensors and sizes of a .tflite, then which of the target's checks would fail."""
    if not quiet:
        m = res.model
        con.print(f"[bold]{m.path}[/]: {fmt_value(m.size, 'bytes')} ({fmt_value(m.weight_bytes, 'bytes')} weights), "
                  f"{len(m.all_operators)} ops, {len(m.tensors)} tensors, peak memory "
                  f"{fmt_value(res.memory.peak_bytes, 'bytes')}"
                  + (f" (state {fmt_value(res.memory.persistent_bytes, 'bytes')})" if res.memory.persistent_bytes
                     else ""))
        con.print("ops: " + ", ".join(f"{k}×{v}" for k, v in m.op_counts.items()))
        table = Table("io", "name", "shape", "dtype", "scale", "zero point")
        for role, ts, names in (("input", m.input_tensors, m.input_names), ("output", m.output_tensors,
                                                                           m.output_names)):
            for t, name in zip(ts, names):
                table.add_row(role, name if name == t.name else f"{name} ({t.name})", str(list(t.shape)), t.dtype,
                              f"{t.scale[0]:.6g}" if t.scale else "-", str(t.zero_point[0]) if t.zero_point else "-")
        con.print(table)
        if res.checks:
            con.print(checks_table(list(res.checks)))
    if res.target is not None:
        verdict(con, list(res.checks), f"on target {res.target.name}")


def multi_summary(con: Console, many, quiet: bool = False) -> None:
    """One row per target, then each failure; ``quiet`` keeps only the failing targets."""
    table = Table(title="targets")
    for col in ("target", "status", "flash", "ram", "top-1 int8", "failed checks", "output"):
        table.add_column(col, overflow="fold")
    for o in many.outcomes:
        if quiet and o.exit_code == 0:
            continue
        if o.error:
            table.add_row(o.target, _EXIT_STATUS[2], "-", "-", "-", "-", str(o.out_dir))
            continue
        checks = {c.name: c for c in o.result.report.checks}
        acc = o.result.report.sections.get("accuracy", {}).get("quantized", {}).get("top1")
        table.add_row(o.target, _EXIT_STATUS[o.exit_code], _measured(checks.get("flash")),
                      _measured(checks.get("ram")), "-" if acc is None else f"{acc:.2f}%",
                      ", ".join(c.name for c in o.result.report.failed_checks) or "-", str(o.out_dir))
    con.print(table)
    for o in many.outcomes:
        if o.error:
            con.print(f"  [red]✗[/] {o.target}: error: {o.error}")
        elif o.exit_code:
            for c in o.result.report.failed_checks:
                con.print(f"  [red]✗[/] {o.target} {c.name}: {c.detail}")
    counts = [sum(o.exit_code == code for o in many.outcomes) for code in (0, 1, 2)]
    con.print(f"{_EXIT_STATUS[many.exit_code]}: {counts[0]} passed, {counts[1]} failed, {counts[2]} stopped on "
              f"bad input: exit {many.exit_code}")


def verdict(con: Console, checks: list[Check], where: str = "") -> None:
    """PASSED, or FAILED with each failed check's detail."""
    failed = [c for c in checks if not c.passed]
    suffix = f" {where}" if where else ""
    if failed:
        con.print(f"[bold red]FAILED[/]{suffix} ({len(failed)} check{'s' if len(failed) > 1 else ''}): exit 1")
        for c in failed:
            con.print(f"  [red]✗[/] {c.name}: {c.detail}")
    elif verdict_of(checks) == "unverified":
        why = next(c.detail for c in checks if c.name == "accuracy")
        con.print(f"[bold yellow]UNVERIFIED[/]{suffix}: every measured check within budget, but accuracy was not "
                  f"measured ({why}): exit 0")
    else:
        con.print(f"[bold green]PASSED[/]{suffix}: every check within budget")


_EXIT_STATUS = {0: "[bold green]PASSED[/]", 1: "[bold red]FAILED[/]", 2: "[bold red]ERROR[/]", 3: "[bold red]ERROR[/]"}


def _measured(check: Check | None) -> str:
    return "-" if check is None else fmt_value(check.measured, check.unit)


def _source_line(con: Console, source: dict | None) -> None:
    """An ONNX or PyTorch model: how close the converted float model is to the source, and the layout change."""
    if not source:
        return
    cmp = source.get("comparison")
    if cmp:
        worst = max(cmp["outputs"].values(), key=lambda o: o["max_abs_error"] / o["tolerance"])
        line = (f"  source {cmp['framework']}: max abs error {worst['max_abs_error']:.2g} (tolerance "
                f"{worst['tolerance']:.2g}) on {cmp['samples']} samples")
    else:
        line = f"  source {source.get('reference')}: not compared (no data)"
    moved = [f"input {n!r} {i['source']}→{i['model']}" for n, i in source.get("inputs", {}).items()
             if i.get("transposed")]
    con.print(line + ("; " + ", ".join(moved) if moved else ""))


def _accuracy_line(con: Console, acc: dict | None) -> None:
    if not acc:
        return
    if "quantized" not in acc or len(acc.get("outputs", [])) > 1:
        for out in acc.get("outputs", []):
            _output_line(con, out, acc["samples"])
        return
    q = acc["quantized"]
    if acc["task"] == "classification" and "float" in acc:
        con.print(f"  top-1  float {acc['float']['top1']:.2f}%  quantized {q['top1']:.2f}%  "
                  f"agreement {acc['agreement']:.1f}%  SQNR {acc['output_error']['sqnr_db']:.1f} dB  "
                  f"({acc['samples']} samples)")
    elif acc["task"] == "classification":
        base = acc.get("baseline")
        against = f"  baseline {base['top1']:.2f}% ({base['source']})" if base else ""
        con.print(f"  top-1  {q['top1']:.2f}% on {acc['samples']} samples{against}")
    elif "float" in acc:
        con.print(f"  RMSE   float {acc['float']['rmse']:.4g}  quantized {q['rmse']:.4g}")
    else:
        con.print(f"  RMSE   {q['rmse']:.4g} on {acc['samples']} samples")


def _output_line(con: Console, out: dict, samples: int) -> None:
    """One output of a model judged per output: against its labels, else against the float model."""
    figures = []
    if "quantized" in out:
        key = "top1" if out["task"] == "classification" else "rmse"
        figures.append(f"{'top-1' if key == 'top1' else 'RMSE'} " + (
            f"float {out['float'][key]:.4g} " if "float" in out else "") + f"quantized {out['quantized'][key]:.4g}")
    if "agreement" in out:
        figures.append(f"agreement {out['agreement']:.1f}%")
    err = out.get("quantized_vs_float") or {}
    if err.get("samples"):
        figures.append(f"SQNR {err['sqnr_db']:.1f} dB, cosine {err['cosine_mean']:.4f}")
    label = "labelled" if out.get("labelled") else "no labels"
    con.print(f"  output {out['name']} ({out['task']}, {label}): {'; '.join(figures) or 'nothing to compare'} "
              f"({samples} samples)")


def _latency_line(con: Console, lat: dict | None) -> None:
    if lat:
        con.print(f"  latency {format_time(lat['median_s'])} median on this host ({lat['threads']} threads; "
                  "host-measured, not the device)")


def _estimate_line(con: Console, lat: dict | None, energy: dict | None) -> None:
    """The device estimate with its expected range: ``12.0 ms, expected 9.1–16.2 ms``; energy likewise."""
    if not lat or "low_s" not in lat:
        return
    from edgepipe.units import format_energy

    line = (f"  device {format_time(lat['seconds'])}, expected {format_time(lat['low_s'])}–"
            f"{format_time(lat['high_s'])} ({lat['source']})")
    if energy:
        line += (f"; energy {format_energy(energy['joules'])}, expected {format_energy(energy['low_j'])}–"
                 f"{format_energy(energy['high_j'])} at {energy['power_w'] * 1e3:.3g} mW ({energy['power_basis']})")
    con.print(line)


def fit_summary(con: Console, result, quiet: bool = False) -> None:
    """The candidates on the Pareto front, what shipped and its headroom, or the nearest miss and its misses."""
    doc = result.doc
    if not quiet:
        con.print(f"[bold]edgepipe fit[/] target [cyan]{result.target}[/]: {len(doc['trials'])} candidates "
                  f"({doc['resumed_trials']} resumed) in {doc['seconds']:.0f} s on {doc['executor'].get('kind')}")
        con.print(_fit_table(doc))
    pick = doc["shipped"] or doc["nearest_miss"]
    if pick is not None:
        word = "ships" if doc["shipped"] else "nearest miss"
        damage = "-" if pick["damage"] is None else f"{100 * pick['damage']:.0f}%"
        con.print(f"  {word}: candidate {pick['trial']} ({pick['label']}), accuracy tolerance used {damage}")
        for h in pick["headroom"]:
            con.print(f"    {h['check']}: {fmt_value(h['measured'], h['unit'])} of {fmt_value(h['budget'], h['unit'])}"
                      f" ({h['left_percent']:+.1f}% left)")
    lean = [f"{name} {fmt_value(_used(pick, name), _unit(pick, name))} (candidate {pick['trial']})"
            for name, pick in (doc.get("leanest") or {}).items()]
    if lean and not quiet:
        con.print("  leanest within the tolerance: " + ", ".join(lean))
    for miss in doc.get("misses", []):
        if "over_by_percent" in miss:
            con.print(f"  [red]✗[/] {miss['check']}: {fmt_value(miss['measured'], miss['unit'])} is "
                      f"{miss['over_by_percent']:.1f}% over the budget {fmt_value(miss['budget'], miss['unit'])}")
        elif "tolerance_used_percent" in miss:
            con.print(f"  [red]✗[/] accuracy: uses {miss['tolerance_used_percent']:.0f}% of the tolerance")
        else:
            con.print(f"  [red]✗[/] {miss['check']} fails")
    con.print(f"  wrote {result.out_dir}/ (fit.json, {doc.get('plot') or 'no plot'})")
    status = "PASSED" if result.passed else "FAILED"
    colour = "green" if result.passed else "red"
    con.print(f"[bold {colour}]{status}[/]: exit {result.exit_code}")


def _fit_table(doc: dict) -> Table:
    """One row per candidate on the Pareto front (damage and each budget's use)."""
    trials = {t["number"]: t for t in doc["trials"]}
    budgets = [b["name"] for b in (trials[doc["pareto"][0]]["score"]["budgets"] if doc["pareto"] else [])]
    table = Table(title="Pareto front (use: share of the budget; damage: share of the accuracy tolerance)")
    for col in ("#", "candidate", "damage", *budgets, "passes"):
        table.add_column(col)
    for n in doc["pareto"]:
        s = trials[n]["score"]
        uses = {b["name"]: f"{100 * b['use']:.0f}%" for b in s["budgets"]}
        damage = "-" if s["damage"] is None else f"{100 * s['damage']:.0f}%"
        table.add_row(str(n), trials[n]["label"], damage, *(uses.get(b, "-") for b in budgets),
                      "yes" if s["feasible"] else "no")
    return table


def _used(summary: dict, name: str):
    return next(h["measured"] for h in summary["headroom"] if h["check"] == name)


def _unit(summary: dict, name: str) -> str:
    return next(h["unit"] for h in summary["headroom"] if h["check"] == name)
