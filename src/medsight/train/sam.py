"""Sharpness-aware minimisation (Foret et al., ICLR 2021) around any torch optimiser.

SAM takes each step with the gradient at the worst point of a small L2 ball around the weights:
climb ``rho`` along the normalised gradient, take the gradient there, come back, and let the
optimiser step with it. It is written here because no maintained library ships it for torch
(the authors' code is JAX, the common torch port a research repository); the arithmetic is
these few lines, and keeping it a context manager lets the engine keep its own optimiser,
schedule, gradient scaler, clipping and DDP unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

EPSILON = 1e-12


def _copy(tensor: torch.Tensor | None) -> torch.Tensor | None:
    return None if tensor is None else tensor.clone()


@contextlib.contextmanager
def frozen_batchnorm_statistics(module: nn.Module) -> Iterator[None]:
    """Forward passes inside leave every BatchNorm's running mean, variance and count as they
    were, so that SAM's second pass per step does not count the batch twice."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, _copy(m.num_batches_tracked)) for m in norms]
    for norm in norms:
        norm.momentum = 0.0  # running = (1 - 0) * running + 0 * batch
    try:
        yield
    finally:
        for norm, (momentum, count) in zip(norms, saved, strict=True):
            norm.momentum = momentum
            if count is not None and norm.num_batches_tracked is not None:
                norm.num_batches_tracked.copy_(count)


@contextlib.contextmanager
def sharpness_aware_point(module: nn.Module, rho: float) -> Iterator[bool]:
    """Inside, ``module``'s weights sit ``rho`` along its current gradient's direction (an L2
    step) and BatchNorm statistics are frozen; on exit the weights return exactly.

    Yields False, and moves nothing, when there is no gradient or its norm is zero or not
    finite (an fp16 overflow that the gradient scaler will skip anyway). A scaled gradient
    gives the same point: only its direction is used.
    """
    if rho <= 0:
        raise ValueError(f"rho must be > 0, got {rho}")
    pairs = [(p, p.grad) for p in module.parameters() if p.grad is not None]
    if not pairs:
        yield False
        return
    params, grads = [p for p, _ in pairs], [g for _, g in pairs]
    norm = torch.nn.utils.get_total_norm(grads, norm_type=2.0)
    if not bool(torch.isfinite(norm) & (norm > 0)):
        yield False
        return
    scale = rho / (norm + EPSILON)
    with torch.no_grad():
        originals = [p.detach().clone() for p in params]  # copied back: w + e - e may round
        for param, grad in zip(params, grads, strict=True):
            param.add_(grad * scale.to(grad.dtype))
    try:
        with frozen_batchnorm_statistics(module):
            yield True
    finally:
        with torch.no_grad():
            for param, original in zip(params, originals, strict=True):
                param.copy_(original)
