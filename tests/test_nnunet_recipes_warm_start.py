"""Recipes and warm start inside nnU-Net: recipe trainers stepped in process, then the stock nnUNetv2_train with
a VMamba checkpoint named in the plans (set-pretrained, _Pretrained) or converted for -pretrained_weights.

The VMamba checkpoints are synthetic (vmamba_checkpoints.py), in VMamba's v0 and v2+ layouts at the tiny widths.
The test trainers train 2 epochs of 1 iteration and skip nnU-Net's final validation, so that the whole module takes
a few minutes on 2 idle cores.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

from nnunetv2_mamba.training import trainers
from nnunetv2_mamba.training.checkpoints import read_training_checkpoint
from nnunetv2_mamba.training.warm_start import PLANS_KEY, REPORT_KEY

from helpers import COMMANDS, DATASET, batch_of, run
from nnunet_cli import on_planned_phantom, plans_variant
from vmamba_checkpoints import v0_to_v2_names, vmamba_v0_state_dict

PLANS = "nnUNetMambaUNetPlansRecipes"
TINY_DIMS = (16, 32, 64, 128)
ADAMW_TRAINER = "nnUNetTrainerMambaUNet_AdamW1em3Cosine_TinyTest"
PRETRAINED_TRAINER = "nnUNetTrainerMambaUNet_Pretrained_TinyTest"
TEST_TRAINERS = f'''import torch

from nnunetv2_mamba.training import trainers


class TinyTest:
    """Narrow network, 2 epochs of 1 iteration, 1 validation iteration, no final validation (slow on CPU)."""
    fixed_network_kwargs = {{"dims": {TINY_DIMS}}}

    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs, self.num_iterations_per_epoch, self.num_val_iterations_per_epoch = 2, 1, 1

    def perform_actual_validation(self, save_probabilities=False):
        self.print_to_log_file("final validation skipped by this test trainer")


class {ADAMW_TRAINER}(TinyTest, trainers.nnUNetTrainerMambaUNet_AdamW1em3Cosine):
    pass


class {PRETRAINED_TRAINER}(TinyTest, trainers.nnUNetTrainerMambaUNet_Pretrained):
    pass
'''


@pytest.fixture(scope="module")
def workspace(planned_phantom, tiny_mamba_plans, tmp_path_factory) -> dict:
    """The session's phantom with our Mamba-UNet plans (patch 32x32) as ``PLANS``, results of this module's own, and
    a trainer folder with the tiny test trainers (``TEST_TRAINERS``) before ours in nnUNet_extTrainer."""
    root = tmp_path_factory.mktemp("recipes")
    (root / "ext_trainers").mkdir()
    (root / "ext_trainers" / "tiny_test_trainers.py").write_text(TEST_TRAINERS)
    return {"root": planned_phantom["root"], "results": root / "results", "plans_file": plans_variant(
        tiny_mamba_plans, PLANS), "env": on_planned_phantom(planned_phantom, root / "results", root / "ext_trainers")}


def in_process_trainer(workspace, monkeypatch, tmp_path, recipe_trainer):
    """An initialised tiny trainer with ``recipe_trainer``'s recipe on CPU, writing to ``tmp_path``."""
    class Tiny(recipe_trainer):
        fixed_network_kwargs = {"dims": TINY_DIMS}

        def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
            super().__init__(plans, configuration, fold, dataset_json, device)
            self.num_epochs, self.num_iterations_per_epoch = 2, 2

    monkeypatch.setenv("nnUNet_preprocessed", workspace["env"]["nnUNet_preprocessed"])
    monkeypatch.setenv("nnUNet_results", str(tmp_path))
    plans = json.loads(workspace["plans_file"].read_text())
    plans["continue_training"] = False  # nnU-Net 2.8.1's get_trainer_from_args adds this key
    dataset_json = json.loads((workspace["plans_file"].parent / "dataset.json").read_text())
    torch.manual_seed(0)
    trainer = Tiny(plans, "2d", 0, dataset_json, torch.device("cpu"))
    trainer.initialize()
    return trainer


def test_a_per_iteration_recipe_sets_the_rate_of_every_training_step(workspace, monkeypatch, tmp_path):
    trainer = in_process_trainer(workspace, monkeypatch, tmp_path, trainers.nnUNetTrainerMambaUNet_AdamW1em3Cosine)
    assert [g["weight_decay"] for g in trainer.optimizer.param_groups] == [0.05, 0.0]
    assert (trainer.initial_lr, trainer.weight_decay) == (1e-3, 0.05)
    used = []
    for epoch in range(2):
        trainer.current_epoch = epoch
        trainer.on_train_epoch_start()
        for _ in range(2):
            trainer.train_step(batch_of(trainer))
            used.append(trainer.optimizer.param_groups[0]["lr"])
    # 4 steps, no warm-up step (round(0.05 * 4) = 0): cosine over the 4 steps
    assert used == pytest.approx([1e-3 * (1 + torch.cos(torch.tensor(torch.pi * s / 4)).item()) / 2
                                  for s in range(4)], rel=1e-6)
    assert trainer.logger.get_value("lrs", step=-1) == pytest.approx(used[2])  # nnU-Net logs each epoch's first


