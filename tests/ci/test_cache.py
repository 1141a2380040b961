"""The stage cache: keyed by content, bounded, shared safely; a replayed build equals a fresh one."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from ci.helpers import tiny_profile
from edgepipe.pipeline.cache import MISSING, CacheSettings, StageCache
from edgepipe.pipeline.report import stable_view


def _cache(path, **kw) -> StageCache:
    return StageCache(CacheSettings(path, **kw))


def test_values_round_trip_and_keys_follow_the_parts(tmp_path):
    cache = _cache(tmp_path)
    value = (b"\x00tflite", np.arange(6, dtype=np.int8).reshape(2, 3), {"top1": 97.5, "ops": ["CONV_2D"]})
    calls = []
    first = cache.get_or_compute("stage", {"a": 1}, lambda: calls.append(1) or value)
    again = cache.get_or_compute("stage", {"a": 1}, lambda: calls.append(1) or value)
    assert calls == [1] and cache.stats["stage"] == "hit"
    assert again[0] == value[0] and again[2] == value[2]
    assert again[1].dtype == np.int8 and np.array_equal(again[1], value[1])
    assert first is value
    assert cache.get("stage", {"a": 2}) is MISSING and cache.get("other", {"a": 1}) is MISSING


def test_a_damaged_entry_is_recomputed(tmp_path):
    cache = _cache(tmp_path)
    cache.put("s", 1, b"good")
    entry = next((tmp_path / "s").iterdir())
    (entry / "entry.json").write_text("{not json")
    assert cache.get("s", 1) is MISSING and not entry.exists()
    assert cache.get_or_compute("s", 1, lambda: b"again") == b"again"


def test_least_recently_used_entries_are_evicted_past_the_bound(tmp_path):
    cache = _cache(tmp_path, max_bytes=3500)    # three entries of ~1.07 kB fit, four do not
    for i in range(3):
        cache.put("s", i, bytes(1000))
        entry = cache._entry("s", cache.key("s", i))
        os.utime(entry, (time.time() - 100 + i, time.time() - 100 + i))
    cache.get("s", 0)                       # a read makes entry 0 the most recently used
    cache.put("s", 3, bytes(1000))          # over the bound: the least recently used (1, not 0) goes
    assert [cache.get("s", i) is MISSING for i in range(4)] == [False, True, False, False]


def test_disabled_cache_stores_nothing(tmp_path):
    cache = _cache(tmp_path / "c", enabled=False)
    assert cache.get_or_compute("s", 1, lambda: b"x") == b"x" and cache.stats["s"] == "off"
    assert not (tmp_path / "c").exists()


def test_settings_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGEPIPE_CACHE_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("EDGEPIPE_CACHE_SIZE", "2MiB")
    monkeypatch.setenv("EDGEPIPE_NO_CACHE", "1")
    assert CacheSettings.resolve() == CacheSettings(tmp_path / "d", 2 << 20, False)
    assert CacheSettings.resolve(tmp_path / "e", "1KiB", True) == CacheSettings(tmp_path / "e", 1024, True)
    from edgepipe.errors import ConfigError

    with pytest.raises(ConfigError, match="cache size"):
        CacheSettings.resolve(max_size="lots")


def test_a_replayed_build_equals_a_fresh_one(project, tmp_path):
    import edgepipe

    fresh = edgepipe.build("rpi4", project, out=tmp_path / "a")
    again = edgepipe.build("rpi4", project, out=tmp_path / "a")
    assert fresh.report.to_dict()["cache"]["stages"] == {"model-io": "miss", "prune": "miss", "quantize": "miss",
                                                          "verify": "miss"}
    assert again.report.to_dict()["cache"]["stages"] == {"model-io": "hit", "prune": "hit", "quantize": "hit",
                                                          "verify": "hit"}
    assert stable_view(again.report.to_dict()) == stable_view(fresh.report.to_dict())
    assert again.report.checks == fresh.report.checks


def test_a_budget_change_reruns_only_the_checks(project, tmp_path):
    import edgepipe

    edgepipe.build("rpi4", project, out=tmp_path / "a")
    small = tiny_profile(tmp_path, memory={"flash": "1KiB"})
    res = edgepipe.build(str(small), project, out=tmp_path / "b")
    assert res.exit_code == 1 and [c.name for c in res.report.failed_checks] == ["flash"]
    stages = res.report.to_dict()["cache"]["stages"]
    assert stages == {"model-io": "hit", "prune": "hit", "quantize": "hit", "verify": "hit"}, stages


def test_a_quantization_change_reruns_the_stages(project, tmp_path):
    import edgepipe

    edgepipe.build("rpi4", project, out=tmp_path / "a")
    res = edgepipe.build("rpi4", project, out=tmp_path / "b", overrides={"quantization.per_channel": False})
    assert res.report.to_dict()["cache"]["stages"]["quantize"] == "miss"
    eval_change = edgepipe.build("rpi4", project, out=tmp_path / "c", overrides={"preprocess.scale": 0.5})
    assert eval_change.report.to_dict()["cache"]["stages"]["verify"] == "miss"


def test_no_cache_runs_everything_and_stores_nothing(project, tmp_path, cache_dir):
    import edgepipe

    res = edgepipe.build("rpi4", project, out=tmp_path / "a", cache=False)
    assert set(res.report.to_dict()["cache"]["stages"].values()) == {"off"}
    assert not any(cache_dir.iterdir())


REBUILD = """
import json, sys
import edgepipe
result = edgepipe.build("rpi4", sys.argv[1], out=sys.argv[2])
print(json.dumps({"tf": "tensorflow" in sys.modules, "keras": "keras" in sys.modules,
                  "cache": result.report.to_dict()["cache"]["stages"], "exit": result.exit_code}))
