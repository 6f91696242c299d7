"""The report's figures, each from the saved results JSON (and the image/prediction files it names).

Each figure has a builder returning the matplotlib Figure (``*_figure``) and a writer that saves it with
``bbox_inches="tight"``, so that legends placed outside the axes are never clipped.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nnunetv2_mamba.evaluation.aggregate import CLASS_MEAN  # noqa: E402

class FigureNotDrawn(RuntimeError):
    """A figure its data cannot make; the message says why (the report writes it in the figure's place)."""


GREY = 7  # index of the grey in tab10 (and 14, 15 in tab20): invisible on a grey-scale image, left out


def distinct_colours(count: int) -> list[tuple[float, float, float]]:
    """``count`` distinct RGB colours, none grey: tab10 (9 colours), then tab20 (18), then evenly spaced hues."""
    if count <= 9:
        palette = [c for i, c in enumerate(plt.get_cmap("tab10").colors) if i != GREY]
    elif count <= 18:
        palette = [c for i, c in enumerate(plt.get_cmap("tab20").colors) if i not in (2 * GREY, 2 * GREY + 1)]
    else:
        palette = [plt.get_cmap("hsv")(i / count)[:3] for i in range(count)]
    return [tuple(float(v) for v in c) for c in palette[:count]]


def save(fig, path: Path, dpi: int = 100) -> Path:
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


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
    return save(fig, path)


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
        ax.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3)
    fig.tight_layout()
    return save(fig, path)


def learning_curve_figure(curves: dict):
    """All methods on one figure: nnU-Net's validation pseudo Dice (dotted) and its EMA (solid; nnU-Net's own, which
    trails the points while they rise: after 10 epochs the first epoch still weighs 0.35) against training
    iterations (epochs x the run's iterations per epoch, left) and against training wall-clock time (summed epoch
    durations, so pauses between a killed run and its --c do not count, right). One colour per method; with
    several folds, one line of each kind per fold."""
    methods = list(curves)
    colours = distinct_colours(len(methods))
    fig, (by_iterations, by_time) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for colour, method in zip(colours, methods):
        for fold, log in curves[method].items():
            epochs = len(log["ema_fg_dice"])
            iterations = np.arange(1, epochs + 1) * log["iterations_per_epoch"]
            durations = np.subtract(log["epoch_end_timestamps"][:epochs], log["epoch_start_timestamps"][:epochs])
            seconds = np.cumsum(durations)
            label = method if len(curves[method]) == 1 else f"{method} fold {fold}"
            for ax, x in ((by_iterations, iterations), (by_time, seconds)):
                ax.plot(x, log["mean_fg_dice"][:epochs], ":", marker=".", color=colour, alpha=0.6)
                ax.plot(x, log["ema_fg_dice"], "-", marker="o", ms=3, color=colour, label=label)  # marker: 1 epoch
    by_iterations.set_xlabel("training iterations")
    by_time.set_xlabel("training wall-clock time (s)")
    by_iterations.set_ylabel("validation Dice (foreground mean)")
    by_iterations.set_ylim(0, 1)
    for ax in (by_iterations, by_time):
        ax.grid(alpha=0.3)
    handles = by_iterations.get_legend_handles_labels()[0]
    ema = "nnU-Net's EMA (0.9 x last + 0.1 x new): lags a rising curve"
    handles += [plt.Line2D([], [], color="k", ls="-", marker="o", ms=3, label=ema),
                plt.Line2D([], [], color="k", ls=":", marker=".", label="pseudo Dice")]
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(len(handles), 4),
               fontsize=8)
    fig.tight_layout()
    return fig


def learning_curves(curves: dict, path: Path) -> Path:
    return save(learning_curve_figure(curves), path)


def _reader(file_ending: str, example: Path):
    """The reader nnU-Net uses for ``file_ending`` (any format it reads: .nii.gz, .png, .tif, .nrrd, .mha, ...)."""
    from nnunetv2.imageio.reader_writer_registry import determine_reader_writer_from_file_ending

    return determine_reader_writer_from_file_ending(file_ending, str(example), verbose=False)()


