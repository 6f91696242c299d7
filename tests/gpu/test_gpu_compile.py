"""Check ``compile``: ``nnUNet_compile=t`` with the Mamba networks, as nnU-Net runs it, against the same steps eager.

On a tiny planned phantom dataset (six 64x64 cases, our Mamba-UNet planner), with ``nnUNetTrainerMambaUNet_Tiny``:

- one training step of the trainer's network and loss under AMP, torch.compile'd against eager from the same
  weights and batch: loss and every parameter gradient (PASS within COMPILED_STEP_RELATIVE_ERROR of each tensor's
  largest magnitude, nnunetv2_mamba/ops/tolerances.py: AMP computes in half precision, which Inductor's fused
  kernels round in another order);
- ``nnUNetv2_train`` on CUDA with nnUNet_compile=t and =f, each in its own process: both finish, the compiled one
  records ``torch_compile`` in training_setup.json, both losses finite (nnU-Net samples batches without a fixed
  seed, so the two runs' losses are reported, not compared);
- nnUNetPredictor with nnUNet_compile=t against it unset, on the eager run's model: the class probabilities of
  one case (PASS within COMPILED_PROBABILITY_ERROR) and the labels.

A dry run (CPU) runs only the training step, compiled with the aot_eager backend (Dynamo and AOTAutograd, no
Inductor): nnU-Net's trainer never compiles on the CPU, and Inductor's CPU build would dominate the dry run.
"""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nnunetv2_mamba.ops.tolerances import COMPILED_PROBABILITY_ERROR, COMPILED_STEP_RELATIVE_ERROR

from gpu_outcome import Outcome, errors

pytestmark = [pytest.mark.gpu, pytest.mark.timeout(420)]
REPOSITORY = Path(__file__).resolve().parents[2]
TRAINER, PLANS, DATASET_ID, DATASET = "nnUNetTrainerMambaUNet_Tiny", "nnUNetMambaUNetPlans", 900, \
    "Dataset900_CardiacPhantom"
COMMAND_TIMEOUT_S = 300
NEEDS_CUDA = "needs CUDA: nnU-Net's trainer never compiles on the CPU"


def nnunet_environment(root: Path, compile_: bool | None = None) -> dict:
    """nnU-Net's folders under ``root``, this checkout and its trainers first, one data-loading process."""
    env = {**os.environ, "nnUNet_raw": str(root / "raw"), "nnUNet_preprocessed": str(root / "preprocessed"),
           "nnUNet_results": str(root / "results"), "nnUNet_extTrainer": str(REPOSITORY / "trainers"),
           "nnUNet_def_n_proc": "1", "PYTHONPATH": os.pathsep.join(filter(None, [str(REPOSITORY),
                                                                                 os.environ.get("PYTHONPATH")]))}
    env.pop("nnUNet_n_proc_DA", None)  # the planner calls torch.set_num_threads(nnUNet_n_proc_DA): 0 crashes it
    if compile_ is not None:
        env.update(nnUNet_compile="t" if compile_ else "f", nnUNet_n_proc_DA="0",
                   nnUNet_results=str(root / ("results_compiled" if compile_ else "results")))
    return env


def run(command: list[str], env: dict) -> str:
    done = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=COMMAND_TIMEOUT_S)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command[:3])} exited {done.returncode}: {done.stdout[-1500:]}")
    return done.stdout


@pytest.fixture(scope="module")
def planned_root(settings, tmp_path_factory) -> Path:
    """The phantom, planned and preprocessed with our Mamba-UNet planner (a case of its own: a failure here is the
    planning's)."""
    return tmp_path_factory.mktemp("gpu_check_compile")


def test_plan_the_phantom(planned_root, report):
    report.case("plan the phantom (6 cases, 64x64)")
    from nnunetv2_mamba.synthetic import write_phantom_dataset
    write_phantom_dataset(planned_root / "raw", dataset_id=DATASET_ID, num_cases=6, image_size=(64, 64), seed=0)
    run([sys.executable, "-m", "nnunetv2_mamba", "plan_and_preprocess", "-d", str(DATASET_ID), "--networks",
         "MambaUNet", "-np", "2", "-npfp", "2"], nnunet_environment(planned_root))
    report.record(Outcome(True, "planned and preprocessed"))


def require_planned(root: Path) -> None:
    if not (root / "preprocessed" / DATASET / f"{PLANS}.json").is_file():
        pytest.skip("the phantom was not planned (see the planning case)")


def fold_folder(root: Path, compile_: bool) -> Path:
    results = "results_compiled" if compile_ else "results"
    return root / results / DATASET / f"{TRAINER}__{PLANS}__2d" / "fold_0"


def in_process_trainer(root: Path, device: str):
    """The tiny trainer on ``device``, initialised without compiling (nnUNet_compile=f)."""
    from nnunetv2_mamba.training.trainers import nnUNetTrainerMambaUNet_Tiny
    os.environ.update({k: v for k, v in nnunet_environment(root, False).items() if k.startswith("nnUNet_")})
    preprocessed = root / "preprocessed" / DATASET
    plans, dataset_json = (json.loads((preprocessed / name).read_text()) for name in (f"{PLANS}.json", "dataset.json"))
    plans["continue_training"] = False  # nnU-Net 2.8.1's get_trainer_from_args adds this key
    trainer = nnUNetTrainerMambaUNet_Tiny(plans, "2d", 0, dataset_json, torch.device(device))
    trainer.initialize()
    return trainer


