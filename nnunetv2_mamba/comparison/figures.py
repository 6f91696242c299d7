"""The report's figures, each from the saved results JSON (and the image/prediction files it names)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nnunetv2_mamba.evaluation.aggregate import CLASS_MEAN  # noqa: E402

CLASS_COLOURS = ("tab:red", "tab:green", "tab:blue", "tab:orange", "tab:purple", "tab:cyan")


def dice_histograms(split: dict, path: Path) -> Path:
    """One histogram per method of the per-case Dice (mean over classes) of ``split`` {method: metrics results}."""
    methods = list(split)
    fig, axes = plt.subplots(1, len(methods), figsize=(4 * len(methods), 3.2), squeeze=False, sharey=True)
    bins = np.linspace(0, 1, 21)
    for ax, method in zip(axes[0], methods):
        values = [case[CLASS_MEAN]["Dice"] for case in split[method]["cases"].values()]
        ax.hist(values, bins=bins, color="tab:blue", edgecolor="black")
        ax.set_title(f"{method}\nmean Dice {np.mean(values):.3f} (n={len(values)})", fontsize=9)
        ax.set_xlabel("Dice (mean over classes)")
    axes[0][0].set_ylabel("cases")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def training_curves(curves: dict, path: Path) -> Path:
    """Per method: train/validation loss and nnU-Net's pseudo Dice per epoch, one line per fold."""
    methods = list(curves)
    fig, axes = plt.subplots(1, len(methods), figsize=(4.5 * len(methods), 3.4), squeeze=False)
    for ax, method in zip(axes[0], methods):
        dice_axis = ax.twinx()
        for fold, log in curves[method].items():
            epochs = np.arange(1, len(log["train_losses"]) + 1)
            ax.plot(epochs, log["train_losses"], "-o", ms=3, color="tab:blue", label=f"train loss f{fold}")
            ax.plot(epochs, log["val_losses"], "-o", ms=3, color="tab:red", label=f"val loss f{fold}")
            dice_axis.plot(epochs, log["mean_fg_dice"], "--s", ms=3, color="tab:green", label=f"pseudo Dice f{fold}")
        ax.set_title(method, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        dice_axis.set_ylabel("pseudo Dice")
        dice_axis.set_ylim(0, 1)
        handles = ax.get_legend_handles_labels()[0] + dice_axis.get_legend_handles_labels()[0]
        ax.legend(handles=handles, fontsize=6, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _read_2d(path: Path) -> np.ndarray:
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _slice_index(reference: np.ndarray) -> int:
    """The slice (first axis) of a volume with the most foreground; 0 for a 2-D image."""
    if reference.ndim == 2:
        return 0
    return int(np.argmax((reference > 0).reshape(reference.shape[0], -1).sum(1)))


def _take(array: np.ndarray, index: int) -> np.ndarray:
    return array if array.ndim == 2 else array[index]


def overlays(sources: dict, labels: dict[str, int], path: Path, num_cases: int = 4, seed: int = 0) -> Path:
    """Rows: random cases common to all methods; columns: methods. Each panel: the image, the reference contours
    (dashed) and the method's contours (solid), one colour per class.

    ``sources`` = {"images": dir with CASE_0000 files, "references": dir, "predictions": {method: [dirs]}}.
    """
    methods = list(sources["predictions"])
    found = {m: {p.name: p for d in dirs for p in Path(d).glob("*.nii.gz")}
             for m, dirs in sources["predictions"].items()}
    common = sorted(set.intersection(*(set(f) for f in found.values())))
    chosen = sorted(np.random.default_rng(seed).choice(common, min(num_cases, len(common)), replace=False))
    fig, axes = plt.subplots(len(chosen), len(methods), figsize=(3.2 * len(methods), 3.2 * len(chosen)),
                             squeeze=False)
    for row, name in enumerate(chosen):
        reference = _read_2d(Path(sources["references"]) / name)
        index = _slice_index(reference)
        image = _take(_read_2d(Path(sources["images"]) / name.replace(".nii.gz", "_0000.nii.gz")), index)
        reference = _take(reference, index)
        for ax, method in zip(axes[row], methods):
            prediction = _take(_read_2d(found[method][name]), index)
            ax.imshow(image, cmap="gray")
            for colour, value in zip(CLASS_COLOURS, labels.values()):
                for mask, style in ((reference, "dashed"), (prediction, "solid")):
                    if (mask == value).any():
                        ax.contour(mask == value, levels=[0.5], colors=colour, linestyles=style, linewidths=1)
            ax.set_title(f"{method}\n{name.replace('.nii.gz', '')}", fontsize=8)
            ax.axis("off")
    legend = [plt.Line2D([], [], color=c, label=n) for c, n in zip(CLASS_COLOURS, labels)]
    legend += [plt.Line2D([], [], color="k", ls="dashed", label="reference"),
               plt.Line2D([], [], color="k", label="prediction")]
    fig.legend(handles=legend, loc="lower center", ncol=len(legend), fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path

