"""Every method's plans made where missing, with the planner that owns them, and checked against the device.

nnU-Net's planners (``nnUNetPlans``, the ResEnc presets) run through ``nnUNetv2_plan_experiment -pl``, ours through
``nnunetv2_mamba plan_and_preprocess --no_pp``. A configuration ``<base>_bs<N>`` is added to the plans as
``{"inherits_from": base, "batch_size": N}`` (nnU-Net's way to change one setting of a configuration). Data are
preprocessed only where the configuration's data identifier has no folder yet: the ResEnc planners and ours share
``nnUNetPlans_2d`` / ``nnUNetPlans_3d_fullres`` with nnU-Net's default planner, so they reuse its data.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from nnunetv2_mamba.comparison.workspace import NnUNetPaths, nnunet_command
from nnunetv2_mamba.comparison.methods import MAMBA_PLANS, RESENC_PRESETS, STOCK_PLANS, Method

KNOWN_PLANS = (STOCK_PLANS, *(plans for plans, _, _ in RESENC_PRESETS.values()), *MAMBA_PLANS.values())


def planning_command(plans: str, dataset_id: int) -> list[str] | None:
    """The command that writes ``plans`` for a fingerprinted dataset; None for plans no known planner writes."""
    nnunet_planners = {STOCK_PLANS: [], **{p: ["-pl", planner] for p, planner, _ in RESENC_PRESETS.values()}}
    if plans in nnunet_planners:
        return [nnunet_command("nnUNetv2_plan_experiment"), "-d", str(dataset_id), *nnunet_planners[plans]]
    networks = {p: trainer.removeprefix("nnUNetTrainer") for trainer, p in MAMBA_PLANS.items()}
    if plans in networks:
        return [sys.executable, "-m", "nnunetv2_mamba", "plan_and_preprocess", "-d", str(dataset_id), "--networks",
                networks[plans], "--no_pp"]
    return None


class PlansError(RuntimeError):
    """Plans that cannot be made or used as asked; the message says what to do."""


def plans_file(paths: NnUNetPaths, dataset: str, plans: str) -> Path:
    return paths.preprocessed / dataset / f"{plans}.json"


def prepare_plans(method: Method, paths: NnUNetPaths, dataset: str, dataset_id: int, env: dict, log: Path) -> str:
    """Make ``method``'s plans, derived configuration and preprocessed data where missing; returns what was done
    (empty when nothing). ``PlansError`` before anything is written for plans no known planner makes."""
    path, done = plans_file(paths, dataset, method.plans), []
    if not path.is_file():
        command = planning_command(method.plans, dataset_id)
        if command is None:
            raise PlansError(f"{method.name(method.configuration)}: {path} does not exist and no known planner writes "
                             f"{method.plans} (known: {', '.join(KNOWN_PLANS)}). Plan it first, or name plans that "
                             "exist.")
        _run(command, env, log)
        done.append(f"planned {method.plans}")
    if method.derived_batch_size is not None and _add_derived_configuration(path, method):
        done.append(f"added {method.configuration} (inherits_from {method.base_configuration}, batch size "
                    f"{method.derived_batch_size})")
    identifier = data_identifier(path, method.configuration)
    if not (paths.preprocessed / dataset / identifier).is_dir():
        _run([nnunet_command("nnUNetv2_preprocess"), "-d", str(dataset_id), "-plans_name", method.plans,
              "-c", method.configuration, "-np", "2"], env, log)
        done.append(f"preprocessed {identifier}")
    return ", ".join(done)


def _add_derived_configuration(path: Path, method: Method) -> bool:
    """Add ``<base>_bs<N>`` to the plans file; False if it is there already with that batch size."""
    plans = json.loads(path.read_text())
    configurations = plans["configurations"]
    wanted = {"inherits_from": method.base_configuration, "batch_size": method.derived_batch_size}
    if method.base_configuration not in configurations:
        raise PlansError(f"{method.plans} has no configuration {method.base_configuration} for "
                         f"{method.configuration} to inherit from (it has {', '.join(configurations)}).")
    existing = configurations.get(method.configuration)
    if existing is not None:
        if existing != wanted:
            raise PlansError(f"{path} defines {method.configuration} as {existing}, not {wanted}: rename or remove "
                             "that configuration.")
        return False
    configurations[method.configuration] = wanted
    path.write_text(json.dumps(plans, indent=4))
    return True


def configuration_of(path: Path, configuration: str):
    """nnU-Net's ConfigurationManager of ``configuration`` in the plans file ``path`` (inheritance resolved)."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    manager = PlansManager(str(path))
    if configuration not in manager.available_configurations:
        raise PlansError(f"{path.name} has no configuration {configuration} (it has "
                         f"{', '.join(manager.available_configurations)}).")
    return manager.get_configuration(configuration)


def data_identifier(path: Path, configuration: str) -> str:
    return configuration_of(path, configuration).data_identifier


def check_runs_on_device(method: Method, path: Path, stock_path: Path, device: str) -> None:
    """``PlansError`` with the way out when a ResEnc preset's plans were made for a bigger device than this one: on
    CPU a batch larger than nnUNetPlans' for the same configuration (the presets plan for 8/24/40 GB of VRAM
    without nnU-Net's 5% cap), on CUDA less memory than the preset plans for."""
    preset = next((p for p, (plans, _, _) in RESENC_PRESETS.items() if plans == method.plans), None)
    if preset is None or method.derived_batch_size is not None:
        return
    batch = configuration_of(path, method.configuration).batch_size
    way_out = (f"run it at a stated batch size with --baseline-batch-size N (trains configuration "
               f"{method.configuration}_bsN, inherits_from {method.configuration}, in {method.plans}), or name "
               f"{method.model(method.trainer).identifier}_bsN in --trainers.")
    if device == "cpu":
        stock = configuration_of(stock_path, method.base_configuration).batch_size
        if batch > stock:
            raise PlansError(f"{method.plans} plans batch size {batch} for {method.configuration}, for a "
                             f"{RESENC_PRESETS[preset][2]} GB GPU; on the CPU nnUNetPlans' batch is {stock}: {way_out}")
    elif device.startswith("cuda"):
        import torch

        memory_gb = torch.cuda.get_device_properties(torch.device(device)).total_memory / 1024 ** 3
        if memory_gb < RESENC_PRESETS[preset][2]:
            raise PlansError(f"{method.plans} plans for a {RESENC_PRESETS[preset][2]} GB GPU, this one has "
                             f"{memory_gb:.0f} GB: choose a smaller --baseline-preset, or {way_out}")


def _run(command: list[str], env: dict, log: Path) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as handle:
        result = subprocess.run(command, env=env, stdout=handle, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise PlansError(f"{' '.join(command)} failed (log: {log}):\n{tail}")

