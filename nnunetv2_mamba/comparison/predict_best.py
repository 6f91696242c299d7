"""The challenge path: nnU-Net's chosen model or ensemble (``inference_information.json``) applied to a folder of
images with the stock commands, predict -> ensemble -> apply postprocessing, optionally scored, and its models
exported as nnU-Net zip files.

``nnunetv2_mamba predict-best -d DATASET -i IMAGES -o OUT [--labels LABELS] [--export DIR]``: OUT gets one folder per
member (``model_K_<identifier>``, the member's ``Model.identifier``, probabilities kept for ensembling),
``ensemble/`` for an ensemble and ``postprocessed/``, the submission. ``--export`` writes each member as
``nnUNetv2_export_model_to_zip`` packs it (install elsewhere with ``nnUNetv2_install_pretrained_model_from_zip``),
with the postprocessing file beside.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from nnunetv2_mamba.comparison.ensembles import read_selection, selected_identifiers
from nnunetv2_mamba.comparison.workspace import nnunet_command
from nnunetv2_mamba.comparison.execution import Job, job_key, job_log
from nnunetv2_mamba.comparison.methods import Model
from nnunetv2_mamba.comparison.prediction import is_predicted, prediction_job, test_cases

FINAL = "postprocessed"


def prediction_steps(dataset_id: int, selection: dict, input_dir: Path, output_dir: Path, device: str, executor,
                     env: dict, logs: Path, disable_tta: bool = False) -> list[list[Job]]:
    """The stock commands, in stages that run one after the other: the members' ``nnUNetv2_predict`` (together),
    ``nnUNetv2_ensemble`` for an ensemble, ``nnUNetv2_apply_postprocessing`` into ``output_dir/postprocessed``."""
    best, folds = selection["best_model_or_ensemble"], [str(f) for f in selection["folds"]]
    identifiers = selected_identifiers(selection)
    ensemble = len(identifiers) > 1
    members = [output_dir / f"model_{k + 1}_{identifier}" for k, identifier in enumerate(identifiers)]
    processes = env.get("nnUNet_def_n_proc", "2")
    predict = []
    for identifier, folder in zip(identifiers, members):
        model = Model.from_identifier(identifier)
        key = job_key("predict", folder.name)
        predict.append(prediction_job(key, dataset_id, model, folds, input_dir, folder, device, executor, env,
                                      job_log(logs, key), disable_tta, probabilities=ensemble))
    stages = [predict]
    merged = members[0]
    if ensemble:
        merged = output_dir / "ensemble"
        stages.append([Job(job_key("ensemble"), (nnunet_command("nnUNetv2_ensemble"), "-i", *map(str, members),
                                                 "-o", str(merged), "-np", processes),
                           env, job_log(logs, job_key("ensemble")))])
    stages.append([Job(job_key("postprocess"), (
        nnunet_command("nnUNetv2_apply_postprocessing"), "-i", str(merged), "-o", str(output_dir / FINAL),
        "-pp_pkl_file", best["postprocessing_file"], "-plans_json", best["some_plans_file"], "-np", processes),
        env, job_log(logs, job_key("postprocess")))])
    return stages


def export_jobs(dataset_id: int, selection: dict, export_dir: Path, env: dict, logs: Path) -> list[Job]:
    """``nnUNetv2_export_model_to_zip`` of every chosen model, as ``export_dir/<identifier>.zip``
    (``Model.identifier``)."""
    folds = [str(f) for f in selection["folds"]]
    jobs = []
    for identifier in selected_identifiers(selection):
        model = Model.from_identifier(identifier)
        key = job_key("export", identifier)
        jobs.append(Job(key, tuple(model.export_command(dataset_id, folds, export_dir / f"{identifier}.zip")), env,
                        job_log(logs, key)))
    return jobs


def run_stages(executor, stages: list[list]) -> None:
    """Each stage's jobs through ``executor``, the next stage only after every job of this one succeeded."""
    for stage in stages:
        outcomes = executor.run(stage)
        failed = [o for o in outcomes.values() if o.state != "done"]
        if failed:
            raise RuntimeError("\n".join(f"{o.key} failed (log: {o.log_file}): {o.error}" for o in failed))


