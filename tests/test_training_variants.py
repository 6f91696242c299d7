"""Trainer variants by name (training/trainer_variants.py): the name grammar, nnU-Net's search, the scan controls'
networks (2d and 3d), and seeded repeats (training/seeds.py): the seed's reach (initial weights, data augmentation
in process and in nnU-Net's worker processes) and bit-identical checkpoints of two CPU trainings with one seed
through the stock nnUNetv2_train, on the session's planned phantom."""
from __future__ import annotations

import json
import os
import shutil

import pytest
import torch
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager

from nnunetv2_mamba.nets.ss2d import SelectiveScanMixer
from nnunetv2_mamba.training import trainers
from nnunetv2_mamba.training.budget import Budget, BudgetNameError, TrainerNameError
from nnunetv2_mamba.training.checkpoints import read_training_checkpoint
from nnunetv2_mamba.training.seeds import SeedNameError, derived_seeds, seed_trainer_name, split_seed_name
from nnunetv2_mamba.training.trainer_variants import split_variant_name, trainer_variant
from helpers import DATASET, REPO, run
from nnunet_cli import initialised_trainer, on_planned_phantom

PLANS = "nnUNetMambaUNetPlans32"  # conftest.tiny_mamba_plans: our planner, patch 32x32, the stock data
TINY = "nnUNetTrainerMambaUNet_Tiny"


def test_a_seed_is_the_last_suffix_with_one_spelling():
    assert split_seed_name("nnUNetTrainerMambaUNet_2ep4it_seed1") == ("nnUNetTrainerMambaUNet_2ep4it", 1)
    assert split_seed_name("nnUNetTrainer_seed0") == ("nnUNetTrainer", 0)
    assert split_seed_name("nnUNetTrainerMambaUNet_Tiny") is None
    assert seed_trainer_name("nnUNetTrainerMambaUNet_Tiny", 3) == "nnUNetTrainerMambaUNet_Tiny_seed3"
    with pytest.raises(SeedNameError, match="_seedone is not a number; .* e.g. nnUNetTrainer_seed1"):
        split_seed_name("nnUNetTrainer_seedone")
    with pytest.raises(SeedNameError, match="not a number"):
        split_seed_name("nnUNetTrainer_seed-1")
    with pytest.raises(SeedNameError, match="without leading zeros, nnUNetTrainer_seed7"):
        split_seed_name("nnUNetTrainer_seed07")
    with pytest.raises(SeedNameError, match="give the trainer without it, nnUNetTrainer"):
        seed_trainer_name("nnUNetTrainer_seed1", 2)
    assert issubclass(SeedNameError, TrainerNameError) and issubclass(BudgetNameError, TrainerNameError)


def test_variant_names_are_control_then_budget_then_seed():
    assert split_variant_name("nnUNetTrainerMambaUNet_NoScan_2ep4it_seed1") == (
        "seed", "nnUNetTrainerMambaUNet_NoScan_2ep4it", 1)
    assert split_variant_name("nnUNetTrainerMambaUNet_NoScan_2ep4it") == (
        "budget", "nnUNetTrainerMambaUNet_NoScan", Budget.of(2, 4))
    assert split_variant_name("nnUNetTrainerVMUNet_OneWay") == ("scan control", "nnUNetTrainerVMUNet", "OneWay")
    assert split_variant_name("nnUNetTrainerVMUNet_PaperRecipe") is None
    with pytest.raises(TrainerNameError, match="in the order .*, here nnUNetTrainerMambaUNet_2ep4it_seed1"):
        split_variant_name("nnUNetTrainerMambaUNet_seed1_2ep4it")
    with pytest.raises(TrainerNameError, match="here nnUNetTrainerMambaUNet_NoScan_seed1"):
        split_variant_name("nnUNetTrainerMambaUNet_seed1_NoScan")
    with pytest.raises(TrainerNameError, match="two seed suffixes; name one, e.g. nnUNetTrainer_seed2"):
        split_variant_name("nnUNetTrainer_seed1_seed2")
    with pytest.raises(TrainerNameError, match="two scan control suffixes"):
        split_variant_name("nnUNetTrainerVMUNet_NoScan_OneWay")


