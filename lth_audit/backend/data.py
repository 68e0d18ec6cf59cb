"""Data sets: what each one is (DATASETS) and how it becomes a `TensorData` on the training device.

- cifar10 / cifar100: the CIFAR python-format pickles under a local root (`cifar-10-batches-py/` ...);
  downloaded only when the experiment says `download: true`. Normalised with the usual per-channel
  mean/std; augmentation "crop-flip" is done on the device per batch by the trainer.
- tiny-imagenet / imagenet: ImageFolder trees (`train/`, and `val/` either as class folders or
  Tiny-ImageNet's `val/images` + `val_annotations.txt`), decoded once, resized to the data set's image
  size (ImageNet: resize 256 + centre crop 224) and kept in memory (`TensorData`). That suits Tiny-ImageNet
  and small subsets. Full ImageNet does not fit in memory: `load_stream` gives a `StreamData` instead,
  decoded per batch by DataLoader workers with the usual torchvision transforms (`imagenet` streams by
  default in experiments, `in_memory:` overrides; see `DatasetInfo.streams`).
- mnist1d: `mnist1d.data.make_dataset(get_dataset_args())` (4000 train / 1000 test, 40 features; no
  download), cached to `$LTH_AUDIT_CACHE/mnist1d.pt` (default ~/.cache/lth-audit), written atomically.
  `mnist1d-10k`: the same generator and seed asked for 4000 + 10000 examples, the first 4000 for
  training, the other 10000 for testing (a test set whose binomial SE is a third of 1000's; the demo's),
  cached as `mnist1d-10k.pt`. Its training examples are other draws than `mnist1d`'s, so it is another
  data set to the audit, never mixed with `mnist1d` records.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..records import atomic_write
from .jobs import TensorData
from .stream import DEFAULT_WORKERS, ImageItems, StreamData, transforms


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    kind: str                 # "image" or "1d"
    num_classes: int
    channels: int = 3
    image_size: int = 32
    length: int = 40          # 1-D inputs
    stem: str = "cifar"       # "cifar" (3x3 stem) or "imagenet" (torchvision stems)
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    augment: str = "none"
    streams: bool = False     # experiments read it through `load_stream` unless `in_memory: true`
    test_size: int = 0        # generated data sets (MNIST-1D): test examples generated after the training ones


_IMNET_MEAN, _IMNET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
DATASETS: dict[str, DatasetInfo] = {
    "cifar10": DatasetInfo("cifar10", "image", 10, mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616),
                           augment="crop-flip"),
    "cifar100": DatasetInfo("cifar100", "image", 100, mean=(0.5071, 0.4865, 0.4409),
                            std=(0.2673, 0.2564, 0.2762), augment="crop-flip"),
    "tiny-imagenet": DatasetInfo("tiny-imagenet", "image", 200, image_size=64, stem="imagenet",
                                 mean=_IMNET_MEAN, std=_IMNET_STD, augment="crop-flip"),
    "imagenet": DatasetInfo("imagenet", "image", 1000, image_size=224, stem="imagenet",
                            mean=_IMNET_MEAN, std=_IMNET_STD, augment="crop-flip", streams=True),
    "mnist1d": DatasetInfo("mnist1d", "1d", 10, channels=1, augment="none", test_size=1000),
    "mnist1d-10k": DatasetInfo("mnist1d-10k", "1d", 10, channels=1, augment="none", test_size=10000),
}
MNIST1D_TRAIN = 4000
"""Training examples of every MNIST-1D data set (`get_dataset_args`' 5000 examples, 80 % for training)."""


def cache_dir() -> Path:
    return Path(os.environ.get("LTH_AUDIT_CACHE", Path.home() / ".cache" / "lth-audit")).expanduser()


def atomic_torch_save(obj, path: str | os.PathLike[str]) -> None:
    """torch.save that readers never see half done (records.atomic_write)."""
    atomic_write(path, lambda f: torch.save(obj, f))


def _normalise_images(x_uint8_nhwc: torch.Tensor, info: DatasetInfo) -> torch.Tensor:
    x = x_uint8_nhwc.permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(info.mean).view(1, -1, 1, 1)
    std = torch.tensor(info.std).view(1, -1, 1, 1)
    return (x - mean) / std


_CIFAR_FILES = {"cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels"),
                "cifar100": ("cifar-100-python", ["train"], ["test"], "fine_labels")}


