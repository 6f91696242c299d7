"""Training reliability on CPU: non-finite steps are skipped, a killed training resumes with --c, checkpoints of
another network / channel count / damaged files get one clear error, only rank 0 writes checkpoints, and a resume
restores the random states that fit the machine and the rank. One phantom planned once per module (DDP with two
processes: test_reliability_ddp.py)."""
from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from nnunetv2_mamba.training.checkpoints import CheckpointError, read_training_checkpoint
from helpers import DATASET, batch_of, run
from nnunet_cli import initialised_trainer, on_planned_phantom, plans_variant

PLANS = "nnUNetMambaUNetPlansReliability"
EVERY_EPOCH_TRAINER = "nnUNetTrainerMambaUNet_TinyEveryEpoch"
EPOCHS = 3
BUDGETED_BASE = f"nnUNetTrainerMambaUNet_Tiny_{EPOCHS}ep3it"  # 3 x 3 iterations, 1 validation iteration


@pytest.fixture(scope="module")
def workspace(planned_phantom, tiny_mamba_plans, tmp_path_factory) -> dict:
    """The session's phantom with our Mamba-UNet plans (patch cut to 32x32 for speed) as ``PLANS``, and a trainer
    folder holding the tiny Mamba-UNet trainer (with a budget of 3 epochs x 3 iterations) seeded
    (nnU-Net seeds nothing), with a checkpoint_latest.pth after every epoch (nnU-Net: every 50) and no final
    validation (integration tests)."""
    root = tmp_path_factory.mktemp("reliability")
    trainers = root / "ext_trainers"
    trainers.mkdir()
    (trainers / "every_epoch.py").write_text(
        "import random\n\nimport numpy as np\nimport torch\n\n"
        f"from nnunetv2_mamba.training.trainer_exports import {BUDGETED_BASE}\n\n\n"
        f"class {EVERY_EPOCH_TRAINER}({BUDGETED_BASE}):\n"
        "    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device('cuda')):\n"
        "        random.seed(0), np.random.seed(0), torch.manual_seed(0)\n"
        "        super().__init__(plans, configuration, fold, dataset_json, device)\n"
        "        self.save_every = 1\n\n"
        "    def perform_actual_validation(self, save_probabilities=False):\n"
        "        self.print_to_log_file('final validation skipped by this test trainer')\n")
    plans_variant(tiny_mamba_plans, PLANS)
    return {"root": planned_phantom["root"], "env": on_planned_phantom(planned_phantom, root / "results", trainers)}


def train_command(*flags: str) -> list[str]:
    return ["nnUNetv2_train", "900", "2d", "0", "-tr", EVERY_EPOCH_TRAINER, "-p", PLANS, "-device", "cpu", *flags]


def fold_folder(results: Path) -> Path:
    return results / DATASET / f"{EVERY_EPOCH_TRAINER}__{PLANS}__2d" / "fold_0"


