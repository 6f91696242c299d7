"""Table-1 metrics of the Mamba-UNet / VM-UNet papers (Dice, IoU, Acc, Pre, Sen, Spe, HD95, ASD) for nnU-Net folders."""
from nnunetv2_mamba.evaluation.aggregate import CLASS_MEAN, aggregate, summarize
from nnunetv2_mamba.evaluation.folder import evaluate_folder, foreground_labels, load_results, write_results
from nnunetv2_mamba.evaluation.metrics import METRICS, case_metrics, overlap_metrics, surface_metrics

__all__ = ["METRICS", "CLASS_MEAN", "case_metrics", "overlap_metrics", "surface_metrics", "aggregate", "summarize",
           "evaluate_folder", "foreground_labels", "write_results", "load_results"]
