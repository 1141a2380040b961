"""Calibration data that does not look like the eval data: a warning, or an error when blatant."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from edgepipe.data.calibration import check_calibration_range
from edgepipe.errors import InputError


def test_0_255_calibration_for_0_1_eval_data_is_an_error_saying_what_was_seen(digits):
    x_tr, _, x_ev, _ = digits
    with pytest.raises(InputError) as err:
        check_calibration_range(x_tr * 255, "calib.npz[x]", x_ev, "eval.npz[x]")
    msg = str(err.value)
    assert "representative data calib.npz[x]" in msg and "values in [0, 255]" in msg
    assert "eval data eval.npz[x]" in msg and "values in [0, 1]" in msg and "255 times" in msg
    assert "preprocess" in msg


def test_a_smaller_mismatch_is_a_warning_and_matching_data_is_silent(digits):
    x_tr, _, x_ev, _ = digits
    warnings = check_calibration_range(x_tr * 3, "calib", x_ev, "eval")
    assert len(warnings) == 1 and "spread is 3 times that of the eval data eval" in warnings[0]
    assert check_calibration_range(x_tr, "calib", x_ev, "eval") == []
    shifted = check_calibration_range(x_tr + 5, "calib", x_ev, "eval")
    assert len(shifted) == 1 and "barely overlaps" in shifted[0]


def test_without_eval_data_raw_8_bit_pixels_get_a_note(digits):
    pixels = np.round(digits[0][:50] * 255)
    assert "looks like raw 8-bit pixels" in check_calibration_range(pixels, "calib")[0]
    assert check_calibration_range(digits[0][:50], "calib") == []


def test_a_memory_mapped_set_is_sampled_not_read_whole(tmp_path, digits):
    np.save(tmp_path / "x.npy", np.concatenate([digits[0]] * 3))
    big = np.load(tmp_path / "x.npy", mmap_mode="r")
    assert check_calibration_range(big, "x.npy", digits[2], "eval") == []


def test_the_build_records_the_warning_and_a_blatant_mismatch_exits_2(tmp_path, tiny_model_path, digits):
    import edgepipe
    from ep_helpers import write_project
    from edgepipe.cli import cli
    from edgepipe.pipeline.progress import Progress

    x_tr, _, x_ev, y_ev = digits
    np.savez(tmp_path / "warn.npz", x=x_tr[:100] * 3, x_eval=x_ev[:80], y_eval=y_ev[:80])
    np.savez(tmp_path / "blatant.npz", x=x_tr[:100] * 255, x_eval=x_ev[:80], y_eval=y_ev[:80])

    class Notes(Progress):
        seen: list = []

        def note(self, message):
            self.seen.append(message)

    cfg = write_project(tmp_path, tiny_model_path, tmp_path / "warn.npz")
    result = edgepipe.build("rpi4", cfg, out=tmp_path / "out", progress=Notes())
    assert any("spread is 3 times" in n for n in result.report.notes)
    assert any("spread is 3 times" in n for n in Notes.seen)
    cfg = write_project(tmp_path, tiny_model_path, tmp_path / "blatant.npz")
    res = CliRunner().invoke(cli, ["build", "-t", "rpi4", "-c", str(cfg), "-o", str(tmp_path / "out2")])
    assert res.exit_code == 2 and "255 times that of the eval data" in res.output
    assert not (tmp_path / "out2" / "model.tflite").exists()