def _read(reader, path: Path, segmentation: bool = False) -> np.ndarray:
    """The first channel of an image (or a segmentation) as (z, y, x); a 2-D image has z = 1."""
    data, _ = reader.read_seg(str(path)) if segmentation else reader.read_images([str(path)])
    return np.asarray(data[0])


def _slice_index(reference: np.ndarray) -> int:
    """The slice (first axis) of a volume with the most foreground; 0 for a 2-D image."""
    if reference.ndim == 2:
        return 0
    return int(np.argmax((reference > 0).reshape(reference.shape[0], -1).sum(1)))


def _take(array: np.ndarray, index: int) -> np.ndarray:
    return array if array.ndim == 2 else array[index]


def _wrapped(title: str, width: int = 30) -> str:
    """A panel title in lines of at most ``width`` characters where it can break (after "_", "+" or a space; a
    3.2-inch panel at 8 pt), so that long method names do not run into their neighbours'."""
    import re

    lines = [""]
    for token in re.findall(r"[^_+ ]+[_+ ]*|[_+ ]+", title):
        if lines[-1] and len(lines[-1]) + len(token.rstrip()) > width:
            lines.append("")
        lines[-1] += token
    return "\n".join(line.rstrip() for line in lines)


def overlay_figure(sources: dict, labels: dict[str, int], num_cases: int = 4, seed: int = 0):
    """Rows: random cases common to all methods; columns: methods. Each panel: the image, the reference contours
    (dashed) and the method's contours (solid), one colour per class (``distinct_colours``, any number of
    classes), every class named in the figure legend below the panels.

    ``sources`` = {"images": dir with CASE_0000 files, "references": dir, "predictions": {method: [dirs]},
    "file_ending": the dataset's (default .nii.gz)}. ``FigureNotDrawn`` when no case is predicted by every method.
    """
    methods = list(sources["predictions"])
    colours = distinct_colours(len(labels))
    ending = sources.get("file_ending", ".nii.gz")
    found = {m: {p.name[: -len(ending)]: p for d in dirs for p in Path(d).glob(f"*{ending}")}
             for m, dirs in sources["predictions"].items()}
    common = sorted(set.intersection(*(set(f) for f in found.values()))) if found else []
    if not common:
        raise FigureNotDrawn(f"no '*{ending}' case is predicted by every method ("
                             + "; ".join(f"{m}: {len(f)} in {', '.join(sources['predictions'][m])}"
                                         for m, f in found.items()) + ")")
    chosen = sorted(np.random.default_rng(seed).choice(common, min(num_cases, len(common)), replace=False))
    reader = _reader(ending, Path(sources["references"]) / f"{chosen[0]}{ending}")
    fig, axes = plt.subplots(len(chosen), len(methods), figsize=(3.2 * len(methods), 3.2 * len(chosen)),
                             squeeze=False)
    for row, name in enumerate(chosen):
        reference = _read(reader, Path(sources["references"]) / f"{name}{ending}", segmentation=True)
        index = _slice_index(reference)
        image = _take(_read(reader, Path(sources["images"]) / f"{name}_0000{ending}"), index)
        reference = _take(reference, index)
        for ax, method in zip(axes[row], methods):
            prediction = _take(_read(reader, found[method][name], segmentation=True), index)
            ax.imshow(image, cmap="gray")
            for colour, value in zip(colours, labels.values()):
                for mask, style in ((reference, "dashed"), (prediction, "solid")):
                    if (mask == value).any():
                        ax.contour(mask == value, levels=[0.5], colors=[colour], linestyles=style, linewidths=1.5)
            ax.set_title(f"{_wrapped(method)}\n{name}", fontsize=8)
            ax.axis("off")
    legend = [plt.Line2D([], [], color=c, lw=2, label=n) for c, n in zip(colours, labels)]
    legend += [plt.Line2D([], [], color="k", ls="dashed", label="reference"),
               plt.Line2D([], [], color="k", label="prediction")]
    fig.tight_layout()
    fig.legend(handles=legend, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(len(legend), 6), fontsize=8)
    return fig


def overlays(sources: dict, labels: dict[str, int], path: Path, num_cases: int = 4, seed: int = 0) -> Path:
    return save(overlay_figure(sources, labels, num_cases, seed), path, dpi=90)