def kill_during_epoch(command: list[str], env: dict, fold: Path, epoch: int) -> None:
    """Start ``command`` and SIGKILL it once it logs ``Epoch {epoch}`` (its checkpoint_latest.pth is then written)."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + 400
    try:
        while time.monotonic() < deadline and process.poll() is None:
            logs = list(fold.glob("training_log_*.txt")) if fold.is_dir() else []
            if logs and re.search(rf": Epoch {epoch}\s*$", logs[0].read_text(), re.M):
                os.killpg(process.pid, signal.SIGKILL)
                break
            time.sleep(0.05)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL, f"training ended on its own ({process.returncode}) before the kill"


def test_a_training_killed_mid_epoch_resumes_with_c_and_finishes(workspace, tmp_path):
    """Kill during epoch 1, ``--c``, and compare with an uninterrupted run of the same seeded trainer on CPU.

    nnU-Net alone could not give equal weights: it does not checkpoint the global random states (numpy's, torch's,
    python's) that draw the training patches, augmentations and drop paths, so a resumed run would see other
    batches from epoch 1 on. Our trainers store them in every checkpoint and restore them on ``--c`` once the
    data loaders exist (``SafeCheckpoints``); with single-process data loading (``nnUNet_n_proc_DA=0``; worker
    processes draw batches in a nondeterministic order) and one thread, the resumed run's final weights equal
    the uninterrupted run's exactly. Also: nothing lost or repeated (the resumed run runs epochs 1 and 2 only,
    one logged loss per epoch), both final checkpoints load with ``weights_only=True``, no half-written file is
    left, and the weights segment a training image into finite logits.
    """
    env = workspace["env"]
    killed_results, clean_results = tmp_path / "killed", tmp_path / "clean"
    fold = fold_folder(killed_results)
    kill_during_epoch(train_command(), {**env, "nnUNet_results": str(killed_results)}, fold, epoch=1)
    assert not (fold / "checkpoint_final.pth").exists()
    assert read_training_checkpoint(fold / "checkpoint_latest.pth")["current_epoch"] == 1

    resumed_log = run(train_command("--c"), {**env, "nnUNet_results": str(killed_results)})
    epochs_run = re.findall(r": Epoch (\d+)\s*$", resumed_log, re.M)
    assert epochs_run == ["1", "2"]  # resumed at epoch 1, not from scratch
    run(train_command(), {**env, "nnUNet_results": str(clean_results)})

    finals = [read_training_checkpoint(fold_folder(r) / "checkpoint_final.pth") for r in (killed_results,
                                                                                          clean_results)]
    for results, final in zip((killed_results, clean_results), finals):
        assert final["current_epoch"] == EPOCHS and final["trainer_name"] == EVERY_EPOCH_TRAINER
        assert len(final["logging"]["train_losses"]) == EPOCHS
        assert all(np.isfinite(final["logging"]["train_losses"]))
        assert not (fold_folder(results) / "checkpoint_latest.pth").exists()  # nnU-Net removes it when done
        assert not list(fold_folder(results).glob("*.partial"))
    resumed, clean = (f["network_weights"] for f in finals)
    assert resumed.keys() == clean.keys()
    assert all(torch.isfinite(resumed[k]).all() for k in resumed)
    assert [k for k in resumed if not torch.equal(resumed[k], clean[k])] == []
    assert finals[0]["logging"]["train_losses"] == finals[1]["logging"]["train_losses"]
    assert_segments_a_training_image(workspace, killed_results, resumed)


def assert_segments_a_training_image(workspace, results: Path, weights: dict) -> None:
    from nnunetv2_mamba.training.trainers import nnUNetTrainerMambaUNet_Tiny
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans = PlansManager(json.loads((fold_folder(results).parent / "plans.json").read_text()))
    network = nnUNetTrainerMambaUNet_Tiny.build_network_architecture(
        plans, plans.get_configuration("2d"), 1, 4, enable_deep_supervision=False)
    network.load_state_dict(weights)
    data = preprocessed_case(workspace, "phantom_000")
    with torch.no_grad():
        logits = network.eval()(torch.from_numpy(np.asarray(data[:, 0][None])).float())
    assert logits.shape == (1, 4, *data.shape[-2:]) and torch.isfinite(logits).all()


def preprocessed_case(workspace, identifier: str) -> np.ndarray:
    """(C, 1, H, W) image of a preprocessed 2d case, read by nnU-Net's own dataset class."""
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    folder = next((workspace["root"] / "preprocessed" / DATASET).glob("*_2d"))
    return np.asarray(infer_dataset_class(str(folder))(str(folder)).load_case(identifier)[0])


@pytest.fixture
def trainer(workspace, monkeypatch, tmp_path):
    """An initialised nnUNetTrainerMambaUNet_Tiny on CPU, in process, writing to ``tmp_path``."""
    from nnunetv2_mamba.training.trainers import nnUNetTrainerMambaUNet_Tiny

    return initialised_trainer(nnUNetTrainerMambaUNet_Tiny, workspace, PLANS, tmp_path, monkeypatch)


def parameters_of(trainer) -> dict:
    return {k: v.detach().clone() for k, v in trainer.network.state_dict().items()}


def optimizer_state_of(trainer) -> dict:
    """Copies of every tensor in the optimizer's per-parameter state, keyed by (parameter index, name)."""
    return {(i, name): torch.as_tensor(value).clone() for i, state in trainer.optimizer.state_dict()["state"].items()
            for name, value in state.items()}


def log_text(trainer) -> str:
    return Path(trainer.log_file).read_text()


