"""Arm Ethos-U via Vela: compile, read Vela's reports, turn its silences into checks.

Vela runs as its command-line program (the ``vela`` next to this Python), not
through ``ethosu.vela`` in this process, because:

- it segfaults on some malformed flatbuffers (a truncated .tflite: exit -11), which
  in-process would take the build down; a child process turns that into a VelaError;
- the figures edgepipe needs are only written by the CLI path: the summary CSV,
  the per-layer CSV (``--verbose-performance``) and the reason for each CPU fallback
  (printed as ``Warning (supported operators) operator: ... Reason: ...``).

Vela exits 0 when every op falls back to the CPU, when some do, and when SRAM use is
far over ``--arena-cache-size``: :func:`vela_checks` makes those failed checks.

System configs and memory modes come from Vela's bundled ``Arm/vela.ini`` (in the
wheel under ``ethosu/config_files``) plus, when the profile names one in
``ethos_u.config_file``, that file (Vela reads them as one group): a path, a file
edgepipe ships (``vela_configs/``, e.g. ``edgepipe.ini`` with a 250 MHz
Corstone-300 system config) or another of Vela's.
Names are checked before Vela runs, so a typo lists the known names instead of a
Vela traceback; and a profile's ``ethos_u.npu_clock`` must equal the system
config's ``core_clock`` (Vela's cycles become seconds at that clock).
"""

from __future__ import annotations

import configparser
import csv
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgepipe.checks import Check, budget_check
from edgepipe.config.schema import TargetProfile
from edgepipe.errors import ConfigError, EdgepipeError, UnknownNameError
from edgepipe.tflite.model import parse_tflite, read_tflite

DEFAULT_CONFIG = "Arm/vela.ini"
#: Vela config files shipped with edgepipe (``ethos_u.config_file: edgepipe.ini``).
EDGEPIPE_CONFIGS = Path(__file__).parent / "vela_configs"
ACCELERATORS = (
    "ethos-u55-32", "ethos-u55-64", "ethos-u55-128", "ethos-u55-256", "ethos-u65-256", "ethos-u65-512",
    "ethos-u85-128", "ethos-u85-256", "ethos-u85-512", "ethos-u85-1024", "ethos-u85-2048",
)
NPU_OP = "CUSTOM:ethos-u"
_WARNING_RE = re.compile(
    r"Warning \(supported operators\) operator: (?P<op>\S+), ofm: '(?P<ofm>[^']*)'\s*\n"
    r"Reason: (?P<reason>[^\n]*)(?:\n(?P<more>[^\n]+))?")
_COUNT_RE = re.compile(r"(?P<where>CPU|NPU) operators = (?P<n>\d+)")
_FLOAT = ("float32", "float16", "float64")


class VelaError(EdgepipeError):
    """Vela could not compile the model; carries the last lines of Vela's output."""

    def __init__(self, where: str, problem: str, log: str = ""):
        self.where, self.problem, self.log = where, problem, log
        tail = [ln.strip() for ln in log.splitlines() if ln.strip()][-3:]
        super().__init__(f"{where}: Vela failed: {problem}" + (f" [{' | '.join(tail)}]" if tail else ""))


@dataclass(frozen=True)
class CpuFallback:
    """An op Vela left for the Cortex-M CPU, with Vela's reason when it gave one."""

    op: str
    tensor: str
    reason: str

    def __str__(self) -> str:
        return f"{self.op} ({self.tensor}): {self.reason}" if self.reason else f"{self.op} ({self.tensor})"


@dataclass(frozen=True)
class VelaLayer:
    """One row of Vela's per-layer performance CSV."""

    original_op: str
    npu_op: str
    target: str
    cycles: int
    macs: int
    name: str