def test_the_scan_controls_build_their_parents_network_with_the_scan_replaced():
    for name, parent, scan in (("nnUNetTrainerMambaUNet_NoScan", trainers.nnUNetTrainerMambaUNet, "none"),
                               ("nnUNetTrainerVMUNet_OneWay_2ep4it", trainers.nnUNetTrainerVMUNet, "one_way"),
                               ("nnUNetTrainerMambaUNet_Tiny_NoScan_1ep2it_seed3", trainers.nnUNetTrainerMambaUNet_Tiny,
                                "none")):
        cls = trainer_variant(name)
        assert cls.__name__ == name and issubclass(cls, parent)
        assert cls.fixed_network_kwargs == {**parent.fixed_network_kwargs, "scan": scan}
        assert cls.recipe is parent.recipe
    assert trainer_variant("nnUNetTrainerMambaUNet_Tiny_NoScan").budget == trainers.TINY_BUDGET
    with pytest.raises(TrainerNameError, match="nnUNetTrainer trains no such network"):
        trainer_variant("nnUNetTrainer_NoScan")


def test_the_scan_controls_build_3d_networks_from_3d_plans():
    plans = ConfigurationManager({"patch_size": [32, 32, 32], "spacing": [1.0, 1.0, 1.0], "architecture": {
        "network_class_name": "nnunetv2_mamba.nets.vm_unet.VMUNet", "_kw_requires_import": [],
        "arch_kwargs": {"dims": [8, 16, 32, 64], "num_directions": 6}}})  # as our planner writes them
    for cls, scan, directions in ((trainers.nnUNetTrainerVMUNet, "cross", 6),
                                  (trainer_variant("nnUNetTrainerVMUNet_OneWay"), "one_way", 1),
                                  (trainer_variant("nnUNetTrainerVMUNet_NoScan"), "none", 6)):
        network = cls.build_network_architecture(None, plans, 1, 2, False)
        mixers = [m for m in network.modules() if isinstance(m, SelectiveScanMixer)]
        assert network.spatial_dims == 3 and network.geometry.scan == scan
        assert {(m.scan_kind, m.directions.num_directions) for m in mixers} == {(scan, directions)}
        assert network(torch.zeros(1, 1, 32, 32, 32)).shape == (1, 2, 32, 32, 32)


def test_nnunets_own_search_finds_every_variant_from_a_fresh_python(nnunet_trainer_search):
    """Through the shim folder, as nnUNetv2_train, --c, --val and nnUNetv2_predict look trainers up."""
    script = """
import pickle
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name as find
for name in ('nnUNetTrainerMambaUNet_NoScan', 'nnUNetTrainerVMUNet_OneWay_2ep4it_seed0', 'nnUNetTrainer_seed2',
             'nnUNetTrainerMambaUNet_Tiny_seed3'):
    cls = find(name)
    assert pickle.loads(pickle.dumps(cls)) is cls
    print('FOUND', name, cls.fixed_network_kwargs.get('scan') if hasattr(cls, 'fixed_network_kwargs') else None,
          getattr(cls, 'seed', None))
"""
    output = nnunet_trainer_search(script, {**os.environ, "nnUNet_extTrainer": str(REPO / "trainers")}).stdout
    assert [line for line in output.splitlines() if line.startswith("FOUND")] == [
        "FOUND nnUNetTrainerMambaUNet_NoScan none None", "FOUND nnUNetTrainerVMUNet_OneWay_2ep4it_seed0 one_way 0",
        "FOUND nnUNetTrainer_seed2 None 2", "FOUND nnUNetTrainerMambaUNet_Tiny_seed3 None 3"]


def test_derived_seeds_differ_per_stream():
    assert derived_seeds(1, 0, 0) == derived_seeds(1, 0, 0)
    assert len({derived_seeds(1, 0, 0)[0], derived_seeds(2, 0, 0)[0], derived_seeds(1, 1, 0)[0],
                derived_seeds(1, 0, 1)[0]}) == 4
    assert len(set(derived_seeds(1, 0, 0, 1, count=3))) == 3


@pytest.fixture(scope="module")
def workspace(planned_phantom, tiny_mamba_plans) -> dict:
    """The session's phantom with our Mamba-UNet plans cut to 32x32 (conftest.tiny_mamba_plans), data loading in
    process; each test gives nnU-Net a results folder of its own."""
    assert tiny_mamba_plans.stem == PLANS
    root = planned_phantom["root"]
    return {"root": root, "env": on_planned_phantom(planned_phantom, root / "results")}


