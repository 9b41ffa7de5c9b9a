"""The torch training engine: learning, schedule, early stopping, balancing, inference, errors."""

from __future__ import annotations

import logging
import sys
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Subset, TensorDataset

sys.path.insert(0, str(Path(__file__).parent / "scripts"))

from engine_toys import CORNERS, ToyImages, tiny_cnn, toy_arrays
from sklearn.metrics import roc_auc_score

from medsight.errors import ConfigError, DataError, MedsightError
from medsight.train.engine import (
    EngineConfig,
    Trainer,
    class_weights,
    cpu_has_native_bf16,
    dataset_labels,
    epoch_seed,
    macro_auroc,
    warmup_cosine,
)

torch.set_num_threads(1)


def config(**overrides) -> EngineConfig:
    base = dict(
        epochs=6, batch_size=32, learning_rate=1e-2, warmup_epochs=1, patience=None, progress=False
    )
    return EngineConfig(**{**base, **overrides})


def toy(n: int, seed: int, n_classes: int = 2, **kwargs) -> ToyImages:
    return ToyImages(*toy_arrays(n, seed, n_classes), seed=seed, **kwargs)


def test_learns_a_separable_problem_and_reports_each_epoch() -> None:
    train, val = toy(192, 1), toy(96, 2)
    trainer = Trainer(tiny_cnn(), config(progress=True))
    result = trainer.fit(train, val)
    assert result.monitored == "val_auroc"
    assert result.best_score > 0.9
    assert result.epochs_run == 6 and not result.stopped_early
    assert [r.epoch for r in result.history] == [1, 2, 3, 4, 5, 6]
    assert all(r.train_images == 192 and r.images_per_second > 0 for r in result.history)
    assert result.history[-1].train_loss < result.history[0].train_loss
    # set_epoch was called once per epoch on both datasets
    assert train.epochs_seen == [1, 2, 3, 4, 5, 6] and val.epochs_seen == train.epochs_seen
    probs = trainer.predict_proba(toy(96, 3, augment=False))
    assert macro_auroc(toy_arrays(96, 3)[1].numpy(), probs) > 0.9


def test_sgd_with_nesterov_momentum_learns_the_same_problem() -> None:
    trainer = Trainer(tiny_cnn(), config(optimizer="sgd", learning_rate=0.05, weight_decay=5e-4))
    optimizer = trainer._make_optimizer()
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.defaults["nesterov"] and optimizer.defaults["momentum"] == 0.9
    assert optimizer.defaults["weight_decay"] == 5e-4
    result = trainer.fit(toy(192, 1), toy(96, 2))
    assert result.best_score > 0.9
    assert result.history[-1].train_loss < result.history[0].train_loss


def test_warmup_then_cosine_schedule() -> None:
    factors = [warmup_cosine(s, 10, 100) for s in range(100)]
    assert factors[0] == pytest.approx(0.1)
    assert factors[9] == pytest.approx(1.0) and max(factors) == pytest.approx(1.0)
    assert all(a < b for a, b in pairwise(factors[:10]))
    assert all(a >= b for a, b in pairwise(factors[10:]))
    assert factors[-1] < 0.01

    result = Trainer(tiny_cnn(), config(epochs=6, warmup_epochs=2)).fit(toy(96, 1), toy(48, 2))
    lrs = [r.learning_rate for r in result.history]
    assert lrs[0] < lrs[1] == pytest.approx(1e-2)  # the peak is reached at the end of warm-up
    assert all(a > b for a, b in pairwise(lrs[1:]))
    assert lrs[-1] < 0.05 * 1e-2


