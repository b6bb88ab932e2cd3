"""MNIST as in-memory tensors: read the IDX files once, slice whole batches, normalise per batch.

Per-image PIL transforms and a DataLoader's per-sample collation cost a quarter of an epoch on a
small CPU; slicing one uint8 tensor costs almost nothing, and the same code keeps the whole data
set in GPU memory when training on a GPU.
"""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor

from src.config import NORMALIZATIONS
from src.errors import UsageError

IDX_DTYPE_UBYTE = 0x08
SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def raw_folder(data_dir: str | Path) -> Path:
    return Path(data_dir) / "MNIST" / "raw"


def read_idx(path: Path) -> Tensor:
    """Read one IDX file of unsigned bytes (the format MNIST ships in) into a uint8 tensor."""
    data = path.read_bytes()
    if len(data) < 4 or data[0:2] != b"\x00\x00" or data[2] != IDX_DTYPE_UBYTE:
        raise UsageError(
            f"{path} is not an MNIST IDX file (wrong magic number): replace it with the original "
            "file, or delete it so it can be downloaded again"
        )
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = header + math.prod(shape)
    if len(data) != expected:
        raise UsageError(
            f"{path} is truncated or corrupt: its header promises {expected:,} bytes, the file has "
            f"{len(data):,}; replace it with the original file"
        )
    return torch.frombuffer(bytearray(data[header:]), dtype=torch.uint8).view(shape)


def load_split(data_dir: str | Path, split: str) -> tuple[Tensor, Tensor]:
    """Images as uint8 [N, 1, 28, 28] and labels as int64 [N] for 'train' or 'test'."""
    image_file, label_file = (raw_folder(data_dir) / name for name in SPLITS[split])
    images, labels = read_idx(image_file), read_idx(label_file)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise UsageError(
            f"{image_file} and {label_file} do not match: {tuple(images.shape)} images, "
            f"{tuple(labels.shape)} labels"
        )
    return images.unsqueeze(1), labels.long()


def ensure_mnist(data_dir: str | Path) -> None:
    """Download MNIST through torchvision if its files are missing; explain if that fails."""
    folder = raw_folder(data_dir)
    missing = [n for names in SPLITS.values() for n in names if not (folder / n).exists()]
    if not missing:
        return
    try:
        from torchvision.datasets import MNIST

        MNIST(root=str(data_dir), train=True, download=True)
        MNIST(root=str(data_dir), train=False, download=True)
    except Exception as error:
        raise UsageError(
            f"MNIST is not in {folder} (missing: {', '.join(missing)}) and the download failed "
            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}). "
            "Put the four IDX files there, or point DATA_DIR (or data.data_dir=...) at a folder "
            "that holds MNIST/raw, e.g. DATA_DIR=../shared/data"
        ) from None


def seeded_split(count: int, val_size: int, seed: int) -> tuple[Tensor, Tensor]:
    """Disjoint train and validation indices, the same for a given seed on every machine."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    return order[val_size:], order[:val_size]


class TensorBatches:
    """Batches sliced from in-memory tensors.

    Each epoch draws its order from (seed, epoch), so the order does not depend on the global RNG
    and a run resumed mid-epoch sees the same batches. Under DDP each process takes a disjoint
    shard; training shards are cut to equal length so every process steps the same number of
    times, evaluation shards are not cut, so every image is evaluated exactly once.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        equal_shards: bool = False,
    ) -> None:
        self.images, self.labels = images, labels
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.rank, self.world_size, self.equal_shards = rank, world_size, equal_shards
        self.epoch = -1  # the epoch being served; each new pass over the data starts the next
        self.batches_done = 0  # batches served in that epoch (saved in checkpoints)
        self.resume_at: int | None = None

    def shard(self) -> Tensor:
        count = len(self.labels)
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(count, generator=generator)
        else:
            order = torch.arange(count)
        if self.equal_shards:
            order = order[: count - count % self.world_size]
        return order[self.rank :: self.world_size].to(self.images.device)

    def __len__(self) -> int:
        shard_size = len(self.labels) // self.world_size
        if not self.equal_shards and self.rank < len(self.labels) % self.world_size:
            shard_size += 1
        return math.ceil(shard_size / self.batch_size)

    def __iter__(self):
        # A pass starts a new epoch, even if the last one was left early (a sanity check, a batch
        # limit), unless a checkpoint's position was just loaded and lies inside its epoch.
        if self.resume_at is not None and self.resume_at < len(self):
            self.batches_done = self.resume_at
        else:
            self.epoch, self.batches_done = self.epoch + 1, 0
        self.resume_at = None
        indices = self.shard()
        for start in range(self.batches_done * self.batch_size, len(indices), self.batch_size):
            batch = indices[start : start + self.batch_size]
            self.batches_done += 1
            yield self.images[batch], self.labels[batch]

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batches_done": self.batches_done}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.resume_at = state["epoch"], state["batches_done"]


