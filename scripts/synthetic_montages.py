"""Save one PNG montage per synthetic data set: a few cases, every input channel, and the labels.

    python scripts/synthetic_montages.py [--out docs/figures] [--kinds vessels lesions] [--cases 4] [--seed 0]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nnunetv2_mamba.synthetic import KINDS  # noqa: E402

LABEL_COLOURS = np.array([[0, 0, 0], [230, 60, 60], [60, 140, 255], [250, 210, 40]], float) / 255
COLOUR_NAMES = ("black", "red", "blue", "yellow")


def save_montage(kind_name: str, path: Path, cases: int, seed: int, image_size=(128, 128)) -> None:
    """Rows: each channel of each case (grey), then its labels (colour); columns: cases ``0..cases-1``, drawn
    from the same random streams as the training cases of ``make-dataset`` with ``seed``."""
    kind = KINDS[kind_name]
    slices = [kind.make_slice(np.random.default_rng([seed, 0, index]), image_size) for index in range(cases)]
    channels = slices[0].images.shape[0]
    figure, axes = plt.subplots(channels + 1, cases, figsize=(1.9 * cases, 1.9 * (channels + 1)), squeeze=False)
    for column, case in enumerate(slices):
        for channel, image in enumerate(case.images):
            axes[channel, column].imshow(image, cmap="gray", vmin=0, vmax=np.percentile(image, 99.5))
        axes[channels, column].imshow(LABEL_COLOURS[case.labels])
    for row in range(channels):
        axes[row, 0].set_ylabel(kind.channel_names[str(row)], fontsize=8)
    names = ", ".join(f"{name} {COLOUR_NAMES[value]}" for name, value in kind.labels.items() if value)
    axes[channels, 0].set_ylabel("labels", fontsize=8)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle(f"{kind.name}: {names}", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=72)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/figures"))
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    parser.add_argument("--cases", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for kind_name in args.kinds:
        path = args.out / f"synthetic_{kind_name}.png"
        save_montage(kind_name, path, args.cases, args.seed)
        print(path, f"{path.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