@pytest.mark.parametrize("with_grad_scaler", [False, True])
def test_a_nan_batch_skips_the_step_logs_it_and_changes_nothing(trainer, with_grad_scaler):
    if with_grad_scaler:
        trainer.grad_scaler = torch.amp.GradScaler("cpu")  # CUDA AMP's path, exercised on CPU
    trainer.on_train_epoch_start()
    outputs = [trainer.train_step(batch_of(trainer))]  # a real step first: the optimizer's state exists
    before, optimizer_before = parameters_of(trainer), optimizer_state_of(trainer)
    scaler_before = trainer.grad_scaler.state_dict() if with_grad_scaler else None
    outputs.append(trainer.train_step(batch_of(trainer, nan=True)))
    after = parameters_of(trainer)
    assert all(torch.equal(before[k], after[k]) for k in before)
    optimizer_after = optimizer_state_of(trainer)  # momentum buffers (SGD), moments and step counts (AdamW)
    assert optimizer_after.keys() == optimizer_before.keys() and optimizer_before
    assert all(torch.equal(optimizer_before[k], optimizer_after[k]) for k in optimizer_before)
    if with_grad_scaler:
        assert trainer.grad_scaler.state_dict() == scaler_before
    assert "WARNING: non-finite loss (nan) in epoch 0: optimizer step skipped" in log_text(trainer)

    outputs.append(trainer.train_step(batch_of(trainer)))  # training goes on afterwards
    assert not all(torch.equal(after[k], v) for k, v in parameters_of(trainer).items())
    trainer.on_train_epoch_end(outputs)
    assert "epoch 0: 1 of 3 optimizer steps skipped for a non-finite loss or gradient" in log_text(trainer)
    assert np.isfinite(trainer.logger.get_value("train_losses", step=-1))


def test_non_finite_gradients_of_a_finite_loss_are_skipped_too(trainer, monkeypatch):
    network = trainer.network
    monkeypatch.setattr(trainer, "loss", lambda output, target: output[0].mean() * 0 + network.encoder.patch_embed
                        .proj.weight.sqrt().sum().nan_to_num())  # finite value, NaN gradient for negative weights
    before = parameters_of(trainer)
    trainer.on_train_epoch_start()
    trainer.train_step(batch_of(trainer))
    assert all(torch.equal(before[k], v) for k, v in parameters_of(trainer).items())
    assert "WARNING: non-finite gradient norm (nan)" in log_text(trainer)


def test_an_epoch_of_only_non_finite_steps_stops_the_training(trainer):
    trainer.on_train_epoch_start()
    outputs = [trainer.train_step(batch_of(trainer, nan=True)) for _ in range(2)]
    with pytest.raises(RuntimeError, match="every training step of epoch 0 had a non-finite loss.*Check the data"):
        trainer.on_train_epoch_end(outputs)


def test_bad_checkpoints_get_one_clear_error(trainer, tmp_path):
    from nnunetv2_mamba.nets import VMUNet

    trainer.save_checkpoint(str(tmp_path / "good.pth"))
    assert not list(tmp_path.glob("*.partial"))
    good = read_training_checkpoint(tmp_path / "good.pth")  # weights_only=True reads nnU-Net's checkpoint
    trainer.load_checkpoint(str(tmp_path / "good.pth"))

    truncated = tmp_path / "checkpoint_latest.pth"
    truncated.write_bytes((tmp_path / "good.pth").read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="truncated or damaged.*Delete it and continue with --c"):
        trainer.load_checkpoint(str(truncated))

    other = dict(good, network_weights=VMUNet(1, 4, dims=(16, 32, 64, 128)).state_dict(),
                 trainer_name="nnUNetTrainerVMUNet_Tiny")
    torch.save(other, tmp_path / "vmunet.pth")
    with pytest.raises(CheckpointError, match="written by trainer nnUNetTrainerVMUNet_Tiny, this is "
                                              "nnUNetTrainerMambaUNet_Tiny.*another network.*Use the trainer"):
        trainer.load_checkpoint(str(tmp_path / "vmunet.pth"))

    two_channels = type(trainer).build_network_architecture(trainer.plans_manager, trainer.configuration_manager,
                                                            2, 4, True).state_dict()
    torch.save(dict(good, network_weights=two_channels), tmp_path / "two_channels.pth")
    with pytest.raises(CheckpointError, match="trained on 2 input channel.*takes 1.*exactly 2 image file"):
        trainer.load_checkpoint(str(tmp_path / "two_channels.pth"))


def test_images_with_more_channels_than_the_model_get_one_clear_error(trainer):
    network = trainer.network
    with pytest.raises(ValueError, match=r"takes 1 input channel\(s\): give each case exactly 1 image file"):
        network(torch.randn(1, 2, 32, 32))


def stale_partial_of(trainer, target: Path) -> bytes:
    """A complete checkpoint (epoch 99) at ``target``.partial, as a save killed just before its rename leaves it."""
    trainer.save_checkpoint(str(target))
    stale = dict(read_training_checkpoint(target), current_epoch=99)
    target.unlink()
    partial = Path(f"{target}.partial")
    torch.save(stale, partial)
    return partial.read_bytes()