def test_early_stopping_stops_and_restores_the_best_weights(tmp_path: Path) -> None:
    x, _ = toy_arrays(96, 2)
    noise_labels = torch.from_numpy(np.random.default_rng(0).integers(0, 2, 96))
    val = ToyImages(x, noise_labels, augment=False)  # the val metric can only wander
    trainer = Trainer(tiny_cnn(), config(epochs=40, patience=3), checkpoint_dir=tmp_path)
    result = trainer.fit(toy(96, 1), val)
    assert result.stopped_early and result.epochs_run < 40
    assert result.best_epoch == result.epochs_run - 3
    assert result.best_score == max(r.score for r in result.history)
    assert result.best_epoch != result.history[-1].epoch
    restored = macro_auroc(noise_labels.numpy(), trainer.predict_proba(val))
    assert restored == pytest.approx(result.best_score, abs=1e-12)
    assert result.history[-1].score != pytest.approx(result.best_score, abs=1e-12)


def test_monitor_loss_uses_negative_validation_loss() -> None:
    result = Trainer(tiny_cnn(), config(epochs=3, monitor="loss")).fit(toy(96, 1), toy(48, 2))
    assert result.monitored == "-val_loss"
    assert result.best_score == pytest.approx(-min(r.val_loss for r in result.history))


def test_one_class_validation_falls_back_to_loss(caplog: pytest.LogCaptureFixture) -> None:
    x, y = toy_arrays(48, 2)
    val = ToyImages(x[y == 1], y[y == 1])
    with caplog.at_level(logging.WARNING, logger="medsight.train.engine"):
        result = Trainer(tiny_cnn(), config(epochs=2)).fit(toy(96, 1), val)
    assert result.monitored == "-val_loss"
    assert all(r.val_auroc is None and r.score == -r.val_loss for r in result.history)
    assert "AUROC is undefined" in caplog.text


def test_class_weights_from_training_counts() -> None:
    np.testing.assert_allclose(class_weights([30, 10]), [40 / 60, 40 / 20])
    np.testing.assert_allclose(class_weights([5, 0, 15]), [2.0, 0.0, 20 / 30])
    x, y = toy_arrays(400, 1)
    keep = torch.cat([torch.nonzero(y == 0)[:150, 0], torch.nonzero(y == 1)[:30, 0]])
    train = ToyImages(x[keep], y[keep])
    trainer = Trainer(tiny_cnn(), config(epochs=1))
    trainer.fit(train, toy(48, 2))
    assert trainer.class_weights is not None
    np.testing.assert_allclose(trainer.class_weights.numpy(), [180 / 300, 180 / 60], rtol=1e-6)
    trainer = Trainer(tiny_cnn(), config(epochs=1, class_balance="none"))
    trainer.fit(train, toy(48, 2))
    assert trainer.class_weights is None


def test_weighted_sampler_balances_what_training_sees() -> None:
    x, y = toy_arrays(400, 1)
    keep = torch.cat([torch.nonzero(y == 0)[:180, 0], torch.nonzero(y == 1)[:20, 0]])
    plain = ToyImages(x[keep], y[keep])
    Trainer(tiny_cnn(), config(epochs=3, class_balance="none")).fit(plain, toy(48, 2))
    assert np.mean(plain.fetched_labels[1:]) == pytest.approx(0.1)  # item 0 is the shape probe
    balanced = ToyImages(x[keep], y[keep])
    trainer = Trainer(tiny_cnn(), config(epochs=3, class_balance="sampler"))
    trainer.fit(balanced, toy(48, 2))
    assert trainer.class_weights is None  # the sampler balances, the loss is unweighted
    assert len(balanced.fetched_labels) == 1 + 3 * 200
    assert 0.4 < np.mean(balanced.fetched_labels[1:]) < 0.6


