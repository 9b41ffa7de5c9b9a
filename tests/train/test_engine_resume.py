"""Checkpoints and resume: a run killed by SIGKILL mid-epoch ends like an uninterrupted one."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent / "scripts"))

from engine_toys import ToyImages, tiny_cnn, toy_arrays

from medsight.errors import BundleError, ConfigError
from medsight.train.checkpoint import REQUIRED_KEYS, load_checkpoint
from medsight.train.engine import EngineConfig, Trainer

torch.set_num_threads(1)
SCRIPT = Path(__file__).parent / "scripts" / "resume_train.py"
TIMING_FIELDS = {"train_seconds", "images_per_second"}


def run_script(outdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(outdir), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def without_timing(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in history]


def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    done = run_script(straight)
    assert done.returncode == 0, done.stderr

    # 160 items, batches of 16: die while fetching item 70 of epoch 3 (its 5th batch).
    crash = run_script(killed, "--kill-epoch", "3", "--kill-item", "70")
    assert crash.returncode == -signal.SIGKILL, crash.stderr
    assert not (killed / "result.pt").exists()
    checkpoint = load_checkpoint(killed / "ckpt" / "last.pt")
    assert set(REQUIRED_KEYS) <= checkpoint.keys()
    assert checkpoint["epoch"] == 2 and len(checkpoint["history"]) == 2
    assert not checkpoint["finished"]
    assert not (killed / "ckpt" / "last.pt.tmp").exists()

    # Resume with a differently initialised model: the weights must come from the checkpoint.
    resumed = run_script(killed, "--resume", "--init-seed", "99")
    assert resumed.returncode == 0, resumed.stderr

    a = torch.load(straight / "result.pt", weights_only=True)
    b = torch.load(killed / "result.pt", weights_only=True)
    assert a["state"].keys() == b["state"].keys()
    for name, tensor in a["state"].items():
        assert torch.equal(tensor, b["state"][name]), name
    assert torch.equal(a["probs"], b["probs"])
    assert a["best_epoch"] == b["best_epoch"] and a["best_score"] == b["best_score"]
    assert without_timing(a["history"]) == without_timing(b["history"])
    assert len(b["history"]) == 4


def fit_toy(checkpoint_dir: Path, *, resume: bool = False, init_seed: int = 0, **kwargs):
    cfg = dict(epochs=3, batch_size=16, learning_rate=1e-2, warmup_epochs=1, progress=False)
    train = ToyImages(*toy_arrays(64, 1), seed=1, raise_at=kwargs.pop("raise_at", None))
    trainer = Trainer(
        tiny_cnn(seed=init_seed),
        EngineConfig(**{**cfg, **kwargs}),
        checkpoint_dir=checkpoint_dir,
    )
    return trainer, trainer.fit(train, ToyImages(*toy_arrays(32, 2)), resume=resume), train


def test_interrupted_in_process_resume_is_exact(tmp_path: Path) -> None:
    ref, ref_result, _ = fit_toy(tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        fit_toy(tmp_path / "b", raise_at=(2, 20))
    assert load_checkpoint(tmp_path / "b" / "last.pt")["epoch"] == 1
    again, result, _ = fit_toy(tmp_path / "b", resume=True, init_seed=5)
    for name, tensor in ref.model.state_dict().items():
        assert torch.equal(tensor, again.model.state_dict()[name]), name
    assert [r.val_loss for r in result.history] == [r.val_loss for r in ref_result.history]


@pytest.mark.parametrize("average", [{"ema_decay": 0.8}, {"swa_start": 0.3}], ids=["ema", "swa"])
def test_resume_restores_the_weight_average(tmp_path: Path, average: dict[str, float]) -> None:
    ref, ref_result, _ = fit_toy(tmp_path / "a", **average)
    with pytest.raises(KeyboardInterrupt):
        fit_toy(tmp_path / "b", raise_at=(2, 20), **average)
    assert load_checkpoint(tmp_path / "b" / "last.pt")["ema"] is not None
    again, result, _ = fit_toy(tmp_path / "b", resume=True, init_seed=5, **average)
    for name, tensor in ref.model.state_dict().items():
        assert torch.equal(tensor, again.model.state_dict()[name]), name
    assert [r.val_loss for r in result.history] == [r.val_loss for r in ref_result.history]


@pytest.mark.parametrize(
    "options",
    [{"mixup_alpha": 0.4}, {"optimizer": "sgd", "learning_rate": 0.05}],
    ids=["mixup", "sgd-momentum"],
)
def test_resume_is_exact_with(tmp_path: Path, options: dict[str, object]) -> None:
    ref, ref_result, _ = fit_toy(tmp_path / "a", **options)
    with pytest.raises(KeyboardInterrupt):
        fit_toy(tmp_path / "b", raise_at=(2, 20), **options)
    again, result, _ = fit_toy(tmp_path / "b", resume=True, init_seed=5, **options)
    for name, tensor in ref.model.state_dict().items():
        assert torch.equal(tensor, again.model.state_dict()[name]), name
    assert [r.val_loss for r in result.history] == [r.val_loss for r in ref_result.history]


def test_resume_without_checkpoint_starts_fresh(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="medsight.train.engine"):
        _, result, _ = fit_toy(tmp_path, resume=True, epochs=2)
    assert "no checkpoint" in caplog.text and "starting a fresh run" in caplog.text
    assert result.epochs_run == 2 and (tmp_path / "last.pt").exists()


def test_resuming_a_finished_run_trains_no_further(tmp_path: Path) -> None:
    first, result, _ = fit_toy(tmp_path, epochs=2)
    again, repeat, train = fit_toy(tmp_path, resume=True, epochs=2, init_seed=3)
    assert train.epochs_seen == []  # no epoch ran
    assert repeat.history == result.history and repeat.best_epoch == result.best_epoch
    for name, tensor in first.model.state_dict().items():
        assert torch.equal(tensor, again.model.state_dict()[name]), name


def test_checkpoint_from_another_setup_is_refused(tmp_path: Path) -> None:
    fit_toy(tmp_path, epochs=1)
    with pytest.raises(ConfigError, match=r"learning_rate: checkpoint 0\.01, now 0\.02"):
        fit_toy(tmp_path, resume=True, epochs=1, learning_rate=0.02)
    with pytest.raises(ConfigError, match="epochs"):
        fit_toy(tmp_path, resume=True, epochs=2)
    # settings that do not change the trajectory may differ
    fit_toy(tmp_path, resume=True, epochs=1, num_workers=0, progress=True)

    trainer = Trainer(
        tiny_cnn(n_classes=3),
        EngineConfig(epochs=1, batch_size=16, learning_rate=1e-2, warmup_epochs=1, progress=False),
        checkpoint_dir=tmp_path,
    )
    with pytest.raises(BundleError, match="different model architecture"):
        trainer.fit(ToyImages(*toy_arrays(64, 1)), ToyImages(*toy_arrays(32, 2)), resume=True)

    cfg = EngineConfig(epochs=1, batch_size=16, learning_rate=1e-2, warmup_epochs=1, progress=False)
    with pytest.raises(ConfigError, match="training set of 64 items, this one has 48"):
        Trainer(tiny_cnn(), cfg, checkpoint_dir=tmp_path).fit(
            ToyImages(*toy_arrays(48, 1)), ToyImages(*toy_arrays(32, 2)), resume=True
        )


def test_unreadable_or_foreign_checkpoint_is_a_bundle_error(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    path.write_bytes(b"\x00not a checkpoint")
    with pytest.raises(BundleError, match="cannot read the training checkpoint"):
        fit_toy(tmp_path, resume=True, epochs=1)
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(BundleError, match="not a medsight training checkpoint"):
        fit_toy(tmp_path, resume=True, epochs=1)
