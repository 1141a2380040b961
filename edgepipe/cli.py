"""The ``edgepipe`` command: a thin click layer over :mod:`edgepipe.api`.

Exit codes: 0 every check passed; 1 a budget or accuracy check failed
(artifacts and report still written, marked failed); 2 bad usage or input.
Nothing here imports TensorFlow at import time: ``--help``, ``targets``,
``inspect`` and ``verify`` start in a fraction of a second. ``--json``
prints one JSON document on stdout and nothing else (errors included:
``{"status": "error", ...}``); human output, progress and errors go to the
terminal, progress only when stderr is one.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager

import click

from edgepipe import __version__
from edgepipe.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EdgepipeError, InternalError
from edgepipe.termination import EXIT_TERMINATED, Terminated, raise_on_sigterm


class _Group(click.Group):
    """Catches edgepipe's error root once: one line on stderr, exit 2 (3 for an internal error).

    Anything else that escapes is edgepipe's own bug: one line and exit 3 too, never a
    traceback unless ``--debug`` asks for it (exit 1 would read as "a check failed").
    """

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except EdgepipeError as exc:
            if isinstance(exc, InternalError) and _debug(ctx):
                raise
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except Exception as exc:  # noqa: BLE001 - the last line of defence for the exit-code contract
            if _debug(ctx):
                raise
            click.echo(f"error: {_internal(exc)}", err=True)
            ctx.exit(EXIT_INTERNAL)


def _debug(ctx: click.Context) -> bool:
    return bool(ctx.find_root().params.get("debug"))


def _internal(exc: Exception) -> str:
    return f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)"


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgepipe")
@click.option("--debug", is_flag=True, help="Show the traceback of an internal error instead of one line.")
def cli(debug) -> None:
    """Compile a trained Keras model into a verified artifact for a device.

    \b
    Exit codes: 0 all checks passed, 1 a budget or accuracy check failed,
    2 bad usage or input, 3 an internal error.
    """


def _echo_json(doc) -> None:
    """One strict JSON document (RFC 8259: non-finite figures as null), like report.json."""
    from edgepipe.emit.files import finite

    click.echo(json.dumps(finite(json.loads(json.dumps(doc, default=str))), indent=2, allow_nan=False))


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
        with _reporting(as_json, None, "edgepipe.targets"):
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

    with _reporting(as_json, None, "edgepipe.targets"):
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


@targets.command("schema")
@click.option("--project", is_flag=True, help="The schema of edgepipe.yaml instead of a target profile's.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (the schema is one in any case).")
def targets_schema(project, as_json) -> None:
    """Print the JSON Schema of a target profile (or edgepipe.yaml) for editors and pre-commit hooks."""
    from edgepipe.config.json_schema import profile_schema, project_schema, schema_text

    click.echo(schema_text(project_schema() if project else profile_schema()), nl=False)


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


def _options(*decorators):
    """Apply several click options as one decorator (shared by the commands)."""
    def apply(f):
        for d in reversed(decorators):
            f = d(f)
        return f
    return apply


_output_options = _options(
    click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout and nothing else."),
    click.option("-q", "--quiet", is_flag=True, help="Print only failures."),
    click.option("--junit-xml", type=click.Path(dir_okay=False), help="Write one JUnit test case per check here."),
    click.option("--targets-dir", type=click.Path(file_okay=False), help="Extra folder of profiles."),
)
_data_options = _options(
    click.option("--task", type=click.Choice(["classification", "regression", "raw"])),
    click.option("--scale", type=float, help="Preprocess: multiply inputs by this."),
    click.option("--mean", type=float, help="Preprocess: subtract this after scaling."),
    click.option("--std", type=float, help="Preprocess: divide by this after subtracting the mean."),
)


@contextmanager
def _reporting(as_json: bool, junit: str | None, suite: str):
    """On a usage error, --json still prints one document and --junit-xml records the error."""
    try:
        try:
            yield
        except EdgepipeError:
            raise
        except Exception as exc:  # noqa: BLE001 - an internal error still gets its one JSON document
            if _debug(click.get_current_context()):
                raise
            raise InternalError(_internal(exc)) from exc
    except EdgepipeError as exc:
        if junit:
            from edgepipe.emit.junit import Suite, write_junit

            write_junit(junit, [Suite(suite, error=str(exc))])
        if as_json:
            _echo_json({"status": "error", "exit_code": exc.exit_code, "error": str(exc)})
        raise


def _junit(path: str | None, suites) -> None:
    if path:
        from edgepipe.emit.junit import write_junit

        write_junit(path, suites)


def _suite(command: str, target: str, checks, **properties):
    from edgepipe.emit.junit import Suite

    return Suite(f"edgepipe.{command}.{target}", tuple(checks), properties=properties)


_input_options = _options(
    click.option("-c", "--config", type=click.Path(dir_okay=False), help="Project config (default ./edgepipe.yaml)."),
    click.option("--example", help="Use a bundled example instead (e.g. 'digits')."),
    click.option("--model", help="Model: .keras, .h5, SavedModel folder, .onnx file, or a PyTorch factory "
                                   "'file.py:function' / 'package.module:function' (docs/onnx-pytorch.md)."),
    click.option("--rep-data", help="Representative data source (file.npz, folder, module:function)."),
    click.option("--eval-data", help="Eval data source with labels."),
    click.option("--train-data", help="Training data source (for fine-tuning)."),
    click.option("--val-data", help="Validation data for fine-tuning's early stopping (default: a tenth of the "
                                    "training data, kept out of training); never the eval data that is reported."),
    _data_options,
)
_cache_options = _options(
    click.option("--no-cache", is_flag=True, help="Run every stage; neither read nor write the stage cache."),
    click.option("--cache-dir", type=click.Path(file_okay=False), envvar="EDGEPIPE_CACHE_DIR",
                 help="Stage cache folder [env EDGEPIPE_CACHE_DIR; default ~/.cache/edgepipe]."),
    click.option("--cache-size", envvar="EDGEPIPE_CACHE_SIZE",
                 help="Stage cache size bound, e.g. 2GiB [env EDGEPIPE_CACHE_SIZE; default 1GiB]."),
)


def _input_overrides(model, rep_data, eval_data, train_data, val_data, task, scale, mean, std) -> dict:
    """The command line's model and data options as dotted config overrides."""
    return {"model": model, "data.representative": rep_data, "data.eval": eval_data, "data.train": train_data,
            "data.val": val_data, "task": task, "preprocess.scale": scale, "preprocess.mean": mean,
            "preprocess.std": std}