@dataclass(frozen=True)
class VelaResult:
    """What Vela produced and reported. Sizes in bytes, time in seconds."""

    output_path: Path
    output_bytes: int
    accelerator_config: str
    system_config: str
    memory_mode: str
    core_clock_hz: float
    sram_bytes: int
    flash_bytes: int
    dram_bytes: int
    arena_cache_bytes: int | None
    npu_ops: int
    cpu_ops: int
    cpu_fallbacks: tuple[CpuFallback, ...]
    float_cpu_ops: tuple[str, ...]
    macs: int
    cycles: int
    inference_time_s: float
    layers: tuple[VelaLayer, ...] = ()
    summary_csv: Path | None = None
    per_layer_csv: Path | None = None
    log_path: Path | None = None
    vela_version: str = ""
    source: str = "estimate:vela"
    summary: dict = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("summary")
        d["layers"] = len(self.layers)
        d["cpu_fallbacks"] = [str(f) for f in self.cpu_fallbacks]
        for k in ("output_path", "summary_csv", "per_layer_csv", "log_path"):
            d[k] = str(d[k]) if d[k] is not None else None
        return d


# --------------------------------------------------------------------------- configuration

def vela_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ethos-u-vela")
    except PackageNotFoundError:
        return ""


def _config_dir() -> Path:
    import ethosu

    return Path(next(iter(ethosu.__path__))) / "config_files"


def resolve_config_file(name: str | None) -> Path:
    """A Vela .ini: a path, or a file of edgepipe's ``vela_configs`` or Vela's ``config_files`` (Arm/vela.ini)."""
    name = name or DEFAULT_CONFIG
    for p in (Path(name), EDGEPIPE_CONFIGS / name, _config_dir() / name):
        if p.is_file():
            return p.resolve()
    bundled = sorted([p.name for p in EDGEPIPE_CONFIGS.glob("*.ini")]
                     + [str(p.relative_to(_config_dir())) for p in _config_dir().rglob("*.ini")])
    raise ConfigError("ethos_u.config_file", f"no Vela config file {name!r}",
                      f"give a path, or one of the bundled files: {', '.join(bundled) or '(none)'}")


def system_clock(config_file: str | None, system_config: str) -> float:
    """The NPU clock (``core_clock``, Hz) a system config sets, following Vela's ``inherit``."""
    parser = _parser(config_file)
    section = f"System_Config.{system_config}"
    while section in parser:
        if parser.has_option(section, "core_clock"):
            return float(parser.get(section, "core_clock"))
        section = parser.get(section, "inherit", fallback="")
    return 0.0


def config_files(config_file: str | None) -> list[Path]:
    """The .ini files Vela reads as one group: Vela's ``Arm/vela.ini``, then the profile's file if it names another.

    So a file of one's own (like edgepipe's ``edgepipe.ini``) adds system configs and can use
    Vela's memory modes without repeating them.
    """
    files = [resolve_config_file(DEFAULT_CONFIG)]
    if config_file and resolve_config_file(config_file) != files[0]:
        files.append(resolve_config_file(config_file))
    return files


def _parser(config_file: str | None) -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(config_files(config_file))
    return parser


def list_vela_configs(config_file: str | None = None) -> tuple[list[str], list[str]]:
    """(system configs, memory modes) defined by Vela's config files and the profile's."""
    parser = _parser(config_file)
    systems = [s.removeprefix("System_Config.") for s in parser.sections() if s.startswith("System_Config.")]
    modes = [s.removeprefix("Memory_Mode.") for s in parser.sections() if s.startswith("Memory_Mode.")]
    return systems, modes


def vela_arguments(profile: TargetProfile, arena_cache_size: int | None = None) -> list[str]:
    """Vela CLI options for the profile; unknown names raise UnknownNameError with the known ones."""
    eu = profile.ethos_u
    if eu.accelerator_config not in ACCELERATORS:
        raise UnknownNameError("Ethos-U accelerator config", eu.accelerator_config, ACCELERATORS)
    args = ["--accelerator-config", eu.accelerator_config]
    if eu.system_config or eu.memory_mode or eu.config_file:
        if not (eu.system_config and eu.memory_mode):
            raise ConfigError("ethos_u", "Vela needs both system_config and memory_mode when either "
                              "(or config_file) is set", "e.g. Ethos_U55_High_End_Embedded + Shared_Sram")
        files = config_files(eu.config_file)
        where = " + ".join(f.name for f in files)
        systems, modes = list_vela_configs(eu.config_file)
        if eu.system_config not in systems:
            raise UnknownNameError(f"Vela system config (in {where})", eu.system_config, systems)
        if eu.memory_mode not in modes:
            raise UnknownNameError(f"Vela memory mode (in {where})", eu.memory_mode, modes)
        _check_npu_clock(eu)
        args += [a for f in files for a in ("--config", str(f))]
        args += ["--system-config", eu.system_config, "--memory-mode", eu.memory_mode]
    if arena_cache_size is not None:
        args += ["--arena-cache-size", str(int(arena_cache_size))]
    return args