def test_predict_proba_rows_sum_to_one_and_identity_tta_changes_nothing() -> None:
    trainer = Trainer(tiny_cnn(), config(epochs=2))
    trainer.fit(toy(96, 1), toy(48, 2))
    test = toy(50, 3, augment=False)
    probs = trainer.predict_proba(test, batch_size=16)
    assert probs.shape == (50, 2) and probs.dtype == np.float64
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(trainer.predict_proba(test, tta=[lambda b: b]), probs, atol=1e-7)
    np.testing.assert_allclose(trainer.predict_proba(test.x), probs, atol=1e-6)  # a tensor works
    flipped = trainer.predict_proba(test.x, tta=[lambda b: torch.flip(b, dims=(3,))])
    np.testing.assert_allclose(flipped.sum(axis=1), 1.0, atol=1e-12)
    assert not np.allclose(flipped, probs)
    manual = (probs + trainer.predict_proba(torch.flip(test.x, dims=(3,)))) / 2
    np.testing.assert_allclose(flipped, manual, atol=1e-6)


def test_three_classes() -> None:
    trainer = Trainer(tiny_cnn(3), config(epochs=8, grad_clip=1.0, label_smoothing=0.05))
    result = trainer.fit(toy(192, 1, 3), toy(96, 2, 3))
    assert result.best_score > 0.85
    probs = trainer.predict_proba(toy(60, 3, 3, augment=False))
    assert probs.shape == (60, 3)
    assert macro_auroc(toy_arrays(60, 3, 3)[1].numpy(), probs) > 0.85


def test_custom_loss_function_replaces_cross_entropy() -> None:
    calls = []

    def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        calls.append(len(target))
        return nn.functional.cross_entropy(logits, target)

    trainer = Trainer(tiny_cnn(), config(epochs=1), loss_fn=loss_fn)
    trainer.fit(toy(64, 1), toy(32, 2))
    assert calls == [32, 32, 32]  # two training batches, then the whole validation set
    assert trainer.class_weights is None


def test_dataset_labels_from_attributes_subsets_and_items() -> None:
    x, y = toy_arrays(20, 1)
    plain = TensorDataset(x, y)
    np.testing.assert_array_equal(dataset_labels(plain), y.numpy())
    np.testing.assert_array_equal(dataset_labels(Subset(plain, [3, 1])), y[[3, 1]].numpy())
    np.testing.assert_array_equal(dataset_labels(ToyImages(x, y)), y.numpy())
    # items labelled by a one-element tensor are still one class each; vectors are findings
    np.testing.assert_array_equal(dataset_labels(TensorDataset(x, y[:, None])), y.numpy())
    findings = torch.stack([y, 1 - y], dim=1)
    np.testing.assert_array_equal(dataset_labels(TensorDataset(x, findings)), findings.numpy())
    with pytest.raises(DataError, match="integer class indices"):
        dataset_labels(TensorDataset(x, torch.full((20,), 0.5)))
    with pytest.raises(DataError, match="not an \\(x, label\\) pair"):
        dataset_labels(TensorDataset(x))


def test_bad_inputs_raise_clear_errors(tmp_path: Path) -> None:
    good = toy(32, 1)
    empty = ToyImages(torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.long))
    with pytest.raises(DataError, match="training dataset is empty"):
        Trainer(tiny_cnn(), config()).fit(empty, good)
    with pytest.raises(DataError, match="validation dataset is empty"):
        Trainer(tiny_cnn(), config()).fit(good, empty)
    x, y = toy_arrays(32, 1, n_classes=3)
    with pytest.raises(DataError, match=r"label\(s\) \[2\] outside 0..1.*2 logits"):
        Trainer(tiny_cnn(2), config()).fit(ToyImages(x, y), good)
    with pytest.raises(DataError, match="validation dataset has label"):
        Trainer(tiny_cnn(2), config()).fit(good, ToyImages(x, y))
    with pytest.raises(ConfigError, match="n_classes >= 2"):
        Trainer(tiny_cnn(1), config()).fit(good, good)
    with pytest.raises(ConfigError, match="checkpoint_dir"):
        Trainer(tiny_cnn(), config()).fit(good, good, resume=True)
    if not cpu_has_native_bf16():
        with pytest.raises(ConfigError, match="amp='on' on the CPU needs native bf16"):
            Trainer(tiny_cnn(), config(amp="on", device="cpu"))
    with pytest.raises(DataError, match="empty"):
        Trainer(tiny_cnn(), config()).predict_proba(empty)