@pytest.fixture(autouse=True)
def restore_deterministic_algorithms():
    """A seeded trainer turns torch's deterministic mode on for its process: off again for the other tests."""
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    yield
    torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def seeded_trainer(workspace, monkeypatch, tmp_path, name: str):
    """An initialised ``name`` trainer on CPU, in process, writing to ``tmp_path``."""
    return initialised_trainer(trainer_variant(name), workspace, PLANS, tmp_path, monkeypatch)


def first_training_batch(trainer) -> torch.Tensor:
    train, val = trainer.get_dataloaders()
    try:
        return torch.as_tensor(next(train)["data"]).clone()
    finally:
        for augmenter in (train, val):
            getattr(augmenter, "_finish", lambda: None)()


def test_the_seed_decides_the_initial_weights(workspace, monkeypatch, tmp_path):
    weights = {}
    for run_name, name in (("a", f"{TINY}_seed1"), ("b", f"{TINY}_seed1"), ("c", f"{TINY}_seed2")):
        trainer = seeded_trainer(workspace, monkeypatch, tmp_path / run_name, name)
        weights[run_name] = trainer.network.state_dict()
    assert all(torch.equal(weights["a"][k], weights["b"][k]) for k in weights["a"])
    assert [k for k in weights["a"] if not torch.equal(weights["a"][k], weights["c"][k])]


@pytest.mark.parametrize("processes", ["0", "1"])
def test_the_seed_decides_the_augmented_batches_in_process_and_in_nnunets_workers(workspace, monkeypatch, tmp_path,
                                                                                 processes):
    """One worker process (nnU-Net's NonDetMultiThreadedAugmenter hands batches out in the order its workers finish
    them, so only one worker gives a reproducible order); 0: augmentation in the training process."""
    monkeypatch.setenv("nnUNet_n_proc_DA", processes)
    batches = {}
    for run_name, name in (("a", f"{TINY}_seed1"), ("b", f"{TINY}_seed1"), ("c", f"{TINY}_seed2")):
        batches[run_name] = first_training_batch(seeded_trainer(workspace, monkeypatch, tmp_path / run_name, name))
    assert torch.equal(batches["a"], batches["b"])
    assert not torch.equal(batches["a"], batches["c"])


def test_one_seed_twice_trains_bit_identical_checkpoints_through_the_stock_cli(workspace, tmp_path):
    """Two 2-epoch trainings of the tiny Mamba-UNet with seed 1 (nnU-Net's final validation included), each in its
    own nnUNet_results; then nnUNetv2_predict finds the seeded trainer by name and predicts with it."""
    name = f"{TINY}_seed1"
    folders = []
    for results in (tmp_path / "first", tmp_path / "second"):
        env = {**workspace["env"], "nnUNet_results": str(results)}
        run(["nnUNetv2_train", "900", "2d", "0", "-tr", name, "-p", PLANS, "-device", "cpu"], env)
        folders.append(results / DATASET / f"{name}__{PLANS}__2d")
    weights = [read_training_checkpoint(folder / "fold_0" / "checkpoint_final.pth")["network_weights"]
               for folder in folders]
    assert weights[0].keys() == weights[1].keys()
    assert [k for k in weights[0] if not torch.equal(weights[0][k], weights[1][k])] == []
    setup = json.loads((folders[0] / "fold_0" / "training_setup.json").read_text())
    assert (setup["trainer"], setup["seed"], setup["scan"], setup["epochs"]) == (name, 1, "cross", 2)
    images, output = tmp_path / "images", tmp_path / "predicted"
    images.mkdir()
    shutil.copy(workspace["root"] / "raw" / DATASET / "imagesTr" / "phantom_000_0000.nii.gz", images)
    run(["nnUNetv2_predict", "-i", str(images), "-o", str(output), "-d", "900", "-c", "2d", "-tr", name, "-p",
         PLANS, "-f", "0", "-device", "cpu", "-npp", "1", "-nps", "1"],
        {**workspace["env"], "nnUNet_results": str(tmp_path / "first")})
    assert [p.name for p in output.glob("*.nii.gz")] == ["phantom_000.nii.gz"]