def _check_npu_clock(eu) -> None:
    """The profile's NPU clock is the system config's ``core_clock``, or Vela's seconds are for another chip."""
    clock = system_clock(eu.config_file, eu.system_config)
    if eu.npu_clock is not None and clock and abs(clock - eu.npu_clock) > 0.5e6:
        raise ConfigError("ethos_u.npu_clock",
                          f"is {eu.npu_clock / 1e6:g} MHz but Vela system config {eu.system_config!r} clocks the NPU "
                          f"at {clock / 1e6:g} MHz, so Vela's inference time would be for another chip",
                          "use a system config whose core_clock is the SoC's (e.g. Corstone_300_250MHz in "
                          "config_file: edgepipe.ini), or correct npu_clock")


def _vela_executable() -> str:
    here = Path(sys.executable).parent / "vela"
    found = str(here) if here.is_file() else shutil.which("vela")
    if not found:
        from edgepipe.errors import MissingDependencyError

        raise MissingDependencyError("ethos-u-vela", "mcu", "Compiling for Ethos-U")
    return found


# --------------------------------------------------------------------------- compile

def compile_vela(model: bytes | str | Path, profile: TargetProfile, out_dir: str | Path, *,
                 arena_cache_size: int | None = None, name: str | None = None,
                 timeout: float = 600.0) -> VelaResult:
    """Compile an int8 .tflite for the profile's Ethos-U and read Vela's reports.

    ``arena_cache_size`` defaults to the profile's ``memory.ram``: Vela then plans
    for the SRAM the device has (and still exits 0 when it cannot fit; see
    :func:`vela_checks`). Writes ``<name>_vela.tflite``, Vela's CSVs and
    ``<name>_vela.log`` to ``out_dir``; ``name`` defaults to the model file's stem.
    """
    if isinstance(model, (str, Path)):
        data, name = read_tflite(model).data, name or Path(model).stem
    else:
        data, name = bytes(model), name or "model"
        parse_tflite(data, name)  # Vela segfaults on corrupt files: refuse them first
    if arena_cache_size is None:
        arena_cache_size = profile.memory.ram
    args = vela_arguments(profile, arena_cache_size)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edgepipe-vela-") as d:
        src = Path(d) / f"{name}.tflite"
        src.write_bytes(data)
        cmd = [_vela_executable(), *args, "--verbose-performance", "--output-dir", str(out), str(src)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=d)
        except subprocess.TimeoutExpired:
            raise VelaError(name, f"did not finish within {timeout:.0f} s") from None
    log = proc.stdout + ("\n" + proc.stderr if proc.stderr else "")
    log_path = out / f"{name}_vela.log"
    log_path.write_text(log)
    if proc.returncode < 0:
        raise VelaError(name, f"Vela crashed ({signal.Signals(-proc.returncode).name})", log)
    if proc.returncode != 0:
        raise VelaError(name, f"exit code {proc.returncode}", log)
    output = out / f"{name}_vela.tflite"
    summaries = sorted(out.glob(f"{name}_summary_*.csv"))
    if not output.is_file() or not summaries:
        raise VelaError(name, "no output model or summary CSV was written", log)
    per_layer = out / f"{name}_per-layer.csv"
    return _result(output, summaries[-1], per_layer if per_layer.is_file() else None, log, log_path)