def _read_cifar_batches(folder: Path, files: list[str], label_key: str) -> tuple[torch.Tensor, torch.Tensor]:
    import pickle

    import numpy as np

    xs, ys = [], []
    for name in files:
        with open(folder / name, "rb") as f:
            entry = pickle.load(f, encoding="latin1")
        xs.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.extend(entry[label_key])
    x = torch.from_numpy(np.concatenate(xs)).permute(0, 2, 3, 1).contiguous()  # NHWC like torchvision's .data
    return x, torch.tensor(ys, dtype=torch.long)


def load_cifar(name: str, root: str | os.PathLike[str], download: bool = False) -> TensorData:
    """Read the CIFAR python-format pickles (the files torchvision's CIFAR10/100 read) under `root`.

    The pickles are read directly (same format and keys as torchvision's reader, without its md5 check
    of the whole archive); torchvision is used only to download when `download` is true.
    """
    info = DATASETS[name]
    sub, train_files, test_files, label_key = _CIFAR_FILES[name]
    root = Path(root).expanduser()
    folder = root / sub
    if not all((folder / f).is_file() for f in train_files + test_files):
        if not download:
            raise FileNotFoundError(f"{name}: no {sub}/ under {root}; set `download: true` to fetch it")
        import torchvision

        cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
        cls(str(root), train=True, download=True)
    xtr, ytr = _read_cifar_batches(folder, train_files, label_key)
    xte, yte = _read_cifar_batches(folder, test_files, label_key)
    return TensorData(_normalise_images(xtr, info), ytr, _normalise_images(xte, info), yte, info.num_classes,
                      info.augment)


def _load_images(paths: list[Path], size: int, imagenet_eval: bool) -> torch.Tensor:
    from PIL import Image

    out = torch.empty(len(paths), size, size, 3, dtype=torch.uint8)
    for i, p in enumerate(paths):
        with Image.open(p) as im:
            im = im.convert("RGB")
            if imagenet_eval:  # resize shorter side to 256/224 * size, centre crop
                short = round(size * 256 / 224)
                w, h = im.size
                scale = short / min(w, h)
                im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR)
                w, h = im.size
                left, top = (w - size) // 2, (h - size) // 2
                im = im.crop((left, top, left + size, top + size))
            elif im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            out[i] = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8).view(size, size, 3)
    return out


_IMG_EXT = (".jpeg", ".jpg", ".png", ".bmp", ".ppm", ".webp")


def _folder_items(folder: Path, classes: list[str]) -> list[tuple[Path, int]]:
    index = {c: i for i, c in enumerate(classes)}
    items = []
    for c in classes:
        for p in sorted((folder / c).rglob("*")):
            if p.suffix.lower() in _IMG_EXT:
                items.append((p, index[c]))
    return items


def _image_folder_items(name: str, root: str | os.PathLike[str]
                        ) -> tuple[list[tuple[Path, int]], list[tuple[Path, int]]]:
    """(path, class) of every train and val image: `root/train/<class>/...` and `root/val/<class>/...`
    (or Tiny-ImageNet's `val/images` + `val_annotations.txt`); classes are the sorted train folders."""
    root = Path(root).expanduser()
    train_dir, val_dir = root / "train", root / "val"
    if not train_dir.is_dir() or not val_dir.is_dir():
        raise FileNotFoundError(f"{name}: expected ImageFolder trees {train_dir} and {val_dir}")
    classes = sorted(d.name for d in train_dir.iterdir() if d.is_dir())
    train = _folder_items(train_dir, classes)
    ann = val_dir / "val_annotations.txt"
    if ann.exists():  # Tiny-ImageNet: val/images/<file> with "<file>\t<class>\t..." lines
        index = {c: i for i, c in enumerate(classes)}
        val = []
        for line in ann.read_text().splitlines():
            cols = line.split("\t")
            if len(cols) >= 2 and cols[1] in index:
                val.append((val_dir / "images" / cols[0], index[cols[1]]))
    else:
        val = _folder_items(val_dir, classes)
    if not train or not val:
        raise FileNotFoundError(f"{name}: no images found under {root}")
    return train, val


