"""Train a toy CNN with DDP on CPU; every rank saves what it ends with.

Used by tests/train/test_engine_ddp.py::

    python -m torch.distributed.run --standalone --nproc_per_node 2 ddp_train.py OUTDIR [SAM_RHO]

Each rank writes OUTDIR/init_rank{r}.pt (its own, rank-seeded initial weights),
OUTDIR/final_rank{r}.pt (final weights) and OUTDIR/result_rank{r}.pt (history, best epoch, val
probabilities). Each rank is given its own checkpoint folder OUTDIR/ckpt_rank{r}, so the test can
see that only rank 0 wrote one.
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from engine_toys import ToyImages, tiny_cnn, toy_arrays

from medsight.train.distributed import exit_after_distributed_run, init_from_env
from medsight.train.engine import EngineConfig, Trainer


def main() -> None:
    out = Path(sys.argv[1])
    sam_rho = float(sys.argv[2]) if len(sys.argv) > 2 else None
    torch.set_num_threads(1)
    ctx = init_from_env()
    try:
        model = tiny_cnn(seed=100 + ctx.rank)  # ranks start apart: DDP must bring them together
        torch.save(model.state_dict(), out / f"init_rank{ctx.rank}.pt")
        train = ToyImages(*toy_arrays(96, 1), seed=1)
        val = ToyImages(*toy_arrays(51, 2), augment=False)  # odd size: uneven validation shards
        config = EngineConfig(
            epochs=2,
            batch_size=16,
            learning_rate=1e-2,
            warmup_epochs=1,
            progress=False,
            sam_rho=sam_rho,
        )
        trainer = Trainer(
            model, config, checkpoint_dir=out / f"ckpt_rank{ctx.rank}", distributed=ctx
        )
        result = trainer.fit(train, val)
        torch.save(trainer.model.state_dict(), out / f"final_rank{ctx.rank}.pt")
        torch.save(
            {
                "history": [asdict(r) for r in result.history],
                "best_epoch": result.best_epoch,
                "world_size": ctx.world_size,
                "set_epoch_calls": train.epochs_seen,
                "val_probs": torch.from_numpy(trainer.predict_proba(val)),
            },
            out / f"result_rank{ctx.rank}.pt",
        )
        ctx.barrier()
    finally:
        ctx.cleanup()
    exit_after_distributed_run()


if __name__ == "__main__":
    main()
