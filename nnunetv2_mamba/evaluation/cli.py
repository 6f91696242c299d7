"""``nnunetv2_mamba evaluate REF_DIR PRED_DIR -djfile dataset.json -pfile plans.json [-o out.json]``."""
from __future__ import annotations

DEFAULT_NAME = "metrics_table1.json"


def add_arguments(parser) -> None:
    parser.description = (
        "Dice, IoU, Accuracy, Precision, Sensitivity, Specificity, HD95 and ASD (mm) per case and class, with "
        "mean ± std. Writes a JSON and a per-case CSV beside nnU-Net's own summary.json (also written). "
        "Empty masks: both empty -> Dice 1, HD95/ASD 0; one empty -> Dice 0, HD95/ASD undefined (null, left "
        "out of the means and counted in n_undefined).")
    parser.add_argument("reference_dir", metavar="REF_DIR", help="folder with the reference segmentations")
    parser.add_argument("prediction_dir", metavar="PRED_DIR", help="folder with the predicted segmentations")
    parser.add_argument("-djfile", required=True, help="the dataset.json of the dataset")
    parser.add_argument("-pfile", required=True, help="the plans.json used (for nnU-Net's own summary.json)")
    parser.add_argument("-o", dest="output", default=None,
                        help=f"output JSON (default PRED_DIR/{DEFAULT_NAME}); the CSV gets the same name, .csv")
    parser.add_argument("-np", dest="num_processes", type=int, default=2,
                        help="processes for nnU-Net's summary.json (default 2)")


def run(args) -> int:
    import json
    from pathlib import Path

    from nnunetv2.evaluation.evaluate_predictions import compute_metrics_on_folder2

    from nnunetv2_mamba.evaluation.folder import evaluate_folder, write_results

    for path in (args.djfile, args.pfile):
        if not Path(path).is_file():
            raise SystemExit(f"{path} does not exist; pass the dataset.json and plans.json of your dataset.")
    compute_metrics_on_folder2(args.reference_dir, args.prediction_dir, args.djfile, args.pfile,
                               num_processes=args.num_processes)
    results = evaluate_folder(args.reference_dir, args.prediction_dir, json.loads(Path(args.djfile).read_text()))
    json_path, csv_path = write_results(results, args.output or Path(args.prediction_dir) / DEFAULT_NAME)
    for name, metrics in results["aggregate"].items():
        print(name.ljust(12), "  ".join(f"{m} {s['mean']:.4f}±{s['std']:.4f}" for m, s in metrics.items()))
    print(f"wrote {json_path}, {csv_path} and {Path(args.prediction_dir) / 'summary.json'}")
    return 0
