"""`medsight train` under torchrun: two CPU ranks train together, rank 0 alone writes the run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from medsight.bundle.image import ImageBundle
from medsight.config import ImageDataConfig, ImageTrainConfig
from medsight.tasks.image_data import load_image_splits


def test_train_under_torchrun_writes_one_run_folder(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "120"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node", "2", "-m", "medsight", "train", "--data", "phantom"]
    command += ["--epochs", "2", "--ensemble", "2", "--output", str(tmp_path / "runs")]
    command += ["--name", "ddp"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    runs = [p for p in (tmp_path / "runs").iterdir() if not p.name.startswith(".")]
    assert len(runs) == 1 and runs[0].name.startswith("ddp-")
    assert not (tmp_path / "runs" / ".checkpoints" / "ddp").exists()
    assert done.stdout.count("Test-split metrics") == 1  # one report, from rank 0
    assert "on 2 processes" in done.stdout

    history = pd.read_csv(runs[0] / "history.csv")
    assert history["train_images"].tolist() == [630] * 4  # both ranks' shards, 2 members
    bundle = ImageBundle.load(runs[0] / "bundle")
    # the SVM and tree members are fitted once, on rank 0, and shared: the bundle holds the
    # 2 networks, the SVM and the trees
    model = bundle.metadata["model"]
    assert model["svm_member"] and model["tree_member"] and len(model["member_weights"]) == 4
    test = load_image_splits(ImageDataConfig(path="phantom"), seed=ImageTrainConfig().seed).test
    saved = pd.read_csv(runs[0] / "test_predictions.csv")
    assert saved["source"].tolist() == test.sources
    onnx = bundle.predict_proba(test.images)
    assert np.abs(onnx - saved[["p_normal", "p_lesion"]].to_numpy()).max() < 1e-4
