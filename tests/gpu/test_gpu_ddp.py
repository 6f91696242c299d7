"""Check ``ddp``: where two or more GPUs are visible, ``nnUNetv2_train ... -num_gpus 2`` of a tiny Mamba-UNet
trainer with a NaN forced into rank 1's batches at two steps (ddp_trainer/nan_on_last_rank.py, passed through
nnUNet_extTrainer). The training must finish, both ranks must have skipped exactly those steps, and their final
network states must be equal. It runs on a fresh 6-case 32x32 cardiac phantom planned by our planner, with the Dice
computed per sample (``batch_dice`` False, as nnU-Net plans 3d_lowres: batch Dice would all-gather one rank's NaN
into every rank's loss) and in-process data loading. A dry run trains the same way in one CPU process, the NaN on
its only rank. With fewer than two GPUs the check is one SKIP row.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from nnunetv2_mamba.synthetic import write_phantom_dataset

from gpu_outcome import Outcome

pytestmark = [pytest.mark.gpu, pytest.mark.timeout(2 * 240 + 60)]
GPUS = 2
DATASET_ID = 981
PLANS = "nnUNetMambaUNetPlans"
TRAINER = "nnUNetTrainerMambaUNet_TinyNaNOnLastRank"
TRAINER_FOLDER = Path(__file__).resolve().parent / "ddp_trainer"
REPOSITORY = Path(__file__).resolve().parents[2]
COMMAND_TIMEOUT_S = 240


def run_command(command: list[str], env: dict) -> str:
    """``command``'s combined output; RuntimeError with its tail if it fails or outlives COMMAND_TIMEOUT_S (then
    its whole process group, the spawned ranks included, is killed)."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        output = process.communicate(timeout=COMMAND_TIMEOUT_S)[0]
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output = process.communicate()[0]
        raise RuntimeError(f"{command[0]} still running after {COMMAND_TIMEOUT_S} s (ranks hung?): "
                           f"{output[-1500:]}") from None
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}): {output[-1500:]}")
    return output


def nnunet_environment(root: Path) -> dict:
    return {**os.environ, "nnUNet_raw": str(root / "raw"), "nnUNet_preprocessed": str(root / "preprocessed"),
            "nnUNet_results": str(root / "results"), "nnUNet_extTrainer": str(TRAINER_FOLDER),
            "nnUNet_def_n_proc": "2", "PYTHONPATH": os.pathsep.join(filter(None, [str(REPOSITORY),
                                                                                  os.environ.get("PYTHONPATH")]))}


def planned_phantom(root: Path, env: dict, world_size: int) -> str:
    """Plan and preprocess the phantom; 2 samples per rank, per-sample Dice. Its dataset name."""
    dataset = write_phantom_dataset(root / "raw", dataset_id=DATASET_ID, num_cases=6, image_size=(32, 32)).name
    run_command([sys.executable, "-m", "nnunetv2_mamba", "plan_and_preprocess", "-d", str(DATASET_ID),
                 "--networks", "MambaUNet", "-np", "2", "-npfp", "2"], env)
    plans_file = root / "preprocessed" / dataset / f"{PLANS}.json"
    plans = json.loads(plans_file.read_text())
    plans["configurations"]["2d"].update(batch_size=2 * world_size, batch_dice=False)
    plans_file.write_text(json.dumps(plans))
    return dataset


def train_with_a_nan_on_one_rank(settings, world_size: int) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="gpu_check_ddp_") as folder:
        root = Path(folder)
        env = nnunet_environment(root)
        dataset = planned_phantom(root, env, world_size)
        train = Path(sys.executable).with_name("nnUNetv2_train")
        devices = ["-device", "cpu"] if settings.dry_run else ["-num_gpus", str(world_size)]
        started = time.monotonic()
        run_command([str(train), str(DATASET_ID), "2d", "0", "-tr", TRAINER, "-p", PLANS, *devices],
                    {**env, "nnUNet_n_proc_DA": "0"})
        seconds = time.monotonic() - started
        fold = root / "results" / dataset / f"{TRAINER}__{PLANS}__2d" / "fold_0"
        records = [json.loads((fold / f"ddp_check_rank{rank}.json").read_text()) for rank in range(world_size)]
        final_written = (fold / "checkpoint_final.pth").is_file()
    skipped = [record["skipped_steps"] for record in records]
    expected = records[0]["nan_steps"]
    equal_states = len({record["state_sha256"] for record in records}) == 1
    passed = all(steps == expected for steps in skipped) and equal_states and final_written
    return Outcome(passed, f"{world_size} rank(s), NaN on rank {world_size - 1} at steps {expected} of "
                           f"{records[0]['steps']}: skipped {skipped} per rank; final network states "
                           f"{'equal' if equal_states else 'DIFFER'}; checkpoint_final.pth "
                           f"{'written' if final_written else 'MISSING'}",
                   f"{seconds:.0f} s training", {"records": records, "training_s": seconds})


def test_ddp_training_with_a_nan_on_one_rank(settings, report):
    if settings.dry_run:
        report.case("one CPU process, NaN on its rank (dry run of the DDP check)")
        outcome = train_with_a_nan_on_one_rank(settings, 1)
    else:
        report.case(f"nnUNetv2_train -num_gpus {GPUS}, NaN on rank 1")
        visible = torch.cuda.device_count()
        if visible < GPUS:
            pytest.skip(f"needs {GPUS} or more GPUs, {visible} visible")
        outcome = train_with_a_nan_on_one_rank(settings, GPUS)
    report.record(outcome)
    assert outcome.passed, outcome.result