@cli.command()
@click.option("-t", "--target", "targets", multiple=True,
              help="Target profile name or path to a YAML profile; repeat for several (built in parallel).")
@click.option("--all-targets", is_flag=True, help="Build every known target profile.")
@_input_options
@click.option("-o", "--out", type=click.Path(file_okay=False),
              help="Output folder (default <output>/<target>); with several targets, <out>/<target>.")
@click.option("--prune-ratio", type=float, help="Channel-prune this fraction of every prunable group (0 <= r < 1).")
@click.option("--prune-target", metavar="METRIC=FRACTION",
              help="Channel-prune to keep this fraction of the original macs, size, latency or ram (e.g. macs=0.5), "
                   "with per-group ratios chosen by measured sensitivity; not with --prune-ratio.")
@click.option("--finetune-epochs", type=click.IntRange(1),
              help="Fine-tune the pruned model with distillation for up to this many epochs (needs train data).")
@click.option("--emit", type=click.Choice(["c"]), multiple=True,
              help="Extra artifacts: 'c' = model as a C array + op resolver (always on for MCU/NPU targets).")
@_cache_options
@click.option("--lock-timeout", type=float, default=30.0, show_default=True,
              help="Seconds to wait for another build writing to the same output folder.")
@click.option("-j", "--jobs", type=click.IntRange(1), default=2, show_default=True,
              help="Parallel processes for several targets.")
@click.option("--ray", "ray_address", metavar="HOST:PORT",
              help="Build each target as a task on the Ray cluster at this address (edgepipe[ray]); reported "
                   "as a multi-target build into <out>/<target>/, a folder every node shares. See docs/scale-out.md.")