def _result(output: Path, summary_csv: Path, per_layer_csv: Path | None, log: str, log_path: Path) -> VelaResult:
    with open(summary_csv, newline="") as f:
        row = next(csv.DictReader(f))
    kib = lambda key: int(round(float(row.get(key) or 0) * 1024))  # noqa: E731 - Vela writes KiB
    compiled = read_tflite(output)
    cpu_ops = [op for op in compiled.operators if op.op != NPU_OP]
    reasons = {m["ofm"]: " ".join(filter(None, (m["reason"].strip(), (m["more"] or "").strip())))
               for m in _WARNING_RE.finditer(log)}
    fallbacks = []
    float_ops = []
    for op in cpu_ops:
        out_name = compiled.tensors[op.outputs[0]].name if op.outputs else ""
        fallbacks.append(CpuFallback(op.op, out_name, reasons.get(out_name, "")))
        acts = [compiled.tensors[i] for i in op.inputs + op.outputs if i >= 0 and not compiled.tensors[i].is_constant]
        if any(t.dtype in _FLOAT for t in acts):
            float_ops.append(f"{op.op} ({out_name})")
    counts = {m["where"]: int(m["n"]) for m in _COUNT_RE.finditer(log)}
    arena_cache = kib("arena_cache_size")
    return VelaResult(
        output_path=output, output_bytes=compiled.size,
        accelerator_config=row.get("accelerator_configuration", ""), system_config=row.get("system_config", ""),
        memory_mode=row.get("memory_mode", ""), core_clock_hz=float(row.get("core_clock") or 0),
        sram_bytes=kib("sram_memory_used"),
        flash_bytes=kib("off_chip_flash_memory_used") + kib("on_chip_flash_memory_used"),
        dram_bytes=kib("dram_memory_used"),
        arena_cache_bytes=arena_cache if arena_cache < 2**40 else None,
        npu_ops=counts.get("NPU", 0), cpu_ops=counts.get("CPU", len(cpu_ops)),
        cpu_fallbacks=tuple(fallbacks), float_cpu_ops=tuple(float_ops),
        macs=int(float(row.get("nn_macs") or 0)), cycles=int(float(row.get("cycles_total") or 0)),
        inference_time_s=float(row.get("inference_time") or 0.0),
        layers=_layers(per_layer_csv), summary_csv=summary_csv, per_layer_csv=per_layer_csv,
        log_path=log_path, vela_version=vela_version(), summary=dict(row),
    )


def _layers(path: Path | None) -> tuple[VelaLayer, ...]:
    if path is None:
        return ()
    with open(path, newline="") as f:
        return tuple(
            VelaLayer(r["Original Operator"], r["NNG Operator"], r["Target"], int(float(r["Op Cycles"] or 0)),
                      int(float(r["MAC Count"] or 0)), r["Name"])
            for r in csv.DictReader(f))


# --------------------------------------------------------------------------- checks

def vela_checks(result: VelaResult, profile: TargetProfile) -> tuple[Check, ...]:
    """The checks Vela's exit code does not give: CPU fallback, float ops, SRAM and flash budgets."""
    src = "estimate:vela"
    checks = []
    fallback = ", ".join(str(f) for f in result.cpu_fallbacks[:5])
    more = f" and {len(result.cpu_fallbacks) - 5} more" if len(result.cpu_fallbacks) > 5 else ""
    if not result.cpu_fallbacks:
        checks.append(Check("npu_only", "pass", 0, 0, "ops", f"all ops run on the NPU ({result.npu_ops} NPU ops)", src))
    else:
        status = "fail" if profile.accelerator.npu_only else "skip"
        checks.append(Check("npu_only", status, len(result.cpu_fallbacks), 0, "ops",
                            f"{len(result.cpu_fallbacks)} op(s) fall back to the CPU: {fallback}{more}", src))
    if profile.accelerator.int8_only:
        bad = result.float_cpu_ops
        checks.append(Check("ethos_u_int8", "fail" if bad else "pass", len(bad), 0, "ops",
                            (f"float ops left for the CPU: {', '.join(bad[:5])}" if bad
                             else "no float ops in the compiled model"), src))
    ram_what = "Vela SRAM use"  # with CPU fallbacks the Ethos-U backend adds the CPU's TFLM arena
    checks.append(budget_check("ram", result.sram_bytes, profile.memory.ram, "bytes", src, ram_what))
    if result.arena_cache_bytes not in (None, profile.memory.ram):
        checks.append(budget_check("vela_arena_cache", result.sram_bytes, result.arena_cache_bytes, "bytes", src,
                                   "Vela SRAM use vs the arena cache size it was given"))
    checks.append(budget_check("flash", result.output_bytes, profile.memory.flash, "bytes", "measured:file",
                               "Vela output (_vela.tflite)"))
    return tuple(checks)