@pytest.mark.parametrize(
    "field, value",
    [
        ("epochs", 0),
        ("batch_size", 0),
        ("learning_rate", 0.0),
        ("patience", 0),
        ("monitor", "accuracy"),
        ("class_balance", "oversample"),
        ("label_smoothing", 1.0),
        ("grad_clip", -1.0),
        ("amp", "yes"),
        ("seed", -1),
        ("ema_decay", 1.0),
        ("ema_decay", 0.0),
        ("swa_start", 0.0),
        ("swa_start", 1.0),
        ("mixup_alpha", -0.5),
        ("optimizer", "adam"),
    ],
)
def test_invalid_config_values(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"EngineConfig.{field}="):
        EngineConfig(**{field: value})


def test_non_finite_loss_names_the_epoch_and_keeps_the_last_good_checkpoint(
    tmp_path: Path,
) -> None:
    x, y = toy_arrays(64, 1)
    with pytest.raises(MedsightError, match=r"non-finite|nan") as info:
        Trainer(tiny_cnn(), config(epochs=3)).fit(ToyImages(x, y, nan_epoch=1), toy(32, 2))
    assert "epoch 1" in str(info.value)
    trainer = Trainer(tiny_cnn(), config(epochs=3), checkpoint_dir=tmp_path)
    with pytest.raises(MedsightError, match="epoch 2"):
        trainer.fit(ToyImages(x, y, nan_epoch=2), toy(32, 2))
    saved = torch.load(tmp_path / "last.pt", weights_only=True)
    assert saved["epoch"] == 1


def test_ema_keeps_the_moving_average_of_the_raw_trajectory() -> None:
    """The kept weights are e_1 = w_1, e_k = d e_(k-1) + (1 - d) w_k over the optimiser steps,
    and EMA does not change the raw trajectory (the same steps as a run without it)."""
    decay = 0.7
    seen: list[dict[str, torch.Tensor]] = []

    def snapshot(module: nn.Module, _inputs: object) -> None:
        if module.training:  # weights before each training step = after the previous one
            seen.append({k: v.detach().clone() for k, v in module.named_parameters()})

    train, val = toy(64, 1), toy(32, 2)
    raw = Trainer(tiny_cnn(seed=3), config(epochs=1, batch_size=16))
    raw.model.register_forward_pre_hook(snapshot)
    raw.fit(train, val)
    steps = [*seen[1:], {k: v.detach().clone() for k, v in raw.model.named_parameters()}]
    assert len(steps) == 4

    expected = dict(steps[0])
    for weights in steps[1:]:
        expected = {k: decay * expected[k] + (1 - decay) * weights[k] for k in expected}

    averaged = Trainer(tiny_cnn(seed=3), config(epochs=1, batch_size=16, ema_decay=decay))
    averaged.fit(toy(64, 1), toy(32, 2))
    kept = dict(averaged.model.named_parameters())
    for name, tensor in expected.items():
        torch.testing.assert_close(kept[name].detach(), tensor, rtol=0, atol=1e-6)
        assert not torch.allclose(kept[name], steps[-1][name]), name


def test_swa_cannot_be_combined_with_ema() -> None:
    with pytest.raises(ConfigError, match=r"swa_start.*ema_decay"):
        EngineConfig(swa_start=0.5, ema_decay=0.9)