@pytest.mark.parametrize("recipe_trainer, expected_norm", [
    (trainers.nnUNetTrainerMambaUNet_nnUNetRecipe, 12.0), (trainers.nnUNetTrainerMambaUNet_Clip1, 1.0),
    (trainers.nnUNetTrainerMambaUNet_NoClip, None)])
def test_the_gradient_is_clipped_to_the_recipes_norm(workspace, monkeypatch, tmp_path, recipe_trainer,
                                                     expected_norm):
    trainer = in_process_trainer(workspace, monkeypatch, tmp_path, recipe_trainer)
    loss = trainer.loss
    trainer.loss = lambda output, target: 1000 * loss(output, target)  # a gradient far above every clip norm
    trainer.on_train_epoch_start()
    trainer.train_step(batch_of(trainer))
    gradients = [p.grad for p in trainer.network.parameters() if p.grad is not None]
    norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in gradients])).item()
    if expected_norm is None:
        assert norm > 100
    else:
        assert norm == pytest.approx(expected_norm, rel=1e-4)


def write_vmamba_checkpoint(path: Path, layout: str) -> dict:
    """A synthetic VMamba checkpoint at the tiny widths, v0 or v2+ names, under 'model'; its v0 state dict."""
    state_dict = vmamba_v0_state_dict(dims=TINY_DIMS, depths=(2, 2, 2, 2), num_classes=1000)
    torch.save({"model": state_dict if layout == "v0" else v0_to_v2_names(state_dict), "epoch": 292}, path)
    return state_dict


def fold_folder(workspace, trainer: str, results: Path | None = None) -> Path:
    return (results or workspace["results"]) / DATASET / f"{trainer}__{PLANS}__2d" / "fold_0"


def training_logs(fold: Path) -> list[str]:
    return [p.read_text() for p in sorted(fold.glob("training_log_*.txt"))]


def assert_encoder_near(weights: dict, vmamba: dict) -> None:
    """Every encoder tensor is the VMamba tensor moved by at most a few tiny-lr steps (the fresh initialisation
    is as far from these random VMamba values as their own norm)."""
    keys = [k for k in weights if k.startswith("encoder.") and k.removeprefix("encoder.") in vmamba
            and k != "encoder.patch_embed.proj.weight"]  # the stem was adapted to the phantom's one channel
    assert len(keys) > 50
    distance = torch.linalg.vector_norm(torch.cat([(weights[k] - vmamba[k.removeprefix("encoder.")]).flatten()
                                                   for k in keys]))
    scale = torch.linalg.vector_norm(torch.cat([vmamba[k.removeprefix("encoder.")].flatten() for k in keys]))
    assert distance < 0.05 * scale


def train(workspace, trainer: str, *flags: str, **extra_env) -> str:
    return run(["nnUNetv2_train", "900", "2d", "0", "-tr", trainer, "-p", PLANS, "-device", "cpu", *flags],
               workspace["env"], **extra_env)


def test_set_pretrained_then_the_pretrained_trainer_loads_once_and_logs_it(workspace, tmp_path):
    vmamba_file = tmp_path / "vssmtiny_dp01_ckpt_epoch_292.pth"
    vmamba = write_vmamba_checkpoint(vmamba_file, "v0")
    printed = run([sys.executable, "-m", "nnunetv2_mamba", "set-pretrained", str(vmamba_file), "-d", "900",
                   "-tr", PRETRAINED_TRAINER, "-p", PLANS], workspace["env"])
    summary = next(line for line in printed.splitlines() if line.startswith("pretrained "))
    assert json.loads(workspace["plans_file"].read_text())[PLANS_KEY] == {"MambaUNet": str(vmamba_file)}

    train(workspace, PRETRAINED_TRAINER)
    fold = fold_folder(workspace, PRETRAINED_TRAINER)
    [log] = training_logs(fold)
    assert summary in log and "(v0 names): loaded " in summary and "keep their initialisation" in summary
    final = read_training_checkpoint(fold / "checkpoint_final.pth")["network_weights"]
    assert_encoder_near(final, vmamba)
    assert json.loads((fold.parent / "plans.json").read_text())[PLANS_KEY]["MambaUNet"] == str(vmamba_file)

    vmamba_file.rename(tmp_path / "moved.pth")  # nothing below may read it again
    output = train(workspace, PRETRAINED_TRAINER, "--c") + train(workspace, PRETRAINED_TRAINER, "--val")
    assert "names): loaded" not in output
    assert len(training_logs(fold)) == 3 and all("names): loaded" not in log for log in training_logs(fold)[1:])
    resumed = read_training_checkpoint(fold / "checkpoint_final.pth")["network_weights"]
    assert all(torch.equal(final[k], resumed[k]) for k in final)
    (tmp_path / "images").mkdir()
    shutil.copy(workspace["root"] / "raw" / DATASET / "imagesTr" / "phantom_000_0000.nii.gz", tmp_path / "images")
    run(["nnUNetv2_predict", "-i", str(tmp_path / "images"), "-o", str(tmp_path / "pred"), "-d", "900", "-c", "2d",
         "-tr", PRETRAINED_TRAINER, "-p", PLANS, "-f", "0", "-device", "cpu", "-npp", "1", "-nps", "1",
         "--disable_tta"], workspace["env"])
    assert [p.name for p in (tmp_path / "pred").glob("*.nii.gz")] == ["phantom_000.nii.gz"]

    fresh = failing_output(["nnUNetv2_train", "900", "2d", "0", "-tr", PRETRAINED_TRAINER, "-p", PLANS, "-device",
                            "cpu"], {**workspace["env"], "nnUNet_results": str(tmp_path / "fresh_results")})
    assert f"name {vmamba_file} as the VMamba checkpoint for MambaUNet, but it is not a file" in fresh