@_output_options
def build(targets, all_targets, config, example, model, rep_data, eval_data, train_data, val_data, task, scale,
          mean, std,
          out, prune_ratio, prune_target, finetune_epochs, emit, no_cache, cache_dir, cache_size, lock_timeout, jobs,
          ray_address, as_json, quiet, junit_xml, targets_dir) -> None:
    """Prune, quantize, convert, verify and check a model for one or more targets."""
    from edgepipe import api
    from edgepipe.pipeline.cache import CacheSettings
    from edgepipe.render import TerminalProgress

    overrides = {**_input_overrides(model, rep_data, eval_data, train_data, val_data, task, scale, mean, std),
                 "emit": list(emit) or None, "prune.ratio": prune_ratio, "prune.finetune.epochs": finetune_epochs}
    progress = TerminalProgress(quiet or as_json)
    with _reporting(as_json, junit_xml, "edgepipe.build"):
        overrides["prune.target"] = _prune_target(prune_target)
        cache = CacheSettings.resolve(cache_dir, cache_size, enabled=False if no_cache else None)
        specs = list(targets)
        if not specs and not all_targets:
            specs = api.project_targets(config, example, overrides)
        kwargs = dict(example=example, out=out, overrides=overrides, targets_dir=targets_dir, cache=cache,
                      lock_timeout=lock_timeout, progress=progress)
        if len(specs) == 1 and not all_targets and not ray_address:
            result = api.build(specs[0], config, **kwargs)
            sys.exit(_show_build(result, as_json, quiet, junit_xml))
        many = api.build_many(specs, config, all_targets=all_targets, workers=jobs, ray_address=ray_address,
                              **kwargs)
    sys.exit(_show_many(many, as_json, quiet, junit_xml))


def _prune_target(text: str | None) -> dict | None:
    """``macs=0.5`` -> ``{"macs": "0.5"}``; the config validates the metric and the value, naming the key."""
    if text is None:
        return None
    from edgepipe.errors import ConfigError
    from edgepipe.prune.settings import PruneTarget

    try:
        return PruneTarget.parse(text)
    except ValueError as exc:
        raise ConfigError("--prune-target", str(exc)) from None


def _show_build(result, as_json: bool, quiet: bool, junit: str | None) -> int:
    from edgepipe.render import build_summary, console

    report = result.report
    _junit(junit, [_suite("build", report.target["name"], report.checks, out=result.out_dir)])
    if as_json:
        _echo_json(report.to_dict())
    elif not quiet or not result.passed:
        build_summary(console(), result, quiet)
    return result.exit_code


def _show_many(many, as_json: bool, quiet: bool, junit: str | None) -> int:
    from edgepipe.emit.junit import Suite
    from edgepipe.render import console, multi_summary

    _junit(junit, [Suite(f"edgepipe.build.{o.target}", error=o.error) if o.error else
                   _suite("build", o.target, o.result.report.checks, out=o.out_dir) for o in many.outcomes])
    if as_json:
        _echo_json(many.to_dict())
    elif not quiet or not many.passed:
        multi_summary(console(), many, quiet)
    return many.exit_code


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-t", "--target", required=True, help="Target profile name or path to a YAML profile.")
@click.option("-d", "--data", help="Eval data with labels (.npz, .npy, image folder, module:function).")
@click.option("--x", "x_key", default="x", show_default=True, help="Array of inputs in the .npz.")
@click.option("--y", "y_key", default="y", show_default=True, help="Array of labels in the .npz.")
@click.option("-c", "--config", type=click.Path(dir_okay=False),
              help="Take data.eval, preprocess, task and quantization overrides from this edgepipe.yaml.")
@_data_options
@click.option("--min-accuracy", type=float, help="Fail below this top-1 accuracy (percent).")
@click.option("--baseline-accuracy", type=float,
              help="The float model's top-1 (percent; RMSE for regression): fail if the drop exceeds max_drop.")
