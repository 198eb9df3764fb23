"""Tests of dartsrenet.data: real torchvision loading of format-exact fixtures (docs/architecture.md §6).

Only torchvision's md5 check is patched (in the module that uses it), because a
tiny fixture cannot match the real files' checksums.
"""

from __future__ import annotations

import logging
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from torchvision import transforms as T

from dartsrenet import builtin_datasets, data
from dartsrenet.data import (
    Cutout,
    DatasetFileError,
    DatasetInfo,
    DatasetNotFoundError,
    TransformedSubset,
    build_transform,
    get_dataset_info,
    load_datasets,
    make_search_loaders,
    make_train_loaders,
    search_split,
    validation_split,
)
from dartsrenet.registry import UnknownNameError
from tests.fixtures_data import (
    CLASS_COLOURS,
    EXTRA_MARKER,
    IMAGE_VARIANTS,
    MARKER,
    MARKER_COL,
    MARKER_ROW,
    decode_label,
    expected_rgb,
    prepare_datasets_at_once,
    serve_files,
    write_cifar10,
    write_cifar10_archive,
    write_fashion_mnist,
    write_imagefolder,
    write_svhn,
)

FIXED_NAMES = ("cifar10", "svhn", "fashion_mnist", "digits")


@pytest.fixture
def md5_ok():
    """Accept the fixtures' checksums: patch only torchvision's check, where it is used."""
    with (
        mock.patch("torchvision.datasets.cifar.check_integrity", return_value=True),
        mock.patch("torchvision.datasets.svhn.check_integrity", return_value=True),
    ):
        yield


@pytest.fixture
def no_system_fashion(monkeypatch, tmp_path):
    """Point the Debian Fashion-MNIST location at an empty folder."""
    monkeypatch.setattr(builtin_datasets, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "no-debian-package")


def raw_pixels(tensor: torch.Tensor, info: DatasetInfo) -> np.ndarray:
    """Undo Normalize and ToTensor: (3, H, W) → 0..255 floats."""
    mean = torch.tensor(info.mean)[:, None, None]
    std = torch.tensor(info.std)[:, None, None]
    return ((tensor * std + mean) * 255).numpy()


def normalised(value: float, info: DatasetInfo, channel: int) -> float:
    return (value / 255 - info.mean[channel]) / info.std[channel]


def plain_items(dataset, info: DatasetInfo) -> list[tuple[torch.Tensor, int]]:
    view = TransformedSubset(dataset, range(len(dataset)), build_transform(info, augment=False))
    return [view[i] for i in range(len(view))]


def check_coded(items, info: DatasetInfo, labels, marker=MARKER, offset=(MARKER_ROW, MARKER_COL)) -> None:
    """Every item is (3, 32, 32), decodes to its label, and has the marker at ``offset``."""
    assert [label for _, label in items] == list(labels)
    for image, label in items:
        assert image.shape == (3, 32, 32) and image.dtype == torch.float32
        row, col = offset
        for channel in range(3):
            assert image[channel, row, col].item() == pytest.approx(
                normalised(marker[channel], info, channel), abs=1e-5
            )
        background = raw_pixels(image, info)[0, row + 1, col + 1]
        assert decode_label(background) == label


# --------------------------------------------------------------------------- registry, info


def test_unknown_name_lists_valid_names():
    with pytest.raises(UnknownNameError) as error:
        get_dataset_info("cifar100")
    for name in (*FIXED_NAMES, "imagefolder:PATH"):
        assert name in str(error.value)
    assert set(data.DATASET_NAMES) == {*FIXED_NAMES, "imagefolder:PATH"}


def test_registry_holds_the_fixed_names():
    assert set(data.DATASETS) == set(FIXED_NAMES)


