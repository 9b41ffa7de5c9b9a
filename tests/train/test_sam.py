"""Sharpness-aware minimisation: the perturbed point, its undoing, and the engine's SAM step."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook
from torch.utils.data import TensorDataset

sys.path.insert(0, str(Path(__file__).parent / "scripts"))

from engine_toys import tiny_cnn, toy_arrays

from medsight.config import EngineSettings
from medsight.errors import ConfigError
from medsight.train.engine import EngineConfig, Trainer
from medsight.train.sam import sharpness_aware_point
from medsight.train.settings import engine_config

torch.set_num_threads(1)


def _net(seed: int = 0) -> nn.Sequential:
    """Conv, BatchNorm, ReLU, pooling, linear; no dropout, so a gradient can be recomputed."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16, 2),
    )


def _gradients(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    net.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(net(x), y).backward()
    return [p.grad.detach().clone() for p in net.parameters()]


def test_the_point_is_rho_along_the_gradient_and_the_weights_come_back_exactly() -> None:
    x, y = toy_arrays(16, 1)
    net = _net().train()
    grads = _gradients(net, x, y)
    before = [p.detach().clone() for p in net.parameters()]
    stats = {k: v.clone() for k, v in net.state_dict().items() if "running" in k or "batches" in k}
    norm = torch.linalg.vector_norm(torch.cat([g.flatten() for g in grads]))
    with sharpness_aware_point(net, 0.05) as moved:
        assert moved
        shift = torch.cat(
            [(p - b).flatten() for p, b in zip(net.parameters(), before, strict=True)]
        )
        expected = torch.cat([g.flatten() for g in grads]) * (0.05 / norm)
        assert torch.allclose(shift, expected, atol=1e-7)
        assert torch.linalg.vector_norm(shift).item() == pytest.approx(0.05, rel=1e-4)
        net(x)  # a training-mode forward at the point leaves BatchNorm's statistics alone
    for name, value in stats.items():
        assert torch.equal(net.state_dict()[name], value), name
    for param, original in zip(net.parameters(), before, strict=True):
        assert torch.equal(param, original)
    net(x)  # outside, the statistics move again (so the check above can fail)
    assert not torch.equal(net.state_dict()["1.running_mean"], stats["1.running_mean"])
    assert net.state_dict()["1.num_batches_tracked"].item() == 2


def test_no_usable_gradient_moves_nothing() -> None:
    net = _net()
    before = [p.detach().clone() for p in net.parameters()]
    with sharpness_aware_point(net, 0.05) as moved:  # no backward yet
        assert not moved
    for param in net.parameters():
        param.grad = torch.full_like(param, float("inf"))
    with sharpness_aware_point(net, 0.05) as moved:  # an fp16 overflow, say
        assert not moved
        assert all(torch.equal(p, b) for p, b in zip(net.parameters(), before, strict=True))
    with pytest.raises(ValueError, match="rho"), sharpness_aware_point(net, 0.0):
        pass


def _sam_config(**overrides: object) -> EngineConfig:
    base = dict(
        epochs=1,
        batch_size=16,
        learning_rate=1e-2,
        warmup_epochs=0,
        patience=None,
        progress=False,
        class_balance="none",
        sam_rho=0.5,
    )
    return EngineConfig(**{**base, **overrides})


def test_the_engine_steps_with_the_gradient_at_the_perturbed_weights() -> None:
    x, y = toy_arrays(16, 1)
    net = _net(seed=2)
    start = copy.deepcopy(net)
    captured: dict[str, list[torch.Tensor]] = {}

    def before_step(optimizer: torch.optim.Optimizer, args: object, kwargs: object) -> None:
        params = [p for group in optimizer.param_groups for p in group["params"]]
        captured["weights"] = [p.detach().clone() for p in params]
        captured["grads"] = [p.grad.detach().clone() for p in params]

    handle = register_optimizer_step_pre_hook(before_step)
    try:
        Trainer(net, _sam_config(channels_last=False)).fit(TensorDataset(x, y), TensorDataset(x, y))
    finally:
        handle.remove()
    # one batch, so one step from the starting weights; the batch order does not change BatchNorm
    # batch statistics or a mean loss, so the reference can use the batch as given
    for weight, original in zip(captured["weights"], start.parameters(), strict=True):
        assert torch.equal(weight, original)
    reference = start.train()
    plain = _gradients(reference, x, y)
    norm = torch.linalg.vector_norm(torch.cat([g.flatten() for g in plain]))
    with torch.no_grad():
        for param, grad in zip(reference.parameters(), plain, strict=True):
            param.add_(grad * (0.5 / norm))
    perturbed = _gradients(reference, x, y)
    for got, want in zip(captured["grads"], perturbed, strict=True):
        assert torch.allclose(got, want, atol=1e-5)
    assert any(not torch.allclose(g, p, atol=1e-3) for g, p in zip(perturbed, plain, strict=True))


def test_both_passes_see_the_same_mixup_blend_and_batchnorm_counts_each_batch_once() -> None:
    x, y = toy_arrays(48, 1)
    seen: list[torch.Tensor] = []

    def capture(module: nn.Module, inputs: tuple[torch.Tensor]) -> None:
        if module.training:
            seen.append(inputs[0].detach().clone())

    trainer = Trainer(tiny_cnn(seed=3), _sam_config(mixup_alpha=0.4, sam_rho=0.05, epochs=2))
    trainer.model.register_forward_pre_hook(capture)
    trainer.fit(TensorDataset(x, y), TensorDataset(x, y))
    steps = 2 * 3  # 2 epochs of 48 / 16 batches
    assert len(seen) == 2 * steps
    for first, second in zip(seen[0::2], seen[1::2], strict=True):
        assert torch.equal(first, second)
    assert not torch.equal(seen[0], seen[2])
    tracked = trainer.model.state_dict()["features.1.num_batches_tracked"].item()
    assert tracked == steps


def test_sam_rho_is_checked_and_reaches_the_engine() -> None:
    with pytest.raises(ConfigError, match="sam_rho"):
        EngineConfig(sam_rho=0.0)
    settings = EngineSettings(sam_rho=0.05)
    assert engine_config(settings, seed=0, n_train=100).sam_rho == 0.05
    assert engine_config(EngineSettings(), seed=0, n_train=100).sam_rho is None
