"""The synthetic data sets beside the cardiac phantom (vessels, lesions, two_channel): determinism, files nnU-Net
accepts, every class present, and the character each one is built for: thin vessels, few small lesions inside the
organ, and classes that only both input channels separate."""
import json

import numpy as np
import pytest
from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity
from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
from scipy import ndimage

from nnunetv2_mamba.synthetic import KINDS, write_dataset
from nnunetv2_mamba.synthetic import lesions, two_channel, vessels


def make_cases(kind, count, image_size, seed=0, stream=0):
    return [KINDS[kind].make_slice(np.random.default_rng([seed, stream, index]), image_size)
            for index in range(count)]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_slices_are_deterministic_finite_and_in_range(kind):
    a, b = (KINDS[kind].make_slice(np.random.default_rng(11), (80, 96)) for _ in range(2))
    c = KINDS[kind].make_slice(np.random.default_rng(12), (80, 96))
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert (a.spacing, a.thickness) == (b.spacing, b.thickness)
    assert not np.array_equal(a.images, c.images)
    assert a.images.dtype == np.float32 and a.labels.dtype == np.uint8
    assert a.images.shape == (len(KINDS[kind].channel_names), 80, 96) and a.labels.shape == (80, 96)
    assert np.isfinite(a.images).all() and a.images.min() >= 0 and a.images.std() > 0
    assert set(np.unique(a.labels)) <= set(KINDS[kind].labels.values())
    assert min(a.spacing) > 0 and a.thickness > 0


@pytest.mark.parametrize("kind", ["vessels", "lesions", "two_channel"])
def test_dataset_files_are_what_nnunet_expects_and_hold_every_class(kind, tmp_path):
    folder = write_dataset(kind, tmp_path, num_cases=6, image_size=(64, 72), seed=3, num_test_cases=1)
    spec = KINDS[kind]
    assert folder.name == f"Dataset{spec.default_id:03d}_{spec.dataset_name}"
    dataset = json.loads((folder / "dataset.json").read_text())
    assert dataset["channel_names"] == spec.channel_names and dataset["labels"] == spec.labels
    assert dataset["numTraining"] == 6 and dataset["file_ending"] == ".nii.gz"
    channels = len(spec.channel_names)
    assert len(list((folder / "imagesTr").iterdir())) == 6 * channels
    assert sorted(p.name for p in (folder / "imagesTs").iterdir()) == [
        f"{spec.case_prefix}test_000_{c:04d}.nii.gz" for c in range(channels)]
    verify_dataset_integrity(str(folder), num_processes=1)

    io = SimpleITKIO()
    seen = set()
    for index in range(6):
        name = f"{spec.case_prefix}{index:03d}"
        images, properties = io.read_images([str(folder / "imagesTr" / f"{name}_{c:04d}.nii.gz")
                                             for c in range(channels)])
        seg, _ = io.read_seg(str(folder / "labelsTr" / f"{name}.nii.gz"))
        assert images.shape == (channels, 1, 64, 72) and seg.shape == (1, 1, 64, 72)
        assert np.isfinite(images).all()
        seen |= set(np.unique(seg).astype(int))
        expected = KINDS[kind].make_slice(np.random.default_rng([3, 0, index]), (64, 72))
        np.testing.assert_array_equal(seg[0, 0], expected.labels)
        # NIfTI headers keep the spacing in float32: rtol 1e-6 (17 float32 ulps) covers its one rounding
        np.testing.assert_allclose(properties["spacing"], (expected.thickness, *expected.spacing), rtol=1e-6)
    assert seen == set(spec.labels.values())


def test_vessels_are_thin():
    """Vessels are 1-4 px wide: half their pixels touch the background (distance 1 or sqrt 2), 98 % lie at most
    sqrt(5) px from it, none more than 3.7 px (where vessels cross or branch); each tree covers > 2 % of the image."""
    for case in make_cases("vessels", 6, (96, 96)):
        for label in (vessels.ARTERY, vessels.VEIN):
            mask = case.labels == label
            distance = ndimage.distance_transform_edt(mask)[mask]
            assert mask.mean() > 0.02
            assert np.median(distance) <= 1.5 and np.percentile(distance, 98) <= np.sqrt(5) + 1e-6
            assert distance.max() <= 3.7


def test_lesions_are_few_small_and_inside_the_organ():
    counts = []
    for case in make_cases("lesions", 24, (96, 96)):
        organ_or_lesion = case.labels > 0
        assert (case.labels == lesions.ORGAN).mean() > 0.03
        components, count = ndimage.label(case.labels == lesions.LESION)
        counts.append(count)
        for index in range(1, count + 1):
            lesion = components == index
            radius = np.sqrt(lesion.sum() / np.pi)
            assert 1.5 <= radius <= 6.0
            ring = ndimage.binary_dilation(lesion, iterations=2) & ~lesion
            assert organ_or_lesion[ring].all() and not (case.labels[ring] == lesions.LESION).any()
    assert max(counts) <= lesions.MAX_LESIONS
    assert 0 in counts and max(counts) >= 5
    assert 0.05 <= counts.count(0) / len(counts) <= 0.45


def _zscore_channels(case) -> np.ndarray:
    """(H, W, C) each channel normalised by its mean and std over the head (as nnU-Net's z-score does)."""
    head = case.images[0] > 0.05 * case.images[0].max()
    return np.stack([(image - image[head].mean()) / image[head].std() for image in case.images], -1)


def _blob_interiors(case) -> np.ndarray:
    """Blob pixels whose 3 x 3 neighbourhood has the same label (no partial-volume edge)."""
    return (case.labels > 0) & (ndimage.grey_erosion(case.labels, size=3) == case.labels)


def _per_pixel_balanced_accuracy(train, test, channels) -> float:
    """Fit the best label per intensity bin (9 bins per channel over z in [-3, 3], classes weighted equally) on the
    blob pixels of ``train``; return the balanced accuracy over the three blob kinds on those of ``test``."""
    edges = np.linspace(-3, 3, 9)
    shape = (len(edges) + 1,) * len(channels)

    def bins(case):
        digits = np.digitize(_zscore_channels(case)[..., channels], edges)
        return np.ravel_multi_index(tuple(np.moveaxis(digits, -1, 0)), shape)[_blob_interiors(case)]

    counts = np.zeros((int(np.prod(shape)), 4))
    for case in train:
        np.add.at(counts, (bins(case), case.labels[_blob_interiors(case)]), 1)
    best_label = (counts / counts.sum(0).clip(1)).argmax(1)
    predicted = np.concatenate([best_label[bins(case)] for case in test])
    truth = np.concatenate([case.labels[_blob_interiors(case)] for case in test])
    return float(np.mean([(predicted[truth == label] == label).mean() for label in (1, 2, 3)]))


def test_two_channel_blobs_need_both_channels():
    """A per-pixel intensity classifier fitted on 8 cases and scored on 8 others separates the three blob kinds
    clearly better from both channels than from either alone (alone, two kinds look the same: at most ~2/3)."""
    train = make_cases("two_channel", 8, (96, 96), stream=0)
    test = make_cases("two_channel", 8, (96, 96), stream=1)
    for case in train + test:
        assert len(case.images) == 2
    t1_only, t2_only, both = (_per_pixel_balanced_accuracy(train, test, c) for c in ([0], [1], [0, 1]))
    assert max(t1_only, t2_only) < 0.75
    assert both > max(t1_only, t2_only) + 0.15


def test_unknown_kind_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match="choose one of cardiac, vessels, lesions, two_channel"):
        write_dataset("retina", tmp_path)
    assert not any(tmp_path.iterdir())