@pytest.mark.parametrize("name", sorted(data.DATASETS))
def test_dataset_info_of_every_registry_entry(name):
    info = get_dataset_info(name)
    assert info.name == name and info.num_classes == 10 and info.image_size == 32
    assert len(info.mean) == len(info.std) == 3 and all(s > 0 for s in info.std)
    assert info.flip == (name not in ("svhn", "digits"))
    assert info.head_init_range == (0.05 if name == "svhn" else 0.5)
    with pytest.raises(AttributeError):
        info.num_classes = 3  # frozen


def test_spec_constants():
    assert get_dataset_info("cifar10").mean == (0.4914, 0.4822, 0.4465)
    assert get_dataset_info("cifar10").std == (0.2470, 0.2435, 0.2616)
    assert get_dataset_info("svhn").mean == (0.4377, 0.4438, 0.4728)
    assert get_dataset_info("svhn").std == (0.1980, 0.2010, 0.1970)


def test_svhn_extra_only_for_svhn():
    with pytest.raises(ValueError, match="svhn_extra"):
        load_datasets("digits", svhn_extra=True)


# --------------------------------------------------------------------------- CIFAR-10


def test_cifar10_fixture_loads_through_torchvision(tmp_path, md5_ok):
    labels = write_cifar10(tmp_path)
    train, test, info = load_datasets("cifar10", tmp_path)
    assert (len(train), len(test)) == (20, 6)
    check_coded(plain_items(train, info), info, labels["train"])
    check_coded(plain_items(test, info), info, labels["test"])


def test_cifar10_missing_names_path_and_remedy(tmp_path):
    with pytest.raises(DatasetNotFoundError) as error:
        load_datasets("cifar10", tmp_path)
    message = str(error.value)
    assert str(tmp_path / "cifar-10-batches-py" / "data_batch_1") in message
    assert "download=True" in message and "--download" in message
    assert isinstance(error.value, FileNotFoundError)


def test_cifar10_failed_md5_is_reported(tmp_path):
    write_cifar10(tmp_path)  # present, but not the real files: torchvision's md5 check fails
    with pytest.raises(DatasetNotFoundError, match="integrity"):
        load_datasets("cifar10", tmp_path)


# --------------------------------------------------------------------------- SVHN


def test_svhn_labels_and_pixels(tmp_path, md5_ok):
    digits = write_svhn(tmp_path)
    assert 0 in digits["train"]  # stored as 10 in the file
    train, test, info = load_datasets("svhn", tmp_path)
    assert (len(train), len(test)) == (12, 6)
    check_coded(plain_items(train, info), info, digits["train"])
    check_coded(plain_items(test, info), info, digits["test"])


def test_svhn_extra_concatenates_extra(tmp_path, md5_ok):
    digits = write_svhn(tmp_path)
    train, _, info = load_datasets("svhn", tmp_path, svhn_extra=True)
    assert len(train) == 12 + 8
    items = plain_items(train, info)
    check_coded(items[:12], info, digits["train"])
    check_coded(items[12:], info, digits["extra"], marker=EXTRA_MARKER)


def test_svhn_missing_extra_names_file(tmp_path, md5_ok):
    write_svhn(tmp_path, sizes={"train": 4, "test": 2})
    load_datasets("svhn", tmp_path)  # extra not needed
    with pytest.raises(DatasetNotFoundError) as error:
        load_datasets("svhn", tmp_path, svhn_extra=True)
    assert str(tmp_path / "extra_32x32.mat") in str(error.value)
    assert "--download" in str(error.value)


# --------------------------------------------------------------------------- Fashion-MNIST


def test_fashion_mnist_idx_fixture_padded_to_32(tmp_path, no_system_fashion):
    labels = write_fashion_mnist(tmp_path / "FashionMNIST" / "raw")
    train, test, info = load_datasets("fashion_mnist", tmp_path)
    assert (len(train), len(test)) == (10, 5)
    items = plain_items(train, info)
    marker = (MARKER[0],) * 3  # grey copied to 3 channels; 2 px pad shifts it by (2, 2)
    check_coded(items, info, labels["train"], marker=marker, offset=(MARKER_ROW + 2, MARKER_COL + 2))
    image = items[0][0]
    assert torch.equal(image[0], image[1]) and torch.equal(image[0], image[2])
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert torch.allclose(image[:, border], torch.tensor(normalised(0, info, 0)))  # zero padding
    assert torch.all(image[:, 2:30, 2:30] > normalised(0, info, 0))