def augment(
    images: Tensor,
    degrees: float,
    translate: float,
    scale: float,
    elastic_alpha: float = 0.0,
    elastic_sigma: float = 4.0,
) -> Tensor:
    """Random affine (rotation, translation, scale) of a whole float batch, plus an elastic
    distortion when elastic_alpha > 0, in one grid_sample."""
    n = images.shape[0]
    angle = torch.empty(n, device=images.device).uniform_(-degrees, degrees).deg2rad()
    zoom = torch.empty(n, device=images.device).uniform_(1 - scale, 1 + scale)
    shift = torch.empty(n, 2, device=images.device).uniform_(-2 * translate, 2 * translate)
    cos, sin = angle.cos() / zoom, angle.sin() / zoom
    theta = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
    theta = torch.cat([theta, shift.unsqueeze(2)], 2).to(images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    if elastic_alpha > 0:
        grid = grid + elastic_displacement(images, elastic_alpha, elastic_sigma)
    return F.grid_sample(images, grid, align_corners=False, padding_mode="zeros")


def elastic_displacement(images: Tensor, alpha: float, sigma: float) -> Tensor:
    """Simard et al.'s elastic distortion (2003): random displacements in [-1, 1] per pixel,
    smoothed by a Gaussian of `sigma` pixels and scaled by `alpha` pixels; returned in
    grid_sample's coordinates, [N, H, W, (x, y)]."""
    n, _, height, width = images.shape
    noise = torch.empty(n, 2, height, width, device=images.device).uniform_(-1, 1)
    radius = math.ceil(3 * sigma)
    offsets = torch.arange(-radius, radius + 1, device=images.device, dtype=noise.dtype)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    # The 2-D Gaussian as two 1-D passes, x then y, each channel (x and y shift) on its own.
    smooth = F.conv2d(
        noise, kernel.view(1, 1, 1, -1).expand(2, 1, 1, -1), padding=(0, radius), groups=2
    )
    smooth = F.conv2d(
        smooth, kernel.view(1, 1, -1, 1).expand(2, 1, -1, 1), padding=(radius, 0), groups=2
    )
    pixels_to_grid = torch.tensor([2 / width, 2 / height], device=images.device)
    return (alpha * smooth.permute(0, 2, 3, 1) * pixels_to_grid).to(images.dtype)


class MNISTDataModule(L.LightningDataModule):
    """60,000 training images split into train/val by a seeded split; the 10,000 test images are
    only ever the test set."""

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 64,
        val_size: int = 5000,
        split_seed: int = 0,
        normalize: str = "half",
        shuffle: bool = True,
        eval_batch_size: int = 1000,
        augment: bool = False,
        rotate_degrees: float = 10.0,
        translate: float = 0.1,
        scale: float = 0.1,
        elastic_alpha: float = 0.0,
        elastic_sigma: float = 4.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.mean, self.std = NORMALIZATIONS[normalize]
        self.splits: dict[str, tuple[Tensor, Tensor]] = {}
        self.loaders: dict[str, TensorBatches] = {}

    def prepare_data(self) -> None:
        ensure_mnist(self.hparams.data_dir)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        hp = self.hparams
        images, labels = load_split(hp.data_dir, "train")
        require_enough_images(len(labels), hp.val_size)
        train_idx, val_idx = seeded_split(len(labels), hp.val_size, hp.split_seed)
        device = self.trainer.strategy.root_device if self.trainer else torch.device("cpu")
        test_images, test_labels = load_split(hp.data_dir, "test")
        splits = {
            "train": (images[train_idx], labels[train_idx]),
            "val": (images[val_idx], labels[val_idx]),
            "test": (test_images, test_labels),
        }
        self.splits = {k: (x.to(device), y.to(device)) for k, (x, y) in splits.items()}

    def batches(self, split: str) -> TensorBatches:
        # One iterator per split for the whole run, so its epoch counter and position persist
        # (and are saved in checkpoints for an exact resume).
        if split not in self.loaders:
            training = split == "train"
            trainer = self.trainer
            self.loaders[split] = TensorBatches(
                *self.splits[split],
                batch_size=self.hparams.batch_size if training else self.hparams.eval_batch_size,
                shuffle=training and self.hparams.shuffle,
                seed=self.hparams.seed,
                rank=trainer.global_rank if trainer else 0,
                world_size=trainer.world_size if trainer else 1,
                equal_shards=training,
            )
        return self.loaders[split]

    def train_dataloader(self) -> TensorBatches:
        return self.batches("train")

    def val_dataloader(self) -> TensorBatches:
        return self.batches("val")

    def test_dataloader(self) -> TensorBatches:
        return self.batches("test")

    def predict_dataloader(self) -> TensorBatches:
        return self.batches("test")

    def normalize(self, images: Tensor) -> Tensor:
        """uint8 pixels to the network's input scale: (x / 255 - mean) / std."""
        return images.float().mul_(1 / (255 * self.std)).sub_(self.mean / self.std)

    def on_after_batch_transfer(self, batch: tuple[Tensor, Tensor], dataloader_idx: int):
        images, labels = batch
        images = self.normalize(images)
        if self.hparams.augment and self.trainer and self.trainer.training:
            hp = self.hparams
            # Augment in the normalised space, where the background is -mean/std, not 0.
            background = -self.mean / self.std
            images = augment(
                images - background,
                hp.rotate_degrees,
                hp.translate,
                hp.scale,
                hp.elastic_alpha,
                hp.elastic_sigma,
            )
            images = images + background
        return images, labels


def require_enough_images(count: int, val_size: int) -> None:
    if not 0 < val_size < count:
        raise UsageError(
            f"data.val_size={val_size} leaves no training images: the training file holds "
            f"{count:,} images; choose a value between 1 and {count - 1}"
        )
