"""Train a toy CNN with checkpoints; optionally die by SIGKILL mid-epoch, or resume.

Used by tests/train/test_engine_resume.py::

    python resume_train.py OUTDIR [--kill-epoch E --kill-item K] [--resume] [--init-seed S]

Writes OUTDIR/ckpt/last.pt every epoch and, when training ends, OUTDIR/result.pt with the final
weights, the test-set probabilities and the epoch history.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from engine_toys import ToyImages, tiny_cnn, toy_arrays

from medsight.train.engine import EngineConfig, Trainer

CONFIG = EngineConfig(
    epochs=4,
    batch_size=16,
    learning_rate=1e-2,
    warmup_epochs=1,
    patience=None,
    progress=False,
    seed=7,
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--kill-epoch", type=int)
    parser.add_argument("--kill-item", type=int)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--init-seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)

    kill_at = (args.kill_epoch, args.kill_item) if args.kill_epoch else None
    train = ToyImages(*toy_arrays(160, 1, signal_strength=0.8), seed=1, kill_at=kill_at)
    val = ToyImages(*toy_arrays(64, 2, signal_strength=0.8), augment=False)
    test_x, _ = toy_arrays(64, 3, signal_strength=0.8)

    trainer = Trainer(tiny_cnn(seed=args.init_seed), CONFIG, checkpoint_dir=args.outdir / "ckpt")
    result = trainer.fit(train, val, resume=args.resume)
    torch.save(
        {
            "state": trainer.model.state_dict(),
            "probs": torch.from_numpy(trainer.predict_proba(test_x)),
            "history": [asdict(r) for r in result.history],
            "best_epoch": result.best_epoch,
            "best_score": result.best_score,
        },
        args.outdir / "result.pt",
    )


if __name__ == "__main__":
    main()