def test_only_rank_0_writes_checkpoints_and_a_stale_partial_is_never_revived(trainer, tmp_path):
    """A DDP rank > 0 (nnU-Net's ``local_rank``) never touches the checkpoint files, not even a ``.partial``
    (it may be rank 0's save in progress); rank 0 removes a stale one and never renames it into place, with
    ``--disable_checkpointing`` neither, and otherwise writes its own."""
    target = tmp_path / "checkpoint_latest.pth"
    partial = Path(f"{target}.partial")
    stale = stale_partial_of(trainer, target)
    trainer.local_rank = 1
    trainer.save_checkpoint(str(target))
    assert not target.exists() and partial.read_bytes() == stale

    trainer.local_rank, trainer.disable_checkpointing = 0, True
    trainer.save_checkpoint(str(target))
    assert not target.exists() and not partial.exists()
    assert "No checkpoint written, checkpointing is disabled" in log_text(trainer)

    trainer.disable_checkpointing = False
    stale_partial_of(trainer, target)
    trainer.save_checkpoint(str(target))
    assert read_training_checkpoint(target)["current_epoch"] == trainer.current_epoch + 1 and not partial.exists()


def visible_gpus(monkeypatch, count: int) -> tuple[torch.Generator, ...]:
    """Make torch.cuda's random-state functions see ``count`` GPUs (initialised), whose generators are returned;
    they are CPU generators, which is all ``torch.cuda.{get,set}_rng_state`` touch of a device."""
    generators = tuple(torch.Generator().manual_seed(100 + i) for i in range(count))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "_initialized", True)
    monkeypatch.setattr(torch.cuda, "default_generators", generators)
    for module in (torch.cuda, torch.cuda.random):
        monkeypatch.setattr(module, "device_count", lambda: count)
    return generators


def resume(trainer, checkpoint: Path, monkeypatch) -> None:
    """``--c`` up to the restored random states: load the checkpoint, then our trainers' part of
    ``on_train_start`` (nnU-Net's own, which builds data loaders, is replaced by creating the output folder)."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    monkeypatch.setattr(nnUNetTrainer, "on_train_start", lambda self: os.makedirs(self.output_folder, exist_ok=True))
    trainer.load_checkpoint(str(checkpoint))
    trainer.on_train_start()


def test_resuming_on_fewer_gpus_than_at_saving_restores_the_visible_ones_and_logs_the_rest(trainer, tmp_path,
                                                                                         monkeypatch):
    visible_gpus(monkeypatch, 2)
    trainer.save_checkpoint(str(tmp_path / "checkpoint_latest.pth"))
    saved = read_training_checkpoint(tmp_path / "checkpoint_latest.pth")["random_states"]
    assert len(saved["cuda"]) == 2 and not torch.equal(saved["cuda"][0], saved["cuda"][1])
    (gpu,) = visible_gpus(monkeypatch, 1)
    resume(trainer, tmp_path / "checkpoint_latest.pth", monkeypatch)
    assert torch.equal(gpu.get_state(), saved["cuda"][0])
    assert torch.equal(torch.get_rng_state(), saved["torch"])
    assert "CUDA random states of GPUs 1..1 not restored: the checkpoint has those of 2 GPU(s), 1 visible now" in \
        log_text(trainer)
    assert "random states restored from the checkpoint of epoch 1" in log_text(trainer)


def test_after_a_resume_each_ddp_rank_draws_its_own_random_stream(trainer, tmp_path, monkeypatch):
    """Rank 0 continues the saved stream exactly; rank 1 (nnU-Net's ``local_rank``) must not draw the same
    augmentations, drop paths and patches as rank 0, and draws the same stream again on another resume."""
    def draws() -> tuple:
        return tuple(np.random.random(4)), random.random(), tuple(torch.rand(4).tolist())

    trainer.save_checkpoint(str(tmp_path / "checkpoint_latest.pth"))
    uninterrupted = draws()
    by_rank = []
    for rank in (0, 1, 1):
        trainer.local_rank = rank
        resume(trainer, tmp_path / "checkpoint_latest.pth", monkeypatch)
        by_rank.append(draws())
    assert by_rank[0] == uninterrupted
    assert all(rank_1 != rank_0 for rank_0, rank_1 in zip(by_rank[0], by_rank[1]))
    assert by_rank[2] == by_rank[1]