def test_fashion_mnist_unpacks_debian_gzip_files(tmp_path, caplog):
    system = tmp_path / "debian"
    labels = write_fashion_mnist(system, gz=True)
    root = tmp_path / "root"
    with caplog.at_level(logging.INFO, logger="dartsrenet.builtin_datasets"):
        assert data.prepare_fashion_mnist(root, system) is True
    assert "Fashion-MNIST" in caplog.text and str(system) in caplog.text
    assert sorted(p.name for p in (root / "FashionMNIST" / "raw").iterdir()) == sorted(
        p.name.removesuffix(".gz") for p in system.iterdir()
    )
    assert data.prepare_fashion_mnist(root, system) is False  # already there
    train, _, _ = load_datasets("fashion_mnist", root)
    assert [label for _, label in train] == labels["train"]


def test_fashion_mnist_missing_names_path_and_remedy(tmp_path, no_system_fashion):
    with pytest.raises(DatasetNotFoundError) as error:
        load_datasets("fashion_mnist", tmp_path)
    message = str(error.value)
    assert str(tmp_path / "FashionMNIST" / "raw" / "train-images-idx3-ubyte") in message
    assert "apt-get install dataset-fashion-mnist" in message and "--download" in message


@pytest.mark.skipif(
    not (data.FASHION_MNIST_SYSTEM_DIR / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian package dataset-fashion-mnist not installed (apt-get install dataset-fashion-mnist)",
)
def test_real_fashion_mnist_and_its_constants(tmp_path):
    train, test, info = load_datasets("fashion_mnist", tmp_path)
    assert (len(train), len(test)) == (60000, 10000)
    padded = torch.nn.functional.pad(train.data, (2, 2, 2, 2)).double() / 255  # (N, 32, 32)
    assert abs(padded.mean().item() - info.mean[0]) < 5e-4
    assert abs(padded.std(unbiased=False).item() - info.std[0]) < 5e-4
    assert info.mean[0] == info.mean[1] == info.mean[2]
    image, label = TransformedSubset(test, [0], build_transform(info, augment=False))[0]
    assert image.shape == (3, 32, 32) and label == int(test.targets[0])
    expected = (padded.new_tensor(np.pad(test.data[0].numpy(), 2)) / 255 - info.mean[0]) / info.std[0]
    assert torch.allclose(image[1].double(), expected, atol=1e-5)


# --------------------------------------------------------------------------- digits


def test_digits_split_and_pixels():
    from sklearn.datasets import load_digits

    train, test, info = load_datasets("digits")
    assert (len(train), len(test)) == (1437, 360)
    train_labels = np.array(train.targets)
    test_labels = np.array(test.targets)
    assert np.all(np.bincount(test_labels, minlength=10) >= 35)  # stratified 20 %
    assert np.all(np.abs(np.bincount(train_labels) / 1437 - np.bincount(test_labels) / 360) < 0.01)
    # Fixed split: the same on every call; the images are the real ones upsampled.
    again, _, _ = load_datasets("digits")
    assert np.array_equal(again.images, train.images)
    # The images are the real ones, bilinearly upsampled: PIL's bilinear resize of
    # sklearn's 8×8 images (an independent implementation) agrees within 1 grey level.
    from PIL import Image

    reference = load_digits()
    small = np.round(reference.images * 255 / 16).astype(np.uint8)
    upsampled = np.stack([np.asarray(Image.fromarray(s).resize((32, 32), Image.BILINEAR)) for s in small])
    found = 0
    for image, label in [test[i] for i in range(0, 360, 36)]:
        grey = np.asarray(image, dtype=np.float64)
        assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 0], grey[..., 2])
        distances = np.abs(upsampled - grey[..., 0]).max(axis=(1, 2))
        nearest = int(distances.argmin())
        assert distances[nearest] <= 1 and reference.target[nearest] == label
        found += 1
    assert found == 10
    # Normalisation of a known pixel.
    tensor, _ = TransformedSubset(train, [0], build_transform(info, augment=False))[0]
    value = float(train.images[0, 10, 12, 0])
    assert tensor[2, 10, 12].item() == pytest.approx(normalised(value, info, 2), abs=1e-5)