def failing_output(command: list[str], env: dict) -> str:
    """Combined output of a command that must fail."""
    result = COMMANDS.run(command, env=env, timeout=600)
    assert result.returncode != 0, result.stdout[-4000:]
    return result.stdout


def test_a_converted_vmamba_file_warm_starts_any_recipe_trainer_through_nnunets_flag(workspace, tmp_path):
    vmamba_file = tmp_path / "vmamba_tiny_v2.pth"
    vmamba = write_vmamba_checkpoint(vmamba_file, "v2+")
    init = tmp_path / "init.pth"
    printed = run([sys.executable, "-m", "nnunetv2_mamba", "convert-vmamba", str(vmamba_file), "-d", "900",
                   "-tr", ADAMW_TRAINER, "-p", PLANS, "-o", str(init)], workspace["env"])
    converted = read_training_checkpoint(init)  # weights_only: plain tensors and data
    report = converted[REPORT_KEY]
    assert report["summary"] in printed and report["checkpoint_format"] == "v2+" and report["loaded"]
    assert report["shape_mismatched"] and report["skipped"]  # v2's extra MLP, conv downsample, a z-less in_proj
    assert_encoder_near(converted["network_weights"], {k: v for k, v in vmamba.items() if k not in {
        "layers.0.blocks.1.self_attention.in_proj.weight"} and ".downsample." not in k})

    output = train(workspace, ADAMW_TRAINER, "-pretrained_weights", str(init))
    assert f"Loading pretrained weights from file  {init}" in output
    fold = fold_folder(workspace, ADAMW_TRAINER)
    assert "Training recipe of nnUNetTrainerMambaUNet_AdamW1em3Cosine_TinyTest: Recipe(optimizer='adamw', lr=0.001" \
        in training_logs(fold)[0]
    checkpoint = read_training_checkpoint(fold / "checkpoint_final.pth")
    assert [g["weight_decay"] for g in checkpoint["optimizer_state"]["param_groups"]] == [0.05, 0.0]
    assert checkpoint["logging"]["lrs"] == pytest.approx([1e-3, 5e-4])  # cosine over 2 x 1 steps
    assert_encoder_near({k: v for k, v in checkpoint["network_weights"].items()},
                        {k.removeprefix("encoder."): v for k, v in converted["network_weights"].items()})


def test_set_pretrained_refuses_a_file_that_does_not_fit_and_writes_nothing(workspace, tmp_path):
    wide = tmp_path / "vmamba_small_e238_ema.pth"
    torch.save({"model_ema": vmamba_v0_state_dict(dims=(32, 64, 128, 256))}, wide)
    before = workspace["plans_file"].read_text()
    output = failing_output([sys.executable, "-m", "nnunetv2_mamba", "set-pretrained", str(wide), "-d", "900",
                             "-tr", PRETRAINED_TRAINER, "-p", PLANS], workspace["env"])
    assert "widths matching the model's dims" in output
    assert workspace["plans_file"].read_text() == before


def test_a_pretrained_trainer_whose_plans_name_no_file_says_what_to_run():
    from nnunetv2_mamba.training.warm_start import pretrained_path_in_plans

    with pytest.raises(RuntimeError, match="name no VMamba checkpoint for VMUNet. Run: nnunetv2_mamba set-pretrained "
                                           "VMAMBA.pth -d DATASET -tr nnUNetTrainerVMUNet_Pretrained -p nnUNetPlans"):
        pretrained_path_in_plans({"plans_name": "nnUNetPlans", PLANS_KEY: {"MambaUNet": "/x.pth"}}, "VMUNet",
                                 "nnUNetTrainerVMUNet_Pretrained")
