"""DDP: two CPU processes under torchrun end with identical weights; only rank 0 checkpoints."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import SequentialSampler

from medsight.errors import ConfigError
from medsight.train.checkpoint import load_checkpoint
from medsight.train.distributed import ShardedSampler, exit_after_distributed_run, init_from_env

SCRIPT = Path(__file__).parent / "scripts" / "ddp_train.py"
TIMING_FIELDS = {"train_seconds", "images_per_second"}


@pytest.mark.parametrize("sam_rho", [None, 0.05], ids=["plain", "sam"])
def test_two_cpu_ranks_end_with_identical_weights(tmp_path: Path, sam_rho: float | None) -> None:
    """With SAM each step runs two forward and backward passes through the DDP wrapper."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node"]
    done = subprocess.run(
        [*command, "2", str(SCRIPT), str(tmp_path), *([] if sam_rho is None else [str(sam_rho)])],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    init = [torch.load(tmp_path / f"init_rank{r}.pt", weights_only=True) for r in (0, 1)]
    final = [torch.load(tmp_path / f"final_rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert any(not torch.equal(init[0][k], init[1][k]) for k in init[0])  # started apart
    for name in final[0]:  # weights and BatchNorm buffers
        assert torch.equal(final[0][name], final[1][name]), name
    assert any(not torch.equal(final[0][k], init[0][k]) for k in final[0])  # training happened

    results = [torch.load(tmp_path / f"result_rank{r}.pt", weights_only=True) for r in (0, 1)]
    histories = [
        [{k: v for k, v in rec.items() if k not in TIMING_FIELDS} for rec in res["history"]]
        for res in results
    ]
    assert histories[0] == histories[1]  # the same validation metrics and decisions everywhere
    assert [rec["train_images"] for rec in histories[0]] == [96, 96]  # both ranks together
    assert results[0]["set_epoch_calls"] == results[1]["set_epoch_calls"] == [1, 2]
    assert torch.equal(results[0]["val_probs"], results[1]["val_probs"])

    assert not (tmp_path / "ckpt_rank1").exists()  # only rank 0 writes checkpoints
    checkpoint = load_checkpoint(tmp_path / "ckpt_rank0" / "last.pt")
    assert checkpoint["world_size"] == 2 and checkpoint["epoch"] == 2 and checkpoint["finished"]


def test_sharded_sampler_splits_one_draw_evenly() -> None:
    base = SequentialSampler(range(7))
    shards = [list(ShardedSampler(base, rank, 3)) for rank in range(3)]
    assert shards == [[0, 3, 6], [1, 4, 0], [2, 5, 1]]  # padded by repetition to 9
    assert all(len(ShardedSampler(base, rank, 3)) == 3 for rank in range(3))
    assert list(ShardedSampler(SequentialSampler(range(1)), 1, 4)) == [0]


def test_init_from_env_outside_torchrun(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR"):
        monkeypatch.delenv(name, raising=False)
    ctx = init_from_env()
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.is_distributed) == (0, 1, True, False)
    assert ctx.broadcast_object("x") == "x" and ctx.all_gather_object(3) == [3]
    ctx.barrier()
    ctx.cleanup()
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="torchrun"):
        init_from_env()


def test_exit_after_distributed_run_ends_only_torchrun_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[object] = []
    monkeypatch.setattr(os, "_exit", calls.append)
    monkeypatch.setattr(logging, "shutdown", lambda: calls.append("logging flushed"))
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    exit_after_distributed_run(3)
    assert calls == []  # a single process goes on to its normal exit
    monkeypatch.setenv("WORLD_SIZE", "2")
    exit_after_distributed_run(3)
    assert calls == ["logging flushed", 3]
