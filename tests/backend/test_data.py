import pytest
import torch
from PIL import Image

from lth_audit.backend.data import DATASETS, load_dataset, load_mnist1d


def test_cifar_loader_on_written_batches(tmp_path, write_cifar):
    write_cifar(tmp_path)
    d = load_dataset("cifar10", tmp_path)
    assert d.x_train.shape == (20, 3, 32, 32) and d.x_test.shape == (10, 3, 32, 32)
    assert d.y_train.dtype == torch.long and d.num_classes == 10 and d.augment == "crop-flip"
    assert abs(float(d.x_train.mean())) < 1.5  # normalised
    # pixel layout: row-major 1024 R, then G, then B values per image, as in the real files
    import pickle
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_1", "rb") as f:
        raw = pickle.load(f, encoding="latin1")
    r0 = torch.tensor(raw["data"][0][:1024].reshape(32, 32), dtype=torch.float32) / 255
    assert torch.allclose(d.x_train[0, 0], (r0 - 0.4914) / 0.2470, atol=1e-5)
    assert d.y_train[:4].tolist() == raw["labels"]


def test_cifar_missing_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="download: true"):
        load_dataset("cifar10", tmp_path)


def _img(path, size, color):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), color).save(path)


def test_image_folder_tiny_imagenet_layouts(tmp_path):
    for c, color in (("n01", (255, 0, 0)), ("n02", (0, 0, 255))):
        for i in range(3):
            _img(tmp_path / "train" / c / "images" / f"{c}_{i}.JPEG", 64, color)
    _img(tmp_path / "val" / "images" / "val_0.JPEG", 64, (0, 0, 255))
    _img(tmp_path / "val" / "images" / "val_1.JPEG", 64, (255, 0, 0))
    (tmp_path / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn02\t0\t0\t63\t63\n"
                                                          "val_1.JPEG\tn01\t0\t0\t63\t63\n")
    d = load_dataset("tiny-imagenet", tmp_path)
    assert d.x_train.shape == (6, 3, 64, 64) and d.y_train.tolist() == [0, 0, 0, 1, 1, 1]
    assert d.y_test.tolist() == [1, 0] and d.num_classes == 200
    # red image: channel 0 high, channel 2 low after normalisation
    assert d.x_train[0, 0].mean() > 0 > d.x_train[0, 2].mean()


def test_image_folder_imagenet_class_folders(tmp_path):
    for split in ("train", "val"):
        for c in ("a", "b"):
            _img(tmp_path / split / c / "x.png", 300, (10, 200, 30))
    d = load_dataset("imagenet", tmp_path)
    assert d.x_train.shape == (2, 3, 224, 224) and d.y_test.tolist() == [0, 1]


def test_mnist1d_cached():
    a = load_mnist1d()
    b = load_mnist1d()
    assert a.x_train.shape == (4000, 40) and a.x_test.shape == (1000, 40) and torch.equal(a.x_train, b.x_train)
    assert DATASETS["mnist1d"].num_classes == 10


@pytest.mark.slow
def test_mnist1d_is_the_packages_own_split():
    from mnist1d.data import get_dataset_args, make_dataset

    raw = make_dataset(get_dataset_args())
    d = load_mnist1d()
    assert torch.equal(d.x_train, torch.tensor(raw["x"], dtype=torch.float32))
    assert torch.equal(d.x_test, torch.tensor(raw["x_test"], dtype=torch.float32))
    assert d.y_train.tolist() == raw["y"].tolist() and d.y_test.tolist() == raw["y_test"].tolist()


@pytest.mark.slow
def test_mnist1d_10k_is_its_own_cached_data_set():
    from lth_audit.backend.data import cache_dir

    big = load_dataset("mnist1d-10k")
    assert big.x_train.shape == (4000, 40) and big.x_test.shape == (10000, 40)
    assert (cache_dir() / "mnist1d-10k.pt").is_file() and (cache_dir() / "mnist1d.pt").is_file()
    counts = torch.bincount(torch.cat([big.y_train, big.y_test]), minlength=10)
    assert counts.tolist() == [1400] * 10   # the generator makes every digit equally often
    assert not torch.equal(big.x_train, load_mnist1d().x_train)   # other draws: another data set
    again = load_mnist1d("mnist1d-10k")   # from the cache now
    assert torch.equal(again.x_test, big.x_test) and DATASETS["mnist1d-10k"].test_size == 10000


def test_mnist1d_sizes_and_names_are_checked():
    from lth_audit.backend.data import make_mnist1d

    with pytest.raises(ValueError, match="multiple of 10"):
        make_mnist1d(1005)
    with pytest.raises(ValueError, match="not an MNIST-1D data set"):
        load_mnist1d("cifar10")