@click.option("--baseline", type=click.Path(dir_okay=False),
              help="Take the baseline from a build's report.json (its float model's accuracy).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), help="Write the report (JSON) here.")
@_output_options
def verify(model, target, data, x_key, y_key, config, task, scale, mean, std, min_accuracy, baseline_accuracy,
           baseline, report_path, as_json, quiet, junit_xml, targets_dir) -> None:
    """Gate an existing .tflite on a target: accuracy, rules, budgets (no TensorFlow needed)."""
    from edgepipe import api
    from edgepipe.render import TerminalProgress, console, verify_summary

    with _reporting(as_json, junit_xml, "edgepipe.verify"):
        result = api.verify(model, target, data, config=config, x_key=x_key, y_key=y_key, task=task, scale=scale,
                            mean=mean, std=std, min_accuracy=min_accuracy, baseline_accuracy=baseline_accuracy,
                            baseline=baseline, targets_dir=targets_dir, progress=TerminalProgress(quiet or as_json))
    if report_path:
        result.save(report_path)
    _junit(junit_xml, [_suite("verify", result.report.target["name"], result.report.checks, model=model)])
    if as_json:
        _echo_json(result.to_dict())
    elif not quiet or not result.passed:
        verify_summary(console(), result, quiet)
    sys.exit(result.exit_code)


@cli.command()
@click.option("-t", "--target", required=True, help="Target profile name or path to a YAML profile.")
@_input_options
@click.option("-o", "--out", type=click.Path(file_okay=False),
              help="Output folder for the chosen build (default <output>/<target>); the search's state goes "
                   "beside it in .<out>.fit/.")
@click.option("--trials", type=click.IntRange(1), default=24, show_default=True,
              help="Candidates to build and measure (the first is the model as it is).")
@click.option("--batch", type=click.IntRange(1), default=4, show_default=True,
              help="Candidates proposed at a time; the result depends on it, not on --jobs or --ray.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the search (same seed, same result).")
@click.option("--prefer", type=click.Choice(["accuracy", "ram", "flash", "latency", "energy"]), default="accuracy",
              show_default=True, help="Among candidates that pass every check, ship the most accurate, or the "
                                      "one using least of this budget.")
@click.option("--finetune-epochs", type=click.IntRange(0), default=0, show_default=True,
              help="Fine-tune the best pruned candidates that meet every budget with distillation for up to this "
                   "many epochs (0: none).")
@click.option("--finetune-top", type=click.IntRange(0), default=2, show_default=True,
              help="How many candidates get fine-tuning.")
@click.option("-j", "--jobs", type=click.IntRange(1), default=2, show_default=True,
              help="Local worker processes that build candidates.")
@click.option("--ray", "ray_address", metavar="HOST:PORT",
              help="Build candidates on this Ray cluster instead (pip install 'edgepipe[ray]').")
@click.option("--fresh", is_flag=True, help="Discard a previous search's state instead of resuming it.")
@_cache_options
@_output_options
def fit(target, config, example, model, rep_data, eval_data, train_data, val_data, task, scale, mean, std, out,
        trials, batch, seed, prefer, finetune_epochs, finetune_top, jobs, ray_address, fresh, no_cache, cache_dir,
        cache_size, as_json, quiet, junit_xml, targets_dir) -> None:
    """Search pruning and quantization choices for a build that meets every budget of the target.

    \b
    Writes the chosen build to --out exactly as `build` does, plus fit.json
    (every candidate) and pareto.svg. Exit 0: a candidate passes every check;
    1: none does (the nearest miss is written, fit.json says what it misses).
    An interrupted search resumes when run again with the same arguments.
    """
    from edgepipe import api
    from edgepipe.fit import FitOptions
    from edgepipe.pipeline.cache import CacheSettings
    from edgepipe.render import TerminalProgress

    overrides = _input_overrides(model, rep_data, eval_data, train_data, val_data, task, scale, mean, std)
    options = FitOptions(trials, batch, seed, prefer, finetune_top, finetune_epochs, jobs, ray_address, fresh)
    with _reporting(as_json, junit_xml, "edgepipe.fit"):
        cache = CacheSettings.resolve(cache_dir, cache_size, enabled=False if no_cache else None)
        result = api.fit(target, config, example=example, out=out, overrides=overrides, targets_dir=targets_dir,
                         cache=cache, options=options, progress=TerminalProgress(quiet or as_json))
    sys.exit(_show_fit(result, as_json, quiet, junit_xml))


def _show_fit(result, as_json: bool, quiet: bool, junit: str | None) -> int:
    from edgepipe.render import console, fit_summary

    if result.build is not None:
        _junit(junit, [_suite("fit", result.target, result.build.report.checks, out=result.out_dir)])
    if as_json:
        _echo_json(result.doc)
    elif not quiet or not result.passed:
        fit_summary(console(), result, quiet)
    return result.exit_code


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-t", "--target", help="Also run this target's static checks (rules, flash, RAM estimate).")
@_output_options
def inspect(model, target, as_json, quiet, junit_xml, targets_dir) -> None:
    """Show a .tflite's ops, tensors and sizes, and which checks of a target fail (no TensorFlow needed)."""
    from edgepipe.api import inspect as api_inspect
    from edgepipe.render import console, inspect_summary

    with _reporting(as_json, junit_xml, "edgepipe.inspect"):
        res = api_inspect(model, target, targets_dir)
    if res.target is not None:
        _junit(junit_xml, [_suite("inspect", res.target.name, res.checks, model=model)])
    code = 0 if all(c.passed for c in res.checks) else 1
    if as_json:
        _echo_json(res.to_dict())
    elif not quiet or code:
        inspect_summary(console(), res, quiet)
    sys.exit(code)


@cli.command()
@click.argument("path", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document naming the page written.")
def report(path, as_json) -> None:
    """Render report.html again from report.json (a build or verify folder, or the root of several targets)."""
    from edgepipe import api

    with _reporting(as_json, None, "edgepipe.report"):
        page = api.render_report(path)
    if as_json:
        return _echo_json({"status": "ok", "exit_code": 0, "html": str(page)})
    click.echo(f"wrote {page}")


@cli.group(cls=_Group)
@click.option("--cache-dir", type=click.Path(file_okay=False), envvar="EDGEPIPE_CACHE_DIR",
              help="Stage cache folder [env EDGEPIPE_CACHE_DIR; default ~/.cache/edgepipe].")
@click.pass_context
def cache(ctx: click.Context, cache_dir) -> None:
    """Show or clear the stage cache."""
    from edgepipe.pipeline.cache import CacheSettings, StageCache

    ctx.obj = StageCache(CacheSettings.resolve(cache_dir))


def _echo_doc(doc: dict, as_json: bool, text: str) -> None:
    if as_json:
        _echo_json(doc)
    else:
        click.echo(text)


@cache.command("info")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def cache_info(store, as_json) -> None:
    """Where the cache is, how many entries, how large."""
    from edgepipe.units import format_size

    entries = store.entries()
    doc = {"dir": str(store.settings.dir), "entries": len(entries), "bytes": sum(e[1] for e in entries),
           "max_bytes": store.settings.max_bytes}
    _echo_doc(doc, as_json, f"{doc['dir']}: {doc['entries']} entries, {format_size(doc['bytes'])} "
                            f"(bound {format_size(doc['max_bytes'])})")


@cache.command("clear")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def cache_clear(store, as_json) -> None:
    """Delete every cache entry."""
    doc = {"dir": str(store.settings.dir), "removed": store.clear()}
    _echo_doc(doc, as_json, f"removed {doc['removed']} entries from {doc['dir']}")


def main(args: list[str] | None = None) -> None:
    """Console-script entry point: every outcome is one of the contract's exit codes.

    0 passed, 1 a check failed, 2 bad usage or input, 3 internal error, 130 interrupted
    (Ctrl-C), 143 terminated (SIGTERM: see :mod:`edgepipe.termination`). With ``--json``, a
    usage error click itself finds (a missing argument, an unknown option) is one JSON
    document too.
    """
    argv = sys.argv[1:] if args is None else list(args)
    raise_on_sigterm()
    try:
        code = cli.main(argv, prog_name="edgepipe", standalone_mode=False)
    except click.ClickException as exc:
        if "--json" in argv:
            _echo_json({"status": "error", "exit_code": exc.exit_code, "error": exc.format_message()})
        else:
            exc.show()
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, click.exceptions.Abort) as exc:  # click wraps a KeyboardInterrupt in Abort
        if isinstance(exc, Terminated) or isinstance(exc.__cause__, Terminated):
            click.echo("error: terminated (SIGTERM)", err=True)
            sys.exit(EXIT_TERMINATED)
        click.echo("error: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(code or 0)


if __name__ == "__main__":
    main()
