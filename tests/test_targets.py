"""Target profiles: built-ins load, inheritance resolves, bad profiles get exact errors."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from edgepipe.cli import cli
from edgepipe.config.targets import TargetRegistry
from edgepipe.errors import ConfigError, UnknownNameError

REQUIRED = {"rpi4", "android-arm64", "coral-edgetpu", "ethos-u55", "esp32-s3", "stm32h7", "nrf52840"}


def test_every_builtin_profile_loads_with_real_budgets():
    reg = TargetRegistry([])
    assert REQUIRED <= set(reg.names())
    for name in reg.names():
        t = reg.get(name).profile
        assert t.memory.flash and t.memory.ram and t.latency, name
        assert t.description and t.sources, f"{name} must say where its figures come from"
        assert t.device.clock and t.device.cores, name


def test_mcu_profiles_inherit_from_the_base_and_say_so():
    t = TargetRegistry([]).get("esp32-s3")
    assert t.chain == ("esp32-s3", "_mcu")
    assert t.profile.runtime.value == "tflm"
    assert t.origin["runtime"] == "_mcu"
    assert t.origin["memory.ram"] == "esp32-s3"
    assert t.profile.memory.ram == 320 * 1024


def test_unknown_target_lists_known_and_close_names():
    with pytest.raises(UnknownNameError) as exc:
        TargetRegistry([]).get("rpi5")
    assert "rpi4" in str(exc.value) and "did you mean" in str(exc.value)


def _profiles(tmp_path: Path, **files: str) -> TargetRegistry:
    for name, text in files.items():
        (tmp_path / f"{name}.yaml").write_text(text)
    return TargetRegistry([tmp_path])


def test_extends_cycle_is_refused_with_the_chain(tmp_path):
    reg = _profiles(tmp_path, a="extends: b\n", b="extends: c\n", c="extends: a\n")
    with pytest.raises(ConfigError, match="cycle: a -> b -> c -> a"):
        reg.get("a")


def test_malformed_yaml_names_line_and_column(tmp_path):
    reg = _profiles(tmp_path, broken="memory:\n  ram: [1, 2\n  flash: 3\n")
    with pytest.raises(ConfigError, match=r"broken.yaml, line \d+, column \d+: malformed YAML"):
        reg.get("broken")


def test_bad_unit_names_file_line_key_and_found_value(tmp_path):
    reg = _profiles(tmp_path, board="extends: rpi4\nmemory:\n  ram: 512 bananas\n")
    with pytest.raises(ConfigError) as exc:
        reg.get("board")
    msg = str(exc.value)
    assert "board.yaml, line 3, column 8 (memory.ram)" in msg
    assert "bananas" in msg and "KiB" in msg


def test_decimal_and_binary_units_are_both_fine(tmp_path):
    reg = _profiles(tmp_path, a="extends: rpi4\nmemory:\n  ram: 512KB\n", b="extends: rpi4\nmemory:\n  ram: 512KiB\n")
    assert reg.get("a").profile.memory.ram == 512_000
    assert reg.get("b").profile.memory.ram == 524_288


def test_typo_in_a_key_is_refused(tmp_path):
    reg = _profiles(tmp_path, t="extends: rpi4\naccelerator:\n  int8_onyl: true\n")
    with pytest.raises(ConfigError, match="unknown key 'int8_onyl'"):
        reg.get("t")


def test_wrong_type_is_refused(tmp_path):
    reg = _profiles(tmp_path, t="extends: rpi4\nthreads: many\n")
    with pytest.raises(ConfigError, match=r"line 2.*threads.*'many'"):
        reg.get("t")


def test_int8_only_forbids_float_io(tmp_path):
    reg = _profiles(tmp_path, t="extends: esp32-s3\nquantization:\n  input_dtype: float32\n")
    with pytest.raises(ConfigError, match="int8_only.*input_dtype"):
        reg.get("t")


def test_profile_by_path_and_project_folder(tmp_path):
    path = tmp_path / "myboard.yaml"
    path.write_text("extends: stm32h7\nmemory:\n  ram: 256KiB\n")
    t = TargetRegistry([]).get(str(path))
    assert t.name == "myboard" and t.profile.memory.ram == 256 * 1024
    assert "myboard" in TargetRegistry([tmp_path]).names()


def test_cli_targets_list_and_show(tmp_path):
    runner = CliRunner()
    res = runner.invoke(cli, ["targets", "list"])
    assert res.exit_code == 0
    for name in REQUIRED:
        assert name in res.output
    assert "_mcu" not in res.output
    res = runner.invoke(cli, ["targets", "show", "stm32h7"])
    assert res.exit_code == 0
    assert "runtime: tflm  (inherited from _mcu)" in res.output
    assert "memory.ram: 512.0 KiB" in res.output


def test_cli_unknown_target_exits_2_with_one_line():
    res = CliRunner().invoke(cli, ["targets", "show", "esp32s3"])
    assert res.exit_code == 2
    assert "unknown target 'esp32s3'; did you mean esp32-s3?" in res.output