def test_swa_keeps_an_equal_average_of_the_epochs_from_its_start() -> None:
    """With 4 epochs and swa_start 0.5 the kept weights and BatchNorm buffers are w_3 or
    (w_3 + w_4) / 2 of the raw end-of-epoch weights, whichever validated better, and the raw
    trajectory is that of a run without averaging."""
    ends: list[dict[str, torch.Tensor]] = []
    raw = Trainer(tiny_cnn(seed=3), config(epochs=4, batch_size=16))
    validate = raw._validate

    def recording(model: nn.Module, *args: object) -> object:
        ends.append(_state(model))  # without averaging, validation sees the raw weights
        return validate(model, *args)

    raw._validate = recording  # type: ignore[method-assign]
    raw.fit(toy(64, 1), toy(32, 2))
    assert len(ends) == 4
    w3, w4 = ends[2], ends[3]

    averaged = Trainer(tiny_cnn(seed=3), config(epochs=4, batch_size=16, swa_start=0.5))
    result = averaged.fit(toy(64, 1), toy(32, 2))
    assert averaged.first_kept_epoch == 3 and result.best_epoch in (3, 4)
    expected = w3 if result.best_epoch == 3 else {k: (w3[k] + w4[k]) / 2 for k in w3}
    kept = _state(averaged.model)
    for name, tensor in kept.items():
        if tensor.is_floating_point():
            torch.testing.assert_close(tensor, expected[name], rtol=0, atol=1e-6)
    if result.best_epoch == 4:
        assert any(not torch.allclose(kept[k], w4[k]) for k in kept if kept[k].is_floating_point())


def _state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_mixup_trains_on_blends_of_example_pairs_weighted_from_beta() -> None:
    """Every image the network trains on is lam * a + (1 - lam) * b for two training images,
    with lam the Beta(alpha, alpha) draw of the (seed, epoch, rank) generator."""
    x, y = toy_arrays(16, 1)
    seen: list[torch.Tensor] = []

    def capture(module: nn.Module, inputs: tuple[torch.Tensor]) -> None:
        if module.training:
            seen.append(inputs[0].detach().clone())

    mixing = config(epochs=1, batch_size=16, mixup_alpha=0.4, seed=4)
    trainer = Trainer(tiny_cnn(seed=3), mixing)
    trainer.model.register_forward_pre_hook(capture)
    trainer.fit(TensorDataset(x, y), toy(32, 2))
    assert len(seen) == 1
    lam = np.random.default_rng(epoch_seed(4, 1, 0, 1)).beta(0.4, 0.4)  # seed 4, epoch 1, rank 0
    assert 0.05 < lam < 0.95  # a real blend for this seed, so the check below can fail
    flat = x.reshape(16, -1).double()
    blends = lam * flat[:, None] + (1 - lam) * flat[None, :]  # every ordered pair (a, b)
    trained = seen[0].reshape(16, -1).double()
    distance = (trained[:, None, None] - blends[None]).abs().amax(-1)  # (16, 16, 16)
    assert distance.flatten(1).amin(1).max() < 1e-5
    assert (trained[:, None] - flat[None]).abs().amax(-1).amin(1).min() > 0.1  # none unmixed

    again = Trainer(tiny_cnn(seed=3), config(epochs=2, batch_size=16, mixup_alpha=0.4))
    twice = Trainer(tiny_cnn(seed=3), config(epochs=2, batch_size=16, mixup_alpha=0.4))
    plain = Trainer(tiny_cnn(seed=3), config(epochs=2, batch_size=16))
    for t in (again, twice, plain):
        t.fit(TensorDataset(x, y), toy(32, 2))
    for name, tensor in again.model.state_dict().items():
        assert torch.equal(tensor, twice.model.state_dict()[name]), name
    mixed, unmixed = again.model.state_dict(), plain.model.state_dict()
    assert any(not torch.equal(mixed[k], unmixed[k]) for k in mixed)


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no native bf16")
def test_bf16_autocast_on_a_cpu_that_has_it() -> None:
    trainer = Trainer(tiny_cnn(), config(amp="on", device="cpu"))
    assert trainer.amp_dtype == torch.bfloat16
    result = trainer.fit(toy(192, 1), toy(96, 2))
    assert result.best_score > 0.9
    probs = trainer.predict_proba(toy(96, 3, augment=False))
    assert probs.dtype == np.float64 and np.allclose(probs.sum(axis=1), 1.0)


