"""Streaming ImageFolder data (`StreamData`): images decoded per batch by DataLoader workers.

For data sets that do not fit in memory (full ImageNet: 1.28M images). `data.load_stream` builds it;
`train.train_one` trains on it (the batched trainer does not: `train_many` falls back to `train_one`).

Determinism (compare jobs.py, which documents `TensorData`):

- Data order of schedule epoch E is the permutation `TensorData` uses: the epoch generator
  `epoch_generator(seed, E)` draws `perm = randperm(N)` first, so both paths visit samples in the same
  order; batches are consecutive slices of it, the last one partial.
- Then the same generator draws one 63-bit seed per position of the epoch, `randint(0, 2**62, (N,))`.
  Each sample's transform runs under `torch.manual_seed(that seed)` (the process's RNG is restored
  afterwards), so its augmentation (RandomResizedCrop, flip; or Tiny-ImageNet's crop-flip) is a function
  of (seed, E, position) alone: the same with 0 or 16 workers and whatever worker picks the sample up.
  The DataLoader's own `generator` (worker base seeds, which the transforms then do not use) is seeded
  with the run's seed, so nothing reads the process-wide RNG. These augmentation draws are NOT the
  ones `TensorData` makes (those are batched crop offsets on the device), so a streamed run and an
  in-memory run of the same data set give different (equally valid) numbers; the experiment's
  `config_hash` says which ran.
- Decoding and resizing use PIL (bilinear resize for RandomResizedCrop), not the in-memory loader's
  code, so even the eval images differ from `TensorData`'s by resampling detail.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .jobs import epoch_generator

SEED_HIGH = 2 ** 62
DEFAULT_WORKERS = 8


class ImageItems(Dataset):
    """(path, class) pairs read with PIL as RGB. A sample index may be an int, or (int, seed): then the
    transform runs under `torch.manual_seed(seed)` and the caller's RNG state is restored."""

    def __init__(self, items: list[tuple[Path, int]], transform):
        self.items = list(items)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key):
        from PIL import Image

        i, seed = key if isinstance(key, tuple) else (key, None)
        path, target = self.items[i]
        with Image.open(path) as im:
            im = im.convert("RGB")
        if seed is None:
            return self.transform(im), target
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            return self.transform(im), target


class EpochSampler(Sampler):
    """Yields (index, sample seed) for one schedule epoch, drawn from `epoch_generator(seed, epoch)`:
    the permutation first, then one seed per position. `set_epoch` before iterating (like
    DistributedSampler); it runs in the main process, so it works with persistent workers."""

    def __init__(self, n: int, seed: int, epoch: int = 0):
        self.n, self.seed, self.epoch = n, seed, epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self) -> tuple[torch.Tensor, torch.Tensor]:
        g = epoch_generator(self.seed, self.epoch)
        perm = torch.randperm(self.n, generator=g)
        seeds = torch.randint(0, SEED_HIGH, (self.n,), generator=g)
        return perm, seeds

    def __iter__(self) -> Iterator[tuple[int, int]]:
        perm, seeds = self.order()
        return iter(zip(perm.tolist(), seeds.tolist()))

    def __len__(self) -> int:
        return self.n


@dataclass
class StreamData:
    """Train and test images read from disk per batch. `device` is where batches go (`to()` only records
    it; images are never all on it). `augment` names the train transform, for records and messages."""

    train: ImageItems
    test: ImageItems
    num_classes: int
    augment: str = "rrc-flip"
    image_size: int = 224
    num_workers: int = DEFAULT_WORKERS
    eval_batch: int = 250
    device: torch.device = torch.device("cpu")

    def to(self, device: torch.device | str) -> StreamData:
        return replace(self, device=torch.device(device))

    @property
    def n_train(self) -> int:
        return len(self.train)

    def _loader(self, dataset: Dataset, batch_size: int, sampler=None, seed: int = 0) -> DataLoader:
        workers = self.num_workers
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, shuffle=False, drop_last=False,
                          num_workers=workers, pin_memory=self.device.type == "cuda",
                          persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None,
                          generator=torch.Generator().manual_seed(seed))

    def train_loader(self, batch_size: int, seed: int) -> DataLoader:
        """One loader for a whole run (workers persist across epochs); `epoch_batches` sets the epoch."""
        return self._loader(self.train, batch_size, EpochSampler(self.n_train, seed), seed)

    def test_loader(self) -> DataLoader:
        return self._loader(self.test, self.eval_batch)

    def epoch_batches(self, loader: DataLoader, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(x, y) batches of schedule epoch `epoch` on `self.device`, in the documented order."""
        loader.sampler.set_epoch(epoch)
        return self.batches(loader)

    def batches(self, loader: DataLoader) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(x, y) batches of `loader` on `self.device`."""
        for xb, yb in loader:
            yield self._move(xb), self._move(yb)

    def _move(self, t: torch.Tensor) -> torch.Tensor:
        return t.to(self.device, non_blocking=True) if t.device != self.device else t


def transforms(name: str, info, image_size: int | None = None):
    """(train, eval) torchvision transforms of a streamed data set at `image_size` (default: the data set's).

    ImageNet: RandomResizedCrop + horizontal flip for training; resize to size*256/224 and centre crop for
    evaluation. Tiny-ImageNet: resized to the size if it differs, normalised, then the in-memory path's
    augmentation: 4-pixel zero padding of the normalised image, random crop, horizontal flip.
    Returns the train augmentation's name too.
    """
    import torchvision.transforms as T

    size = image_size or info.image_size
    norm = [T.ToTensor(), T.Normalize(info.mean, info.std)]
    if name == "imagenet":
        train = T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(), *norm])
        test = T.Compose([T.Resize(round(size * 256 / 224)), T.CenterCrop(size), *norm])
        return train, test, "rrc-flip"
    resize = [T.Resize((size, size))]
    train = T.Compose([*resize, *norm, T.RandomCrop(size, padding=4), T.RandomHorizontalFlip()])
    test = T.Compose([*resize, *norm])
    return train, test, "crop-flip"