def test_digits_constants_are_the_training_statistics():
    train, _, info = load_datasets("digits")
    pixels = train.images.astype(np.float64) / 255
    for channel in range(3):
        assert abs(pixels[..., channel].mean() - info.mean[channel]) < 5e-4
        assert abs(pixels[..., channel].std() - info.std[channel]) < 5e-4


# --------------------------------------------------------------------------- image folders


@pytest.mark.parametrize("split_dirs", [True, False])
def test_imagefolder_any_size_and_mode(tmp_path, split_dirs):
    write_imagefolder(tmp_path, split_dirs=split_dirs, per_variant=1 if split_dirs else 5)
    name = f"imagefolder:{tmp_path}"
    train, test, info = load_datasets(name)
    assert info.name == name and info.num_classes == 2 and info.flip
    per_class = len(IMAGE_VARIANTS) if split_dirs else 4 * len(IMAGE_VARIANTS)  # 80 % of 15
    assert len(train) == 2 * per_class
    assert len(test) == (2 * len(IMAGE_VARIANTS) if split_dirs else 6)
    # Mean/std computed on the fly over the training split.
    values = [np.asarray(image, dtype=np.float64) / 255 for image, _ in train]
    assert np.allclose(info.mean, np.mean(values, axis=(0, 1, 2)), atol=1e-6)
    assert np.allclose(info.std, np.std(values, axis=(0, 1, 2)), atol=1e-6)
    modes_seen = set()
    for index in range(len(train)):
        path, _ = (train if split_dirs else train.base).samples[index if split_dirs else train.indices[index]]
        mode = Path(path).name.split("_")[0]
        modes_seen.add(mode)
        tensor, label = TransformedSubset(train, [index], build_transform(info, augment=False))[0]
        assert tensor.shape == (3, 32, 32)
        colour = expected_rgb(list(CLASS_COLOURS.values())[label], mode)
        expected = torch.tensor([normalised(colour[c], info, c) for c in range(3)])
        assert torch.allclose(tensor[:, 16, 16], expected, atol=1.01 / 255 / min(info.std))
    assert modes_seen == {"L", "RGBA", "RGB"}


def test_imagefolder_missing_and_empty_name(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="train/<class>"):
        load_datasets(f"imagefolder:{tmp_path / 'nowhere'}")
    with pytest.raises(ValueError, match="PATH"):
        get_dataset_info("imagefolder:")


# --------------------------------------------------------------------------- transforms


def test_cutout_zeroes_a_clipped_square():
    image = torch.full((3, 32, 32), 0.7)
    torch.manual_seed(0)
    sides = set()
    for _ in range(200):
        out = Cutout(12)(image)
        zero = out[0] == 0
        assert torch.equal(zero, out[1] == 0) and torch.equal(zero, out[2] == 0)
        rows, cols = zero.any(dim=1).nonzero(), zero.any(dim=0).nonzero()
        height, width = len(rows), len(cols)
        assert int(zero.sum()) == height * width  # a rectangle
        assert rows.max() - rows.min() + 1 == height and cols.max() - cols.min() + 1 == width
        assert 1 <= height <= 12 and 1 <= width <= 12
        sides.add((height, width))
    assert (12, 12) in sides and len(sides) > 1  # full inside, clipped at borders
    assert torch.equal(image, torch.full((3, 32, 32), 0.7))  # input untouched
    assert Cutout(0)(image) is image