def load_image_folder(name: str, root: str | os.PathLike[str]) -> TensorData:
    """`root/train/<class>/...` and `root/val/<class>/...` (or Tiny-ImageNet's val layout), in memory."""
    info = DATASETS[name]
    train, val = _image_folder_items(name, root)
    evalmode = name == "imagenet"
    xtr = _load_images([p for p, _ in train], info.image_size, evalmode)
    xte = _load_images([p for p, _ in val], info.image_size, evalmode)
    ytr = torch.tensor([c for _, c in train], dtype=torch.long)
    yte = torch.tensor([c for _, c in val], dtype=torch.long)
    return TensorData(_normalise_images(xtr, info), ytr, _normalise_images(xte, info), yte, info.num_classes,
                      info.augment)


def load_stream(name: str, root: str | os.PathLike[str], image_size: int | None = None,
                num_workers: int | None = None) -> StreamData:
    """An ImageFolder data set read from disk per batch (stream.py), at `image_size` (default: the data
    set's; smaller sizes make tests fast). `num_workers`: DataLoader workers (default: up to 8, one per
    CPU core)."""
    info = DATASETS[name]
    if name not in ("tiny-imagenet", "imagenet"):
        raise ValueError(f"{name}: only ImageFolder data sets (tiny-imagenet, imagenet) stream")
    train, val = _image_folder_items(name, root)
    size = image_size or info.image_size
    t_train, t_test, aug = transforms(name, info, size)
    if num_workers is None:
        num_workers = min(DEFAULT_WORKERS, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                          else (os.cpu_count() or 1))
    return StreamData(ImageItems(train, t_train), ImageItems(val, t_test), info.num_classes, aug, size,
                      num_workers)


def make_mnist1d(test_size: int = 1000) -> dict[str, torch.Tensor]:
    """MNIST-1D as `mnist1d` generates it: `get_dataset_args()` (seed 42) asked for MNIST1D_TRAIN +
    `test_size` examples, the first MNIST1D_TRAIN for training. With test_size 1000 that is exactly
    `make_dataset(get_dataset_args())` (its 80 % split of 5000)."""
    from mnist1d.data import get_dataset_args, make_dataset

    total = MNIST1D_TRAIN + test_size
    if test_size < 1 or total % 10:
        raise ValueError(f"MNIST-1D test_size {test_size}: must be >= 1 and make {MNIST1D_TRAIN} + test_size "
                         "a multiple of 10 (the generator makes the same number of every digit)")
    args = get_dataset_args()
    args.num_samples, args.train_split = total, 1.0   # split here, by count: no float rounding of the split
    raw = make_dataset(args)
    x, y = torch.tensor(raw["x"], dtype=torch.float32), torch.tensor(raw["y"], dtype=torch.long)
    return {"x": x[:MNIST1D_TRAIN].clone(), "y": y[:MNIST1D_TRAIN].clone(),
            "x_test": x[MNIST1D_TRAIN:].clone(), "y_test": y[MNIST1D_TRAIN:].clone()}


def load_mnist1d(name: str = "mnist1d") -> TensorData:
    """An MNIST-1D data set of DATASETS (`mnist1d`, `mnist1d-10k`), generated once and cached as `<name>.pt`."""
    info = DATASETS[name]
    if info.kind != "1d" or not info.test_size:
        raise ValueError(f"{name!r} is not an MNIST-1D data set")
    path = cache_dir() / f"{name}.pt"
    if path.exists():
        d = torch.load(path, weights_only=True)
    else:
        d = make_mnist1d(info.test_size)
        atomic_torch_save(d, path)
    return TensorData(d["x"], d["y"], d["x_test"], d["y_test"], info.num_classes, info.augment)


def load_dataset(name: str, root: str | os.PathLike[str] = "~/data", download: bool = False,
                 augment: str | None = None, in_memory: bool = True, image_size: int | None = None,
                 num_workers: int | None = None) -> TensorData | StreamData:
    """The data set as CPU tensors (move with `.to(device)`); `augment` overrides the data set's default.

    With `in_memory=False` (ImageFolder data sets only) a `StreamData` instead (`load_stream`; `augment`
    is then ignored: the streamed transforms are fixed). Experiments pass `Experiment.data_in_memory`,
    which is False for `imagenet` unless the file says `in_memory: true`.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    if not in_memory:
        return load_stream(name, root, image_size, num_workers)
    if name in ("cifar10", "cifar100"):
        data = load_cifar(name, root, download)
    elif name in ("tiny-imagenet", "imagenet"):
        data = load_image_folder(name, root)
    else:
        data = load_mnist1d(name)
    if augment is not None:
        data.augment = augment
    return data
