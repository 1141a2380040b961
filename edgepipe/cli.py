"""The ``edgepipe`` command: a thin click layer over :mod:`edgepipe.api`.

Exit codes: 0 every check passed; 1 a budget or accuracy check failed
(artifacts and report still written, marked failed); 2 bad usage or input.
Nothing here imports TensorFlow at import time: ``--help``, ``targets``
and ``inspect`` start in a fraction of a second.
"""

from __future__ import annotations

import json
import sys

import click

from edgepipe import __version__
from edgepipe.errors import EXIT_USAGE, EdgepipeError


class _Group(click.Group):
    """Catches edgepipe's error root once: one line on stderr, exit 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except EdgepipeError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgepipe")
def cli() -> None:
    """Compile a trained Keras model into a verified artifact for a device.

    \b
    Exit codes: 0 all checks passed, 1 a budget or accuracy check failed,
    2 bad usage or input.
    """


def _echo_json(doc) -> None:
    click.echo(json.dumps(doc, indent=2, default=str))


@cli.group(cls=_Group)
def targets() -> None:
    """List and show target profiles (built-in, ./targets/, or a YAML path)."""


@targets.command("list")
@click.option("--targets-dir", type=click.Path(file_okay=False), help="Extra folder of profiles.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def targets_list(targets_dir, as_json) -> None:
    """List the known target profiles."""
    from edgepipe.api import registry
    from edgepipe.render import console
    from rich.table import Table

    reg = registry(targets_dir)
    rows = []
    for name in reg.names():
        p = reg.get(name).profile
        rows.append({"name": name, "runtime": p.runtime.value, "int8_only": p.accelerator.int8_only,
                     "flash": p.memory.flash, "ram": p.memory.ram, "latency": p.latency,
                     "description": p.description, "path": str(reg.path(name))})
    if as_json:
        return _echo_json(rows)
    from edgepipe.render import fmt_value

    table = Table()
    for col in ("target", "runtime", "int8-only", "flash", "ram", "latency"):
        table.add_column(col, no_wrap=True)
    table.add_column("description", no_wrap=True, overflow="ellipsis", max_width=60)
    for r in rows:
        table.add_row(r["name"], r["runtime"], "yes" if r["int8_only"] else "no", fmt_value(r["flash"], "bytes"),
                      fmt_value(r["ram"], "bytes"), fmt_value(r["latency"], "s"), r["description"])
    console().print(table)


@targets.command("show")
@click.argument("name")
@click.option("--targets-dir", type=click.Path(file_okay=False), help="Extra folder of profiles.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def targets_show(name, targets_dir, as_json) -> None:
    """Show a resolved profile; inherited values are marked with their source."""
    from edgepipe.api import registry
    from edgepipe.render import console

    resolved = registry(targets_dir).get(name)
    data = resolved.profile.to_dict()
    if as_json:
        return _echo_json({"profile": data, "origin": resolved.origin, "chain": list(resolved.chain)})
    con = console()
    con.print(f"[bold]{resolved.name}[/]  ({resolved.path})")
    if len(resolved.chain) > 1:
        con.print(f"extends: {' -> '.join(resolved.chain)}")
    for line in _flatten(data):
        key, value = line
        who = resolved.origin.get(key)
        mark = "" if who == resolved.chain[0] else (f"  [dim](inherited from {who})[/]" if who else "  [dim](default)[/]")
        con.print(f"  {key}: {_human(key, value)}{mark}", soft_wrap=True)


def _human(key: str, value) -> str:
    """Sizes, times and clocks as a person writes them."""
    from edgepipe.render import fmt_value

    if value is None:
        return "-"
    if key.startswith("memory.") or key.endswith("arena_margin"):
        return fmt_value(value, "bytes")
    if key in ("latency", "cost_model.per_op_overhead"):
        return fmt_value(value, "s")
    if key == "device.clock":
        return f"{value / 1e6:g} MHz"
    return str(value)


def _flatten(d: dict, prefix: str = ""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flatten(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


@cli.command()
@click.option("-t", "--target", required=True, help="Target profile name or path to a YAML profile.")
@click.option("-c", "--config", type=click.Path(dir_okay=False), help="Project config (default ./edgepipe.yaml).")
@click.option("--example", help="Build a bundled example instead (e.g. 'digits').")
@click.option("--model", help="Model file (.keras, .h5) or SavedModel folder.")
@click.option("--rep-data", help="Representative data source (file.npz, folder, module:function).")
@click.option("--eval-data", help="Eval data source with labels.")
@click.option("--train-data", help="Training data source (for fine-tuning).")
@click.option("--task", type=click.Choice(["classification", "regression"]))
@click.option("--scale", type=float, help="Preprocess: multiply inputs by this.")
@click.option("--mean", type=float, help="Preprocess: subtract this after scaling.")
@click.option("--std", type=float, help="Preprocess: divide by this after subtracting the mean.")
@click.option("-o", "--out", type=click.Path(file_okay=False), help="Output folder (default <output>/<target>).")
@click.option("--targets-dir", type=click.Path(file_okay=False), help="Extra folder of profiles.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON document.")
@click.option("-q", "--quiet", is_flag=True, help="Print only failures.")
def build(target, config, example, model, rep_data, eval_data, train_data, task, scale, mean, std,
          out, targets_dir, as_json, quiet) -> None:
    """Prune, quantize, convert, verify and check a model for one target."""
    from edgepipe.api import build as api_build
    from edgepipe.render import TerminalProgress, build_summary, console

    overrides = {"model": model, "data.representative": rep_data, "data.eval": eval_data,
                 "data.train": train_data, "task": task, "preprocess.scale": scale,
                 "preprocess.mean": mean, "preprocess.std": std}
    result = api_build(target, config, example=example, out=out, overrides=overrides,
                       targets_dir=targets_dir, progress=TerminalProgress(quiet or as_json))
    if as_json:
        _echo_json(result.report.to_dict())
    elif not quiet or not result.passed:
        build_summary(console(), result)
    sys.exit(result.exit_code)


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-t", "--target", help="Also run this target's static checks.")
@click.option("--targets-dir", type=click.Path(file_okay=False), help="Extra folder of profiles.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def inspect(model, target, targets_dir, as_json) -> None:
    """Show a .tflite's ops, tensors and sizes (no TensorFlow needed)."""
    from edgepipe.api import inspect as api_inspect
    from edgepipe.render import checks_table, console, fmt_value
    from rich.table import Table

    res = api_inspect(model, target, targets_dir)
    if as_json:
        _echo_json(res.to_dict())
        sys.exit(0 if all(c.passed for c in res.checks) else 1)
    con = console()
    m = res.model
    con.print(f"[bold]{m.path}[/]: {fmt_value(m.size, 'bytes')} ({fmt_value(m.weight_bytes, 'bytes')} weights), "
              f"{len(m.operators)} ops, {len(m.tensors)} tensors, peak activations "
              f"{fmt_value(res.memory.peak_bytes, 'bytes')}")
    con.print("ops: " + ", ".join(f"{k}×{v}" for k, v in m.op_counts.items()))
    table = Table("io", "name", "shape", "dtype", "scale", "zero point")
    for role, ts in (("input", m.input_tensors), ("output", m.output_tensors)):
        for t in ts:
            table.add_row(role, t.name, str(list(t.shape)), t.dtype,
                          f"{t.scale[0]:.6g}" if t.scale else "-", str(t.zero_point[0]) if t.zero_point else "-")
    con.print(table)
    if res.checks:
        con.print(checks_table(list(res.checks)))
        sys.exit(0 if all(c.passed for c in res.checks) else 1)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="edgepipe")


if __name__ == "__main__":
    main()
