"""``nnunetv2_mamba evaluate REF_DIR PRED_DIR -djfile dataset.json [-o out.json]``."""
from __future__ import annotations

DEFAULT_NAME = "metrics_table1.json"
NNUNET_SUMMARY = "summary.json"


def add_arguments(parser) -> None:
    parser.description = (
        "Dice, IoU, Accuracy, Precision, Sensitivity, Specificity, HD95 and ASD (mm) per case and class, with "
        "mean ± std. Cases are paired by PRED_DIR: every prediction is scored against the reference of the same "
        "name (an error names the predictions without one); references without a prediction are not scored and "
        "counted in the output, so nnU-Net's whole gt_segmentations folder can be REF_DIR for one fold's "
        "validation folder. Writes only its own JSON and per-case CSV (never nnU-Net's summary.json). Empty "
        "masks: both empty -> Dice 1, HD95/ASD 0; one empty -> Dice 0, HD95/ASD undefined (null, left out of "
        "the means and counted in n_undefined).")
    parser.add_argument("reference_dir", metavar="REF_DIR", help="folder with the reference segmentations")
    parser.add_argument("prediction_dir", metavar="PRED_DIR", help="folder with the predicted segmentations")
    parser.add_argument("-djfile", required=True, help="the dataset.json of the dataset")
    parser.add_argument("-o", dest="output", default=None,
                        help=f"output JSON (default PRED_DIR/{DEFAULT_NAME}); the CSV gets the same name, .csv")


def run(args) -> int:
    import json
    from pathlib import Path

    from nnunetv2_mamba.evaluation.folder import evaluate_folder, write_results

    if not Path(args.djfile).is_file():
        raise SystemExit(f"{args.djfile} does not exist; pass the dataset.json of your dataset.")
    output = Path(args.output) if args.output else Path(args.prediction_dir) / DEFAULT_NAME
    if output.name == NNUNET_SUMMARY:
        raise SystemExit(f"-o {output}: {NNUNET_SUMMARY} is nnU-Net's own file name; choose another name.")
    dataset_json = json.loads(Path(args.djfile).read_text())
    results = evaluate_folder(args.reference_dir, args.prediction_dir, dataset_json)
    references = [p for p in Path(args.reference_dir).iterdir() if p.name.endswith(dataset_json["file_ending"])]
    json_path, csv_path = write_results(results, output)
    for name, metrics in results["aggregate"].items():
        print(name.ljust(12), "  ".join(f"{m} {s['mean']:.4f}±{s['std']:.4f}" for m, s in metrics.items()))
    print(f"scored {len(results['cases'])} predictions in {args.prediction_dir}; "
          f"{len(references) - len(results['cases'])} references in {args.reference_dir} have no prediction "
          "and were not scored")
    print(f"wrote {json_path} and {csv_path}")
    return 0
