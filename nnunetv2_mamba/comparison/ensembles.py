"""nnU-Net's model selection over exactly the compared models: ``find_best_configuration`` with their list.

``nnUNetv2_find_best_configuration -tr ... -p ... -c ...`` tries every trainer on every plans and configuration
and stops at the first combination that was never trained (a Mamba trainer on ResEnc plans, say); this calls the
same nnU-Net function with the benchmark's own (trainer, plans, configuration) triples, so nnU-Net ensembles every
pair, evaluates them on the cross-validation, picks the best model or ensemble, determines its postprocessing and
writes ``inference_information.json`` and ``inference_instructions.txt`` into ``nnUNet_results/DatasetXXX``.

Run as ``python -m nnunetv2_mamba.comparison.ensembles DATASET_ID FOLDS MODELS`` (FOLDS ``0,1``; MODELS a JSON list
of ``[trainer, plans, configuration]``): nnU-Net reads its folders from the environment when it is imported.
"""
from __future__ import annotations

import json
import sys
from dataclasses import astuple
from pathlib import Path

from nnunetv2_mamba.comparison.methods import Model

INFERENCE_INFORMATION = "inference_information.json"
INSTRUCTIONS = "inference_instructions.txt"


def find_best_command(dataset_id: int, folds: list[int], identifiers: list[str]) -> list[str]:
    """The command selecting among the models of ``identifiers`` (``Model.identifier``) over ``folds``."""
    models = [list(astuple(Model.from_identifier(identifier))) for identifier in identifiers]
    return [sys.executable, "-m", __name__, str(dataset_id), ",".join(map(str, folds)), json.dumps(models)]


def read_selection(dataset_results: Path) -> dict:
    """nnU-Net's ``inference_information.json`` of the dataset; one clear error when there is none."""
    path = dataset_results / INFERENCE_INFORMATION
    if not path.is_file():
        raise SystemExit(f"{path} does not exist: run the benchmark with --ensembles (or "
                         "nnUNetv2_find_best_configuration) first.")
    return json.loads(path.read_text())


def ensemble_folder(dataset_results: Path, key: str) -> Path:
    """Where nnU-Net wrote the merged cross-validation predictions of ensemble ``key``."""
    return dataset_results / "ensembles" / key


def selected_identifiers(selection: dict) -> list[str]:
    """The identifiers (``Model.identifier``) of the model or ensemble members nnU-Net chose."""
    return [Model(m["trainer"], m["plans_identifier"], m["configuration"]).identifier
            for m in selection["best_model_or_ensemble"]["selected_model_or_models"]]


def considered_identifiers(selection: dict) -> set[str]:
    """The identifiers (``Model.identifier``) of every model nnU-Net's selection was made over."""
    return {Model(m["trainer"], m["plans"], m["configuration"]).identifier for m in selection["considered_models"]}


def main(argv: list[str]) -> int:
    from nnunetv2.evaluation.find_best_configuration import find_best_configuration

    dataset_id, folds, models = int(argv[0]), tuple(int(f) for f in argv[1].split(",")), json.loads(argv[2])
    allowed = [{"trainer": t, "plans": p, "configuration": c} for t, p, c in models]
    find_best_configuration(dataset_id, allowed, allow_ensembling=True, folds=folds, strict=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
