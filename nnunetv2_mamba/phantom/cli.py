"""``nnunetv2_mamba make-phantom OUT_DIR``: write the synthetic cardiac phantom as an nnU-Net raw dataset."""
from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("out_dir", metavar="OUT_DIR",
                        help="the nnUNet_raw root to write DatasetXXX_CardiacPhantom into")
    parser.add_argument("--cases", type=int, default=20, help="number of training cases (default 20)")
    parser.add_argument("--size", type=int, nargs=2, default=(128, 128), metavar=("H", "W"),
                        help="image size in pixels (default 128 128)")
    parser.add_argument("--id", type=int, default=900, help="dataset id (default 900)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--test-cases", type=int, default=0,
                        help="number of extra test cases written to imagesTs/labelsTs (default 0)")


def run(args) -> int:
    from nnunetv2_mamba.phantom.dataset import write_phantom_dataset

    folder = write_phantom_dataset(args.out_dir, dataset_id=args.id, num_cases=args.cases,
                                   image_size=tuple(args.size), seed=args.seed, num_test_cases=args.test_cases)
    print(folder)
    return 0
