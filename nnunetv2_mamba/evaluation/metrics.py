"""Per-case, per-class segmentation metrics of the Mamba-UNet / VM-UNet papers' Table 1.

Overlap metrics come from the confusion counts of one class against the rest (over all voxels of the image):
Dice = 2TP/(2TP+FP+FN), IoU = TP/(TP+FP+FN), Accuracy = (TP+TN)/N, Precision = TP/(TP+FP),
Sensitivity = TP/(TP+FN), Specificity = TN/(TN+FP).

Surface distances (mm, using the voxel spacing) come from ``medpy.metric.binary`` — the implementation the
papers' evaluation code calls — on the masks with singleton axes removed (a one-slice volume is a 2-D image;
otherwise every voxel of it would count as surface):
HD95 = 95th percentile of the pooled distances prediction->reference and reference->prediction surface
(``medpy.metric.binary.hd95``); ASD = mean distance from the prediction surface to the reference surface
(``medpy.metric.binary.asd(prediction, reference)``, as in the papers' code; not symmetrised).

Conventions for empty masks (stated, never hidden):
- both reference and prediction empty (class correctly absent): Dice = IoU = Precision = Sensitivity = 1 and
  HD95 = ASD = 0 — a perfect answer. nnU-Net's own summary.json gives NaN there instead.
- exactly one empty (class missed, or predicted where absent): Dice = IoU = 0, and whichever of Precision /
  Sensitivity has a zero denominator is 0; HD95 = ASD = NaN (undefined, no field-of-view-dependent penalty such
  as the image diagonal), left out of the means and counted in ``n_undefined_distance`` beside them.
- Specificity has a zero denominator only when the class fills the whole image: then it is 1 if the prediction
  does too, else 0.
"""
from __future__ import annotations

import math

import numpy as np

METRICS = ("Dice", "IoU", "Accuracy", "Precision", "Sensitivity", "Specificity", "HD95", "ASD")
DISTANCE_METRICS = ("HD95", "ASD")


def _ratio(numerator: int, denominator: int, both_empty: bool) -> float:
    """``numerator / denominator``; a zero denominator gives 1 when both masks are empty, else 0."""
    if denominator == 0:
        return 1.0 if both_empty else 0.0
    return numerator / denominator


def overlap_metrics(reference: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    """Dice, IoU, Accuracy, Precision, Sensitivity, Specificity of two boolean masks of one shape."""
    tp = int(np.count_nonzero(reference & prediction))
    fp = int(np.count_nonzero(~reference & prediction))
    fn = int(np.count_nonzero(reference & ~prediction))
    tn = reference.size - tp - fp - fn
    both_empty = tp + fp + fn == 0
    both_full = tn + fp + fn == 0
    return {
        "Dice": _ratio(2 * tp, 2 * tp + fp + fn, both_empty),
        "IoU": _ratio(tp, tp + fp + fn, both_empty),
        "Accuracy": (tp + tn) / reference.size,
        "Precision": _ratio(tp, tp + fp, both_empty),
        "Sensitivity": _ratio(tp, tp + fn, both_empty),
        "Specificity": _ratio(tn, tn + fp, both_full),
    }


def surface_metrics(reference: np.ndarray, prediction: np.ndarray, spacing) -> dict[str, float]:
    """HD95 and ASD in the unit of ``spacing`` (one value per array axis) of two boolean masks."""
    from medpy.metric.binary import asd, hd95

    has_reference, has_prediction = bool(reference.any()), bool(prediction.any())
    if not has_reference and not has_prediction:
        return {"HD95": 0.0, "ASD": 0.0}
    if has_reference != has_prediction:
        return {"HD95": math.nan, "ASD": math.nan}
    keep = [axis for axis, size in enumerate(reference.shape) if size > 1]
    shape = tuple(reference.shape[axis] for axis in keep)
    spacing = tuple(float(spacing[axis]) for axis in keep)
    reference, prediction = reference.reshape(shape), prediction.reshape(shape)
    return {"HD95": float(hd95(prediction, reference, voxelspacing=spacing)),
            "ASD": float(asd(prediction, reference, voxelspacing=spacing))}


def case_metrics(reference: np.ndarray, prediction: np.ndarray, labels: dict[str, int],
                 spacing) -> dict[str, dict[str, float]]:
    """{class name: {metric: value}} for label maps ``reference`` and ``prediction`` of one shape.

    ``labels`` maps class names to the foreground label values to score; ``spacing`` gives the voxel size per axis
    of the label maps (mm).
    """
    if reference.shape != prediction.shape:
        raise ValueError(f"reference shape {reference.shape} differs from prediction shape {prediction.shape}; "
                         "predictions must be written at the reference's resolution (nnUNetv2_predict does this).")
    if len(spacing) != reference.ndim:
        raise ValueError(f"spacing {tuple(spacing)} must give one value per axis of shape {reference.shape}.")
    results = {}
    for name, value in labels.items():
        ref_mask, pred_mask = reference == value, prediction == value
        results[name] = {**overlap_metrics(ref_mask, pred_mask), **surface_metrics(ref_mask, pred_mask, spacing)}
    return results
