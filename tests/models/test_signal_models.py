"""ECG rhythm networks and the crop/window datasets that feed them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medsight.models.registry import create_model, list_models
from medsight.models.signal import MIN_SAMPLES
from medsight.transforms.ecg import (
    EcgCropDataset,
    EcgWindowDataset,
    average_by_record,
    fit_length,
    window_starts,
)

SIGNAL_MODELS = ["ecg_resnet1d", "ecg_cnn_bilstm"]


@pytest.mark.parametrize("name", SIGNAL_MODELS)
def test_networks_take_any_length_and_standardise_each_record(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, in_channels=1, num_classes=4, width=8).eval()
    with torch.no_grad():
        for length in (MIN_SAMPLES, 3000):
            assert model(torch.randn(2, 1, length)).shape == (2, 4)
        x = torch.randn(3, 1, 1500)
        # millivolt offset and gain do not matter: standardisation is part of the model
        assert torch.allclose(model(x), model(3.0 * x + 0.7), atol=1e-4)
    assert {entry.name for entry in list_models("signal")} >= set(SIGNAL_MODELS)


def test_short_records_are_tiled_and_windows_cover_the_record() -> None:
    signal = np.arange(5, dtype=np.float32)[None]
    assert fit_length(signal, 12).tolist() == [[0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]]
    assert fit_length(signal, 3, start=2).tolist() == [[2, 3, 4]]
    assert window_starts(100, 40, 20) == [0, 20, 40, 60]
    assert window_starts(105, 40, 20) == [0, 20, 40, 60, 65]  # the last window ends flush
    assert window_starts(30, 40, 20) == [0]


def test_training_crops_are_reproducible_per_epoch() -> None:
    rng = np.random.default_rng(0)
    signals = [rng.normal(size=(1, n)).astype(np.float32) for n in (900, 1200, 300)]
    labels = np.array([0, 1, 2])
    data = EcgCropDataset(signals, labels, 500, train=True, seed=3)
    first = [data[i][0] for i in range(3)]
    again = EcgCropDataset(signals, labels, 500, train=True, seed=3)
    assert all(torch.equal(a, again[i][0]) for i, a in enumerate(first))
    data.set_epoch(1)
    assert not torch.equal(first[1], data[1][0])  # a new crop next epoch
    assert all(x.shape == (1, 500) for x in first)
    centred = EcgCropDataset(signals, labels, 500)[0][0]
    assert torch.equal(centred, torch.from_numpy(signals[0][:, 200:700]))


def test_window_probabilities_average_per_record() -> None:
    signals = [np.zeros((1, 100), np.float32), np.zeros((1, 30), np.float32)]
    windows = EcgWindowDataset(signals, 40, 20)
    assert windows.owner.tolist() == [0, 0, 0, 0, 1]
    probabilities = np.array([[1, 0], [0, 1], [1, 0], [1, 0], [0.2, 0.8]])
    averaged = average_by_record(probabilities, windows.owner, 2)
    assert averaged.tolist() == [[0.75, 0.25], [0.2, 0.8]]