def loss_and_gradients(trainer, network, data, target) -> dict[str, torch.Tensor]:
    """nnUNetTrainer.train_step's loss under autocast, and the gradient of every parameter (zero where the loss
    does not reach it, e.g. the deep-supervision head of weight 0: eager autograd says None, a compiled graph 0)."""
    with torch.autocast(data.device.type, enabled=data.device.type == "cuda"):
        loss = trainer.loss(network(data), target)
    names, parameters = zip(*getattr(network, "_orig_mod", network).named_parameters())  # compiled: the same names
    gradients = torch.autograd.grad(loss, parameters, allow_unused=True)
    return {"loss": loss.detach().float(), **{name: torch.zeros_like(p) if g is None else g.float()
                                              for name, p, g in zip(names, parameters, gradients)}}


def test_compiled_training_step_matches_eager(planned_root, settings, report):
    device = settings.device
    backend = "aot_eager" if settings.dry_run else "inductor"
    report.case(f"training step of {TRAINER}'s network, compiled vs eager, on {device}")
    require_planned(planned_root)
    torch.manual_seed(0)
    trainer = in_process_trainer(planned_root, device)
    eager = trainer.network
    compiled = torch.compile(copy.deepcopy(eager), backend=backend)
    data = torch.randn(2, 1, *trainer.configuration_manager.patch_size, device=device)
    with torch.no_grad():
        shapes = [tuple(output.shape[2:]) for output in eager(data)]
    target = [torch.randint(0, 4, (2, 1, *shape), device=device).float() for shape in shapes]
    expected = loss_and_gradients(trainer, eager, data, target)
    found = loss_and_gradients(trainer, compiled, data, target)
    table = {name: errors(found[name], expected[name]) for name in expected}
    worst = max(table, key=lambda name: table[name]["max_rel"])
    outcome = Outcome(all(entry["max_rel"] <= COMPILED_STEP_RELATIVE_ERROR for entry in table.values()),
                      f"loss {expected['loss'].item():.4g} eager, {found['loss'].item():.4g} compiled ({backend}); "
                      f"worst of loss and gradients: {worst}, rel {table[worst]['max_rel']:.2g} "
                      f"(PASS <= {COMPILED_STEP_RELATIVE_ERROR:g})", data={"errors": table})
    report.record(outcome)
    assert outcome.passed, outcome.result


def train(root: Path, compile_: bool, device: str) -> dict:
    """nnUNetv2_train in its own process; {"torch_compile": .., "losses": [...]} read from its files."""
    log = run(["nnUNetv2_train", str(DATASET_ID), "2d", "0", "-tr", TRAINER, "-p", PLANS, "-device", device],
              nnunet_environment(root, compile_))
    setup = json.loads((fold_folder(root, compile_) / "training_setup.json").read_text())
    losses = [float(line.split("train_loss")[1].split()[0]) for line in log.splitlines() if "train_loss" in line]
    return {"torch_compile": setup.get("torch_compile"), "losses": losses}


def test_nnunet_training_compiles(planned_root, settings, report):
    report.case(f"nnUNetv2_train {TRAINER} with nnUNet_compile=t vs f on {settings.device}" if not settings.dry_run
                else "nnUNetv2_train with nnUNet_compile=t vs f")
    if settings.dry_run:
        pytest.skip(NEEDS_CUDA)
    require_planned(planned_root)
    compiled, eager = train(planned_root, True, settings.device), train(planned_root, False, settings.device)
    finite = all(result["losses"] and bool(torch.isfinite(torch.tensor(result["losses"])).all())
                 for result in (compiled, eager))
    outcome = Outcome(bool(finite) and compiled["torch_compile"] is True and eager["torch_compile"] is False,
                      f"torch_compile recorded {compiled['torch_compile']} / {eager['torch_compile']}; train "
                      f"losses compiled {compiled['losses']}, eager {eager['losses']}",
                      data={"compiled": compiled, "eager": eager})
    report.record(outcome)
    assert outcome.passed, outcome.result


def predict_probabilities(root: Path, compile_: bool, device: str):
    """Probabilities of phantom_000 from the eager run's model, through nnUNetPredictor (compiled if asked)."""
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    os.environ.pop("nnUNet_compile", None)
    if compile_:
        os.environ["nnUNet_compile"] = "t"
    predictor = nnUNetPredictor(device=torch.device(device), use_mirroring=False, allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(fold_folder(root, False).parent), use_folds=(0,),
                                                   checkpoint_name="checkpoint_final.pth")
    image, properties = SimpleITKIO().read_images([str(root / "raw" / DATASET / "imagesTr" /
                                                       "phantom_000_0000.nii.gz")])
    labels, probabilities = predictor.predict_single_npy_array(image, properties, None, None, True)
    return torch.from_numpy(labels), torch.from_numpy(probabilities), type(predictor.network).__name__


def test_nnunet_prediction_compiles(planned_root, settings, report):
    report.case(f"nnUNetPredictor with nnUNet_compile=t vs unset on {settings.device}" if not settings.dry_run
                else "nnUNetPredictor with nnUNet_compile=t vs unset")
    if settings.dry_run:
        pytest.skip(NEEDS_CUDA)
    if not (fold_folder(planned_root, False) / "checkpoint_final.pth").is_file():
        pytest.skip("no trained model")
    labels, expected, eager_class = predict_probabilities(planned_root, False, settings.device)
    found_labels, found, compiled_class = predict_probabilities(planned_root, True, settings.device)
    table = errors(found, expected)
    agree = (found_labels == labels).float().mean().item()
    outcome = Outcome(compiled_class == "OptimizedModule" and table["max_abs"] <= COMPILED_PROBABILITY_ERROR,
                      f"network {compiled_class} vs {eager_class}; probabilities max abs {table['max_abs']:.2g} "
                      f"(PASS <= {COMPILED_PROBABILITY_ERROR:g}), labels agree on {100 * agree:.2f} % of the pixels",
                      data={"errors": table, "label_agreement": agree})
    report.record(outcome)
    assert outcome.passed, outcome.result