"""


def test_a_rebuild_with_nothing_changed_never_imports_tensorflow(project, tmp_path):
    import edgepipe

    edgepipe.build("rpi4", project, out=tmp_path / "a")
    out = subprocess.run([sys.executable, "-c", REBUILD, str(project), str(tmp_path / "b")],
                         capture_output=True, text=True, env=os.environ, timeout=120)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc == {"tf": False, "keras": False, "exit": 0,
                   "cache": {"model-io": "hit", "prune": "hit", "quantize": "hit", "verify": "hit"}}
    first = {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir() if p.suffix in (".tflite", ".png")}
    again = {p.name: p.read_bytes() for p in (tmp_path / "b").iterdir() if p.suffix in (".tflite", ".png")}
    assert first == again and "model.tflite" in again, "files a replayed stage wrote are written again"


_KEY_TWICE = """
import sys
from pathlib import Path
from edgepipe.pipeline.cache import CacheSettings, StageCache
cache = StageCache(CacheSettings(Path(sys.argv[1])))
before = cache.key("s", 1)
if len(sys.argv) > 2:  # a source file edited while this process runs
    (Path(sys.argv[2]) / "edgepipe" / "errors.py").open("a").write("\\n# edited\\n")
print(before, cache.key("s", 1))
"""


def test_keys_follow_the_code_a_process_runs_not_edits_made_while_it_runs(tmp_path):
    """A long fit must find its own entries again even if a source file is edited meanwhile: the
    code it runs is what it imported. A new process runs the edited code and gets new keys."""
    import shutil

    import edgepipe

    copy = tmp_path / "src"
    shutil.copytree(os.path.dirname(edgepipe.__file__), copy / "edgepipe",
                    ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(copy)}

    def keys(*edit) -> list[str]:
        done = subprocess.run([sys.executable, "-c", _KEY_TWICE, str(tmp_path / "cache"), *edit],
                              env=env, cwd=tmp_path, capture_output=True, text=True, check=True)
        return done.stdout.split()

    before, during = keys(str(copy))
    assert before == during
    after, _ = keys()
    assert after != before
