"""``nnunetv2_mamba make-dataset KIND OUT_DIR``: write one synthetic data set as an nnU-Net raw dataset."""
from __future__ import annotations

def add_output_arguments(parser, default_id_text: str) -> None:
    """The arguments every dataset-writing subcommand shares."""
    parser.add_argument("out_dir", metavar="OUT_DIR", help="the nnUNet_raw root to write DatasetXXX_Name into")
    parser.add_argument("--cases", type=int, default=20, help="number of training cases (default 20)")
    parser.add_argument("--size", type=int, nargs=2, default=(128, 128), metavar=("H", "W"),
                        help="image size in pixels (default 128 128)")
    parser.add_argument("--id", type=int, default=None, help=f"dataset id (default {default_id_text})")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--test-cases", type=int, default=0,
                        help="number of extra test cases written to imagesTs/labelsTs (default 0)")


def add_arguments(parser) -> None:
    from nnunetv2_mamba.synthetic.kinds import KINDS

    parser.add_argument("kind", metavar="KIND", choices=list(KINDS),
                        help="; ".join(f"{name}: {kind.summary} (id {kind.default_id})"
                                       for name, kind in KINDS.items()))
    add_output_arguments(parser, "the kind's id")


def run(args) -> int:
    from nnunetv2_mamba.synthetic.writer import write_dataset

    folder = write_dataset(args.kind, args.out_dir, dataset_id=args.id, num_cases=args.cases,
                           image_size=tuple(args.size), seed=args.seed, num_test_cases=args.test_cases)
    print(folder)
    return 0
