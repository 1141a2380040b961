"""Firmware sources and manifest: compiled with the system C++ compiler, bytes checked.

What is compiled against real TFLM and what is not: ``model_data.cc`` and
``model_data.h`` need no TFLM and are compiled and run as they are. The op
resolver header includes ``tensorflow/lite/micro/micro_mutable_op_resolver.h``,
which is not on this machine; it is compiled against the stub below, whose
``Add*`` names were copied by hand from TFLM's header (2025), so the test checks
the generated C++ and the method names for this model's ops, not TFLM itself.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess

import pytest

from edgepipe.emit.c_sources import emit_c_sources
from edgepipe.emit.manifest import build_manifest, write_manifest
from edgepipe.errors import InputError
from edgepipe.runtimes.tflm_ops import ADD_METHODS

GXX = shutil.which("g++")

STUB_RESOLVER = """
#pragma once
typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;
namespace tflite {
template <unsigned int tOpCount>
class MicroMutableOpResolver {
 public:
  unsigned int count = 0;
  TfLiteStatus AddAdd() { return Add(); }
  TfLiteStatus AddAveragePool2D() { return Add(); }
  TfLiteStatus AddConv2D() { return Add(); }
  TfLiteStatus AddDepthwiseConv2D() { return Add(); }
  TfLiteStatus AddFullyConnected() { return Add(); }
  TfLiteStatus AddMaxPool2D() { return Add(); }
  TfLiteStatus AddReshape() { return Add(); }
  TfLiteStatus AddSoftmax() { return Add(); }
 private:
  TfLiteStatus Add() { return ++count <= tOpCount ? kTfLiteOk : kTfLiteError; }
};
}  // namespace tflite
"""

MAIN = r"""
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>
#include "model_data.h"
#include "model_op_resolver.h"

int main(int argc, char** argv) {
  if (argc != 2) return 10;
  std::ifstream f(argv[1], std::ios::binary);
  std::vector<unsigned char> want((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (g_model_len != want.size()) return 1;
  if (reinterpret_cast<std::uintptr_t>(g_model) % 16 != 0) return 2;
  if (std::memcmp(g_model, want.data(), want.size()) != 0) return 3;
  if (kTensorArenaSize % 16 != 0) return 4;
  edgepipe::ModelOpResolver resolver;
  if (edgepipe::RegisterModelOps(resolver) != kTfLiteOk) return 5;
  if (resolver.count != edgepipe::kModelOpCount) return 6;
  std::printf("ok %u %zu %s\n", g_model_len, kTensorArenaSize, kModelSha256);
  return 0;
}
"""


@pytest.fixture(scope="module")
def emitted(tflite, tmp_path_factory):
    model = tflite("cnn_int8")
    out = tmp_path_factory.mktemp("firmware")
    paths = emit_c_sources(model.data, out, model.op_counts, arena_bytes=21101)
    return model, out, paths


def test_emits_three_files_atomically(emitted):
    _, out, paths = emitted
    assert [p.name for p in paths] == ["model_data.h", "model_data.cc", "model_op_resolver.h"]
    assert all(p.is_file() for p in paths)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


def test_resolver_lists_exactly_the_model_ops(emitted):
    model, out, _ = emitted
    text = (out / "model_op_resolver.h").read_text()
    assert f"kModelOpCount = {len(model.op_counts)};" in text
    for op in model.op_counts:
        assert f"resolver.{ADD_METHODS[op]}()" in text
    assert text.count("resolver.Add") == len(model.op_counts)
    assert "kTensorArenaSize = 21104;" in (out / "model_data.h").read_text()  # rounded up to 16


@pytest.mark.skipif(GXX is None, reason="needs g++")
def test_generated_sources_compile_and_hold_the_model_bytes(emitted, mcu_models):
    model, out, _ = emitted
    stub = out / "stub" / "tensorflow" / "lite" / "micro"
    stub.mkdir(parents=True)
    (stub / "micro_mutable_op_resolver.h").write_text(STUB_RESOLVER)
    (out / "main.cc").write_text(MAIN)
    flags = ["-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic"]
    subprocess.run([GXX, *flags, "-c", "model_data.cc", "-o", "model_data.o"], cwd=out, check=True)
    subprocess.run([GXX, *flags, "-I", "stub", "main.cc", "model_data.o", "-o", "check"], cwd=out, check=True)
    run = subprocess.run([str(out / "check"), str(mcu_models["cnn_int8"])], capture_output=True, text=True)
    assert run.returncode == 0, f"check exited {run.returncode}"
    assert run.stdout.split() == ["ok", str(model.size), "21104", model.sha256]


def test_ops_without_a_tflm_method_are_refused(tflite, tmp_path):
    model = tflite("gelu_int8")
    with pytest.raises(InputError, match="GELU"):
        emit_c_sources(model.data, tmp_path, model.op_counts, 1024)
    assert list(tmp_path.iterdir()) == []


def test_ethos_u_custom_op_registers_the_npu_kernel(tmp_path, tflite):
    emit_c_sources(tflite("cnn_int8").data, tmp_path, ["CUSTOM:ethos-u"], 4096)
    assert "resolver.AddEthosU()" in (tmp_path / "model_op_resolver.h").read_text()


def test_bad_symbol_is_refused(tflite, tmp_path):
    with pytest.raises(InputError, match="C identifier"):
        emit_c_sources(tflite("cnn_int8").data, tmp_path, ["ADD"], 1024, symbol="model-data")


def test_manifest_hashes_every_artifact_and_names_tools(emitted, target):
    model, out, paths = emitted
    path = write_manifest(out, paths, target("stm32h7"), extra={"arena_bytes": 19168})
    doc = json.loads(path.read_text())
    assert doc["schema"] == "edgepipe.manifest/1" and doc["target"] == "stm32h7"
    assert {a["path"] for a in doc["artifacts"]} == {"model_data.h", "model_data.cc", "model_op_resolver.h"}
    for a in doc["artifacts"]:
        assert a["sha256"] == hashlib.sha256((out / a["path"]).read_bytes()).hexdigest()
    assert doc["tools"]["tflite-micro"] and doc["tools"]["ethos-u-vela"] and doc["tools"]["ai-edge-litert"]
    assert doc["budgets"] == {"flash_bytes": 1024 * 1024, "ram_bytes": 512 * 1024, "latency_s": 0.05}
    assert doc["arena_bytes"] == 19168
    assert build_manifest(out, paths, target("stm32h7"), {"arena_bytes": 19168}) == doc  # deterministic