@pytest.mark.parametrize("native", [True, False])
def test_native_amp_follows_the_cpu(native: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    # "native" is bf16 where the CPU has it and float32 (no error) where it does not
    monkeypatch.setattr("medsight.train.engine.cpu_has_native_bf16", lambda: native)
    trainer = Trainer(tiny_cnn(), config(amp="native", device="cpu"))
    assert trainer.amp_dtype == (torch.bfloat16 if native else None)
    assert Trainer(tiny_cnn(), config(amp="auto", device="cpu")).amp_dtype is None


def test_channels_last_changes_the_memory_layout_not_the_result() -> None:
    strides, probabilities = {}, {}
    for last in (True, False):
        trainer = Trainer(tiny_cnn(), config(channels_last=last))
        strides[last] = trainer.model.features[0].weight.stride()  # (6, 1, 3, 3)
        probabilities[last] = trainer.predict_proba(toy(96, 3, augment=False))
    assert strides == {True: (9, 1, 3, 1), False: (9, 9, 3, 1)}  # channels stored last or not
    assert np.allclose(probabilities[True], probabilities[False], atol=1e-6)
    # training draws dropout masks in memory order, so the runs differ, but both learn
    result = Trainer(tiny_cnn(), config(channels_last=True)).fit(toy(192, 1), toy(96, 2))
    assert result.best_score > 0.9


def _multi_label_toys(n: int, seed: int) -> TensorDataset:
    """8x8 noise images with up to 3 findings at once: finding k adds a patch at CORNERS[k]."""
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(n, 3, generator=g) < 0.4).long()
    x = torch.randn(n, 1, 8, 8, generator=g)
    for k, (r, c) in enumerate(CORNERS[:3]):
        x[y[:, k] == 1, :, r : r + 3, c : c + 3] += 1.5
    return TensorDataset(x, y)


def test_multi_label_learns_each_finding_with_its_own_sigmoid() -> None:
    train, val, test = (_multi_label_toys(n, s) for n, s in ((240, 1), (96, 2), (96, 3)))
    trainer = Trainer(tiny_cnn(3), config(epochs=8, multi_label=True, label_smoothing=0.05))
    result = trainer.fit(train, val)
    assert result.monitored == "val_auroc" and result.best_score > 0.9
    positives = train.tensors[1].sum(0).double()
    expected = (240 - positives) / positives  # each finding's positives weighted up to balance
    np.testing.assert_allclose(trainer.class_weights.numpy(), expected.numpy(), rtol=1e-6)
    probs = trainer.predict_proba(test.tensors[0], tta=[lambda b: torch.flip(b, dims=(3,))])
    assert probs.shape == (96, 3) and ((probs > 0) & (probs < 1)).all()
    assert not np.allclose(probs.sum(axis=1), 1.0)  # independent findings, not one class
    labels = test.tensors[1].numpy()
    assert macro_auroc(labels, probs) > 0.9
    assert macro_auroc(labels, probs) == pytest.approx(
        np.mean([roc_auc_score(labels[:, k], probs[:, k]) for k in range(3)])
    )


def test_multi_label_needs_matching_label_vectors_and_no_sampler() -> None:
    train, val = _multi_label_toys(64, 1), _multi_label_toys(32, 2)
    with pytest.raises(DataError, match="multi_label=True"):
        Trainer(tiny_cnn(3), config(epochs=1)).fit(train, val)
    with pytest.raises(DataError, match=r"shape \(N, 2\)"):
        Trainer(tiny_cnn(2), config(epochs=1, multi_label=True)).fit(train, val)
    with pytest.raises(ConfigError, match="sampler"):
        config(multi_label=True, class_balance="sampler")
    twos = TensorDataset(train.tensors[0], train.tensors[1] * 2)
    with pytest.raises(DataError, match="must be 0 or 1"):
        Trainer(tiny_cnn(3), config(epochs=1, multi_label=True)).fit(twos, val)
