"""`verify` names missing preprocessing: data outside the model's calibrated input range."""

import edgepipe


def test_raw_pixels_for_a_model_calibrated_on_unit_range_get_a_note(tiny_build, data_npz):
    model = tiny_build.artifacts["model.tflite"]
    raw = edgepipe.verify(model, "rpi4", data_npz, x_key="x_eval", y_key="y_eval", scale=16.0)
    assert any("saturate" in n and "--scale" in n for n in raw.report.notes), raw.report.notes
    right = edgepipe.verify(model, "rpi4", data_npz, x_key="x_eval", y_key="y_eval")
    assert not any("saturate" in n for n in right.report.notes)
    acc_raw = raw.report.to_dict()["accuracy"]["quantized"]["top1"]
    acc_right = right.report.to_dict()["accuracy"]["quantized"]["top1"]
    assert acc_raw < acc_right - 3, "the note explains a real accuracy loss"