def test_cutout_comes_after_normalisation():
    info = get_dataset_info("cifar10")
    transform = build_transform(info, augment=True, cutout=12)
    assert [type(step) for step in transform.transforms] == [
        T.RandomCrop,
        T.RandomHorizontalFlip,
        T.ToTensor,
        T.Normalize,
        Cutout,
    ]
    from PIL import Image

    torch.manual_seed(1)
    image = Image.fromarray(np.full((32, 32, 3), 128, dtype=np.uint8))
    zero_counts = [int((transform(image) == 0).all(dim=0).sum()) for _ in range(50)]
    assert 144 in zero_counts  # a full 12×12 square of exact zeros (128 normalises to non-zero)
    assert [type(s) for s in build_transform(info, augment=False).transforms] == [T.ToTensor, T.Normalize]
    assert Cutout not in [type(s) for s in build_transform(info, augment=True, cutout=0).transforms]


@pytest.mark.parametrize("name", sorted(data.DATASETS))
def test_flip_only_where_allowed(name):
    info = get_dataset_info(name)
    steps = [type(step) for step in build_transform(info, augment=True).transforms]
    assert (T.RandomHorizontalFlip in steps) == info.flip
    crop = build_transform(info, augment=True).transforms[0]
    assert isinstance(crop, T.RandomCrop) and crop.padding == 4 and crop.fill == 0
    assert crop.padding_mode == "constant"


# --------------------------------------------------------------------------- splits


def test_search_split_is_disjoint_covering_and_seeded():
    dataset = list(range(101))
    train_cs, val_cs = search_split(dataset, seed=3)
    assert (len(train_cs), len(val_cs)) == (50, 51)
    assert set(train_cs).isdisjoint(val_cs) and sorted(train_cs + val_cs) == dataset
    assert search_split(dataset, seed=3) == (train_cs, val_cs)
    assert search_split(dataset, seed=4) != (train_cs, val_cs)


def test_validation_split_by_fraction_and_size():
    dataset = list(range(50))
    train, val = validation_split(dataset, 0.1, seed=0)
    assert (len(train), len(val)) == (45, 5)
    assert set(train).isdisjoint(val) and sorted(train + val) == dataset
    assert validation_split(dataset, 0.1, seed=0) == (train, val)
    assert validation_split(dataset, 0.1, seed=1) != (train, val)
    assert len(validation_split(dataset, val_size=7, seed=0)[1]) == 7
    for bad in ({}, {"val_fraction": 0.1, "val_size": 3}, {"val_fraction": 1.0}, {"val_size": 50}):
        with pytest.raises(ValueError):
            validation_split(dataset, seed=0, **bad)


# --------------------------------------------------------------------------- loaders