def predict_best(dataset_id: int, dataset_results: Path, input_dir: Path, output_dir: Path, device: str, env: dict,
                 executor, disable_tta: bool = False, replace: bool = False) -> Path:
    """Predict ``input_dir`` with nnU-Net's chosen model or ensemble; returns the postprocessed folder. Nothing is
    run when it holds every case already; a non-empty ``output_dir`` otherwise is an error (nothing is deleted)
    unless ``replace``, which empties it first (for a folder the caller owns)."""
    selection = read_selection(dataset_results)
    chosen = Path(selection["best_model_or_ensemble"]["some_plans_file"]).parent  # nnU-Net copied dataset.json there
    ending = json.loads((chosen / "dataset.json").read_text())["file_ending"]
    final = output_dir / FINAL
    if is_predicted(final, test_cases(input_dir, ending), ending):
        return final
    if output_dir.exists() and any(output_dir.iterdir()):
        if not replace:
            raise SystemExit(f"{output_dir} is not empty and holds no finished prediction of {input_dir}; give an "
                             "empty or new folder (nothing was deleted).")
        shutil.rmtree(output_dir)
    run_stages(executor, prediction_steps(dataset_id, selection, input_dir, output_dir, device, executor, env,
                                          output_dir / "logs", disable_tta))
    return final


def export_best(dataset_id: int, dataset_results: Path, export_dir: Path, env: dict, executor) -> list[Path]:
    """The chosen models as zip files in ``export_dir``, with their ``postprocessing.pkl`` and nnU-Net's
    ``inference_instructions.txt``; returns the zip files."""
    from nnunetv2_mamba.comparison.ensembles import INSTRUCTIONS

    selection = read_selection(dataset_results)
    export_dir.mkdir(parents=True, exist_ok=True)
    jobs = export_jobs(dataset_id, selection, export_dir, env, export_dir / "logs")
    run_stages(executor, [jobs])
    shutil.copy(selection["best_model_or_ensemble"]["postprocessing_file"], export_dir / "postprocessing.pkl")
    shutil.copy(dataset_results / INSTRUCTIONS, export_dir / INSTRUCTIONS)
    return [Path(job.command[job.command.index("-o") + 1]) for job in jobs]


def add_arguments(parser) -> None:
    parser.description = (
        "Predict a folder with the model or ensemble nnU-Net chose (nnUNet_results/DatasetXXX/"
        "inference_information.json, written by `nnunetv2_mamba benchmark --ensembles` or "
        "nnUNetv2_find_best_configuration): nnUNetv2_predict per member, nnUNetv2_ensemble, "
        "nnUNetv2_apply_postprocessing; OUT/postprocessed is the submission. --labels scores it, --export packs the "
        "models as nnU-Net zip files.")
    parser.add_argument("-d", dest="dataset_id", type=int, required=True, help="dataset id")
    parser.add_argument("-i", dest="input_dir", required=True, help="images to predict (imagesTs layout)")
    parser.add_argument("-o", dest="output_dir", required=True,
                        help="output folder: new or empty (or a finished earlier run of the same command)")
    parser.add_argument("--labels", default=None, help="reference segmentations: score OUT/postprocessed")
    parser.add_argument("--export", default=None, help="folder for the models' zip files")
    parser.add_argument("-device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="auto: cuda where the prediction runs has a GPU, else cpu")
    parser.add_argument("--disable-tta", action="store_true", help="no mirroring")


def run(args) -> int:
    from nnunetv2_mamba.comparison.execution import make_executor
    from nnunetv2_mamba.comparison.workspace import NnUNetPaths, nnunet_environment
    from nnunetv2_mamba.evaluation.folder import evaluate_folder, write_results

    paths = NnUNetPaths.from_environment()
    dataset = paths.dataset_name(args.dataset_id)
    env = nnunet_environment(paths)
    output_dir = Path(args.output_dir)
    executor = make_executor("inline", output_dir / "jobs")
    final = predict_best(args.dataset_id, paths.results / dataset, Path(args.input_dir), output_dir, args.device, env,
                         executor, args.disable_tta)
    print(f"submission: {final}")
    if args.labels:
        dataset_json = json.loads((paths.preprocessed / dataset / "dataset.json").read_text())
        json_path, _ = write_results(evaluate_folder(args.labels, final, dataset_json), output_dir / "scores.json")
        print(f"scores: {json_path}")
    if args.export:
        for zip_file in export_best(args.dataset_id, paths.results / dataset, Path(args.export), env, executor):
            print(f"exported: {zip_file}")
    return 0
