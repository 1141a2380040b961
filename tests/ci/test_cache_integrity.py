"""The stage cache verifies what it replays: a swapped, truncated or altered entry is a miss, never shipped.

Each test builds the tiny model for real, damages the stored quantize entry one way, and
builds again: the quantize stage must run again ("miss" in the report's cache section),
the build must pass, the model it ships must be the one these inputs give, and report.json
must name that file's SHA-256.
"""

import hashlib
import json
import shutil
from pathlib import Path

import pytest

import edgepipe
from edgepipe.pipeline.cache import MISSING, CacheSettings, StageCache

PER_TENSOR = {"quantization.per_channel": False}


def _entries(cache_dir: Path, stage: str) -> list[Path]:
    return sorted(p for p in (cache_dir / stage).iterdir() if p.is_dir() and not p.name.startswith(".tmp-"))


def _blob(entry: Path) -> Path:
    """The stored .tflite of a quantize entry (item 1: item 0 is the outcome's JSON document)."""
    return entry / "1.bin"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_recomputed_and_consistent(result, out: Path, expected_model: bytes) -> None:
    report = json.loads((out / "report.json").read_text())
    assert report["cache"]["stages"]["quantize"] == "miss", report["cache"]
    assert result.exit_code == 0 and report["status"] == "passed"
    model = out / "model.tflite"
    assert report["artifacts"]["model.tflite"]["sha256"] == _sha256(model)
    assert model.read_bytes() == expected_model


@pytest.fixture
def first(project, tmp_path, cache_dir):
    """One real build; its quantize entry and the model it shipped."""
    result = edgepipe.build("rpi4", project, out=tmp_path / "first")
    assert result.exit_code == 0
    (entry,) = _entries(cache_dir, "quantize")
    model = (tmp_path / "first" / "model.tflite").read_bytes()
    assert _blob(entry).read_bytes() == model
    return entry, model


def test_swapped_entries_are_not_replayed(project, tmp_path, cache_dir, first):
    entry, model = first
    other = edgepipe.build("rpi4", project, out=tmp_path / "other", overrides=PER_TENSOR)
    assert other.exit_code == 0
    other_model = (tmp_path / "other" / "model.tflite").read_bytes()
    assert other_model != model
    (other_entry,) = [e for e in _entries(cache_dir, "quantize") if e != entry]
    parked = tmp_path / "parked"
    entry.rename(parked)
    other_entry.rename(entry)
    parked.rename(other_entry)
    assert _blob(entry).read_bytes() == other_model      # the swap a stale or tampered cache would hold

    again = edgepipe.build("rpi4", project, out=tmp_path / "again")
    _assert_recomputed_and_consistent(again, tmp_path / "again", model)
    swapped = edgepipe.build("rpi4", project, out=tmp_path / "swapped", overrides=PER_TENSOR)
    _assert_recomputed_and_consistent(swapped, tmp_path / "swapped", other_model)


def test_a_truncated_blob_is_recomputed(project, tmp_path, first):
    entry, model = first
    blob = _blob(entry)
    blob.write_bytes(blob.read_bytes()[: len(model) // 2])

    again = edgepipe.build("rpi4", project, out=tmp_path / "again")
    _assert_recomputed_and_consistent(again, tmp_path / "again", model)
    replayed = edgepipe.build("rpi4", project, out=tmp_path / "replayed")    # the rewritten entry is good
    assert replayed.report.to_dict()["cache"]["stages"]["quantize"] == "hit"
    assert (tmp_path / "replayed" / "model.tflite").read_bytes() == model


def test_a_flipped_byte_is_recomputed(project, tmp_path, first):
    entry, model = first
    blob = bytearray(_blob(entry).read_bytes())
    blob[len(blob) // 2] ^= 0x01          # same size, still a loadable flatbuffer: only the digest notices
    _blob(entry).write_bytes(bytes(blob))

    again = edgepipe.build("rpi4", project, out=tmp_path / "again")
    _assert_recomputed_and_consistent(again, tmp_path / "again", model)


def test_a_flipped_byte_in_the_document_is_recomputed(project, tmp_path, first):
    entry, model = first
    doc = entry / "0.json"
    text = doc.read_text()
    assert '"passed": true' in text
    doc.write_text(text.replace('"passed": true', '"passed": false', 1))   # a passing check now fails

    again = edgepipe.build("rpi4", project, out=tmp_path / "again")
    _assert_recomputed_and_consistent(again, tmp_path / "again", model)


def test_an_unreadable_record_is_recomputed(project, tmp_path, first):
    entry, model = first
    (entry / "entry.json").write_bytes(b"\xff\xfe\x00")

    again = edgepipe.build("rpi4", project, out=tmp_path / "again")
    _assert_recomputed_and_consistent(again, tmp_path / "again", model)


def test_an_entry_copied_to_another_key_is_refused_and_deleted(tmp_path):
    cache = StageCache(CacheSettings(tmp_path))
    cache.put("s", {"k": 1}, (b"one", {"n": 1}))
    cache.put("s", {"k": 2}, (b"two", {"n": 2}))
    one, two = cache._entry("s", cache.key("s", {"k": 1})), cache._entry("s", cache.key("s", {"k": 2}))
    shutil.rmtree(two)
    shutil.copytree(one, two)
    assert cache.get("s", {"k": 2}) is MISSING and not two.exists()
    assert cache.get("s", {"k": 1}) == (b"one", {"n": 1})


def test_a_missing_item_or_record_is_a_miss(tmp_path):
    cache = StageCache(CacheSettings(tmp_path))
    cache.put("s", 1, (b"blob", {"n": 1}))
    cache.put("s", 2, b"blob")
    (cache._entry("s", cache.key("s", 1)) / "1.json").unlink()
    (cache._entry("s", cache.key("s", 2)) / "entry.json").unlink()
    assert cache.get("s", 1) is MISSING and cache.get("s", 2) is MISSING
    assert cache.get_or_compute("s", 1, lambda: b"again") == b"again" and cache.stats["s"] == "miss"
    assert cache.get("s", 1) == b"again"