def epoch(loader, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch after the engine's reseeding."""
    loader.generator.manual_seed(seed)
    torch.manual_seed(seed + 1000)
    return [(images.clone(), labels.clone()) for images, labels in loader]


def same(a, b) -> bool:
    return len(a) == len(b) and all(
        torch.equal(x, y) and torch.equal(u, v) for (x, u), (y, v) in zip(a, b, strict=True)
    )


def test_search_loaders(tmp_path, md5_ok):
    write_cifar10(tmp_path)
    train_cs, val_cs, info = make_search_loaders("cifar10", tmp_path, batch_size=4, seed=0)
    assert info.name == "cifar10"
    assert len(train_cs.dataset) == len(val_cs.dataset) == 10
    assert set(train_cs.dataset.indices).isdisjoint(val_cs.dataset.indices)
    assert sorted(train_cs.dataset.indices + val_cs.dataset.indices) == list(range(20))
    assert train_cs.drop_last and val_cs.drop_last and len(train_cs) == 2  # 10 // 4
    # val_cs is augmented like train_cs (DARTS), but through its own transform object.
    assert val_cs.dataset.transform is not None and Cutout in [
        type(s) for s in val_cs.dataset.transform.transforms
    ]
    images, labels = next(iter(train_cs))
    assert images.shape == (4, 3, 32, 32) and labels.dtype == torch.int64
    again, _, _ = make_search_loaders("cifar10", tmp_path, batch_size=4, seed=0)
    assert again.dataset.indices == train_cs.dataset.indices
    other, _, _ = make_search_loaders("cifar10", tmp_path, batch_size=4, seed=1)
    assert other.dataset.indices != train_cs.dataset.indices
    limited, limited_val, _ = make_search_loaders("cifar10", tmp_path, batch_size=2, limit=6)
    assert len(limited.dataset) == len(limited_val.dataset) == 3


def test_epoch_is_reproducible_with_augmentation(tmp_path, md5_ok):
    write_cifar10(tmp_path)
    train, _, _, _ = make_train_loaders("cifar10", tmp_path, batch_size=4, seed=0, augment=True, cutout=12)
    assert isinstance(train.generator, torch.Generator)
    first, second = epoch(train, 5), epoch(train, 5)
    assert same(first, second)
    assert not same(first, epoch(train, 6))
    # Augmentation is on: the same example differs between two draws.
    view = train.dataset
    torch.manual_seed(0)
    assert not all(torch.equal(view[0][0], view[0][0]) for _ in range(3))


def test_train_loaders_splits_and_plain_evaluation(tmp_path, md5_ok):
    labels = write_cifar10(tmp_path)
    train, val, test, info = make_train_loaders("cifar10", tmp_path, batch_size=4, seed=0, val_fraction=0.25)
    assert (len(train.dataset), len(val.dataset), len(test.dataset)) == (15, 5, 6)
    assert set(train.dataset.indices).isdisjoint(val.dataset.indices)
    assert sorted(train.dataset.indices + val.dataset.indices) == list(range(20))
    assert train.drop_last and not val.drop_last and not test.drop_last
    assert len(train) == 3 and len(val) == 2 and len(test) == 2
    assert train.dataset.transform is not val.dataset.transform
    # Validation and test: plain transform (no crop, flip, Cutout) — a known pixel normalises exactly.
    for loader, expected_labels in (
        (test, labels["test"]),
        (val, [labels["train"][i] for i in val.dataset.indices]),
    ):
        images = torch.cat([batch for batch, _ in loader])
        got = torch.cat([batch_labels for _, batch_labels in loader]).tolist()
        assert got == expected_labels
        for channel in range(3):
            expected = normalised(MARKER[channel], info, channel)
            assert torch.allclose(
                images[:, channel, MARKER_ROW, MARKER_COL], torch.tensor(expected), atol=1e-5
            )
    limited = make_train_loaders("cifar10", tmp_path, batch_size=2, limit=10, val_fraction=0.2)
    assert [len(loader.dataset) for loader in limited[:3]] == [8, 2, 6]
    limited = make_train_loaders("cifar10", tmp_path, batch_size=2, limit=4, val_fraction=0.5)
    assert [len(loader.dataset) for loader in limited[:3]] == [2, 2, 4]


def test_small_split_keeps_one_short_batch(tmp_path, md5_ok):
    write_cifar10(tmp_path)
    train, _, _, _ = make_train_loaders("cifar10", tmp_path, batch_size=64, limit=12, val_fraction=0.25)
    assert not train.drop_last and [len(b[1]) for b in train] == [9]


def test_digits_train_loaders_end_to_end():
    train, val, test, info = make_train_loaders("digits", batch_size=32, limit=64, seed=2)
    images, labels = next(iter(train))
    assert images.shape == (32, 3, 32, 32) and info.num_classes == 10
    assert labels.min() >= 0 and labels.max() <= 9
    assert len(test.dataset) == 64


# --------------------------------------------------------------------------- checks when opened


def test_imagefolder_truncated_or_non_image_file_is_named_when_opened(tmp_path):
    for layout, split_dirs in (("split", True), ("single", False)):
        root = tmp_path / layout
        write_imagefolder(root, split_dirs=split_dirs, per_variant=2)
        broken = root / ("test" if split_dirs else "") / "cat" / "RGB_1.png"
        data_bytes = broken.read_bytes()
        broken.write_bytes(data_bytes[: len(data_bytes) // 2])  # truncated
        with pytest.raises(DatasetFileError) as error:
            load_datasets(f"imagefolder:{root}")
        assert str(broken) in str(error.value) and "truncated" in str(error.value)
    not_an_image = tmp_path / "text"
    write_imagefolder(not_an_image, per_variant=1)
    fake = not_an_image / "train" / "dog" / "notes.png"
    fake.write_text("not an image")
    with pytest.raises(DatasetFileError, match=f"{fake}: not a readable image"):
        make_train_loaders(f"imagefolder:{not_an_image}", limit=None)


def test_a_dataset_needs_two_classes(tmp_path):
    write_imagefolder(tmp_path / "one", split_dirs=False, per_variant=2)
    for path in (tmp_path / "one" / "dog").iterdir():
        path.unlink()
    (tmp_path / "one" / "dog").rmdir()
    with pytest.raises(DatasetFileError, match=r"has 1 class folder\(s\) \(cat\); a classifier needs at least 2"):
        load_datasets(f"imagefolder:{tmp_path / 'one'}")


def test_imagefolder_too_small_to_split_names_the_folder(tmp_path):
    write_imagefolder(tmp_path / "few", split_dirs=False, per_variant=1)  # 3 images per class
    (tmp_path / "few" / "cat" / "RGB_0.png").unlink()
    (tmp_path / "few" / "cat" / "L_0.png").unlink()
    with pytest.raises(DatasetFileError, match=f"image folder {tmp_path / 'few'}: cannot split it 80/20"):
        load_datasets(f"imagefolder:{tmp_path / 'few'}")


def test_concurrent_processes_download_and_unpack_a_dataset_once(tmp_path):
    """Several real processes open the same datasets at the same moment: one fetches, the others wait."""
    import multiprocessing

    system = tmp_path / "debian"
    labels = write_fashion_mnist(system, gz=True)
    archive, md5s = write_cifar10_archive(tmp_path / "mirror")
    # fork starts in milliseconds (spawn re-imports torch in each process: seconds on small machines).
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")

    def run_at_once(root, processes, url):
        barrier, results = context.Barrier(processes), context.Queue()
        workers = [
            context.Process(
                target=prepare_datasets_at_once,
                args=(str(root), str(system), f"{url}/{archive.name}", md5s, barrier, results),
            )
            for _ in range(processes)
        ]
        for worker in workers:
            worker.start()
        outcomes = [results.get(timeout=240) for _ in workers]
        for worker in workers:
            worker.join(timeout=60)
        assert [worker.exitcode for worker in workers] == [0] * processes
        return outcomes

    with serve_files(archive.parent, delay_s=0.5) as (url, gets):
        run_at_once(tmp_path / "alone", 1, url)
        requests_of_one_download = gets[f"/{archive.name}"]  # torchvision also probes for redirects
        assert requests_of_one_download >= 1
        gets.clear()
        outcomes = run_at_once(tmp_path / "data", 3, url)
    assert gets[f"/{archive.name}"] == requests_of_one_download  # downloaded once
    assert sorted(unpacked for unpacked, _, _ in outcomes) == [False, False, True]  # unpacked once
    assert {(train, test) for _, train, test in outcomes} == {(20, 6)}
    root = tmp_path / "data"
    train, _, _ = load_datasets("fashion_mnist", root)
    assert [label for _, label in train] == labels["train"]
    assert (root / ".cifar10.lock").exists() and (root / ".fashion_mnist.lock").exists()
