"""Score a folder of predicted segmentations against reference segmentations; write JSON and CSV."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from nnunetv2_mamba.evaluation.aggregate import CLASS_MEAN, aggregate, with_class_mean
from nnunetv2_mamba.evaluation.metrics import METRICS, case_metrics

MISSING_SHOWN = 20  # predictions without a reference named in the error, at most


def foreground_labels(dataset_json: dict) -> dict[str, int]:
    """{class name: label value} of the foreground classes of an nnU-Net dataset.json (no background/ignore)."""
    labels = {}
    for name, value in dataset_json["labels"].items():
        if isinstance(value, (list, tuple)):
            raise ValueError(f"label {name!r} is a region {value}; region-based datasets are not supported here — "
                             "use nnU-Net's nnUNetv2_evaluate_folder for them.")
        if name != "ignore" and int(value) != 0:
            labels[name] = int(value)
    return labels


def evaluate_folder(reference_dir: str | Path, prediction_dir: str | Path, dataset_json: dict,
                    progress: bool = True) -> dict:
    """{"labels", "cases": {case: {class: {metric: value}}}, "aggregate": {class: {metric: summary}}, ...}.

    Cases are paired by the prediction folder: every prediction file (dataset_json["file_ending"]) in
    ``prediction_dir`` is scored against the file of the same name in ``reference_dir`` (one error naming the
    predictions without one); references without a prediction are not scored. Spacing (mm) comes from the
    reference file. Class ``"mean"`` is the per-case mean over the foreground classes. See
    ``nnunetv2_mamba.evaluation.metrics`` for definitions and empty-mask rules.
    """
    from nnunetv2.imageio.reader_writer_registry import determine_reader_writer_from_dataset_json
    from tqdm import tqdm

    reference_dir, prediction_dir = Path(reference_dir), Path(prediction_dir)
    ending = dataset_json["file_ending"]
    predictions = sorted(p for p in prediction_dir.iterdir() if p.name.endswith(ending))
    if not predictions:
        raise FileNotFoundError(f"no '*{ending}' predictions in {prediction_dir}; run nnUNetv2_predict first.")
    missing = [p.name for p in predictions if not (reference_dir / p.name).is_file()]
    if missing:
        shown = ", ".join(missing[:MISSING_SHOWN]) + (f" and {len(missing) - MISSING_SHOWN} more"
                                                      if len(missing) > MISSING_SHOWN else "")
        raise FileNotFoundError(f"{len(missing)} of {len(predictions)} predictions in {prediction_dir} have no "
                                f"reference in {reference_dir}: {shown}. Pass the folder holding their ground-truth "
                                "segmentations, or move these predictions out of the prediction folder.")
    reader = determine_reader_writer_from_dataset_json(dataset_json, str(reference_dir / predictions[0].name))()
    labels = foreground_labels(dataset_json)
    cases = {}
    for path in tqdm(predictions, desc=f"metrics {prediction_dir.name}", disable=not progress):
        reference, properties = reader.read_seg(str(reference_dir / path.name))
        prediction, _ = reader.read_seg(str(path))
        scores = case_metrics(reference[0], prediction[0], labels, properties["spacing"])
        cases[path.name[: -len(ending)]] = with_class_mean(scores)
    return {"reference_dir": str(reference_dir), "prediction_dir": str(prediction_dir), "labels": labels,
            "metrics": list(METRICS), "cases": cases, "aggregate": aggregate(cases)}


def _finite_or_none(value: float):
    return None if isinstance(value, float) and math.isnan(value) else value


def write_results(results: dict, json_path: str | Path) -> tuple[Path, Path]:
    """Write ``results`` to ``json_path`` (NaN as null) and a per-case CSV (one row per case and class) beside it."""
    json_path = Path(json_path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(to_json_text(results))
    csv_path = json_path.with_suffix(".csv")
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case", "class", *results["metrics"]])
        for case, per_class in results["cases"].items():
            for name in [*results["labels"], CLASS_MEAN]:
                writer.writerow([case, name, *(per_class[name][m] for m in results["metrics"])])
    return json_path, csv_path


def to_json_text(results: dict) -> str:
    """JSON text with NaN written as null."""
    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return _finite_or_none(value)
    return json.dumps(clean(results), indent=2)


def load_results(json_path: str | Path) -> dict:
    """Inverse of ``write_results`` for the JSON (null back to NaN)."""
    def restore(value):
        if isinstance(value, dict):
            return {k: restore(v) for k, v in value.items()}
        if isinstance(value, list):
            return [restore(v) for v in value]
        return math.nan if value is None else value
    return restore(json.loads(Path(json_path).read_text()))
