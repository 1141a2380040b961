"""n:m sparsity: the pattern, training with masks, and the honest report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgepipe.errors import ConfigError
from edgepipe.prune import PruneSettings, apply_mn_sparsity, finetune
from edgepipe.prune.mn_sparsity import mn_mask

MN = PruneSettings(method="mn", n=2, m=4)


def test_mask_keeps_the_n_largest_of_every_m_inputs():
    kernel = np.random.default_rng(0).normal(size=(3, 3, 8, 5))
    mask = mn_mask(kernel, 2, 4)
    blocks = np.moveaxis(mask, -2, -1).reshape(3, 3, 5, 2, 4)
    assert (blocks.sum(axis=-1) == 2).all()
    mags = np.moveaxis(np.abs(kernel), -2, -1).reshape(3, 3, 5, 2, 4)
    kept_min = np.where(blocks, mags, np.inf).min(axis=-1)
    dropped_max = np.where(blocks, -np.inf, mags).max(axis=-1)
    assert (kept_min >= dropped_max).all()


def test_a_short_last_block_keeps_its_largest_n():
    kernel = np.array([[1.0], [-5.0], [2.0], [0.5], [3.0], [-0.1]])  # 6 inputs, 1 output
    assert mn_mask(kernel, 2, 4)[:, 0].tolist() == [False, True, True, False, True, True]


@pytest.fixture(scope="module")
def sparse(digits_model):
    return apply_mn_sparsity(digits_model, MN)


def test_eligible_kernels_are_half_zero_and_the_rest_is_reported(sparse):
    assert {row.name for row in sparse.layers} == {"conv", "hidden"}
    assert all(row.sparsity == pytest.approx(0.5) for row in sparse.layers)
    assert {s.name: s.reason for s in sparse.skipped} == {
        "stem": "excluded", "classifier": "excluded"
    }
    data = json.loads(json.dumps(sparse.to_dict()))
    assert data["sparsity"] == pytest.approx(0.5) and data["n"] == 2 and data["m"] == 4
    assert "same size" in data["statement"] and "latency" in data["statement"]


def test_the_original_model_keeps_its_weights(sparse, digits_model):
    assert (np.asarray(digits_model.get_layer("conv").kernel) != 0).all()
    assert sparse.model.get_layer("conv").count_params() == digits_model.get_layer("conv").count_params()


def test_training_keeps_the_pattern(sparse, digits_model, digit_split):
    before = np.asarray(sparse.model.get_layer("hidden").kernel) == 0
    settings = PruneSettings(method="mn", finetune={"epochs": 1, "learning_rate": 1e-2})
    finetune(sparse.model, digits_model, digit_split[0], None, settings)
    after = np.asarray(sparse.model.get_layer("hidden").kernel) == 0
    np.testing.assert_array_equal(before, after)
    sparse.model.compile("sgd", "sparse_categorical_crossentropy")
    sparse.model.fit(*digit_split[0], epochs=1, batch_size=256, verbose=0)  # plain Keras training too
    np.testing.assert_array_equal(before, np.asarray(sparse.model.get_layer("hidden").kernel) == 0)


def test_channel_method_is_refused(digits_model):
    with pytest.raises(ConfigError, match="prune_model"):
        apply_mn_sparsity(digits_model, PruneSettings(method="channel"))
