"""Data sets in the IDX format (MNIST, Fashion-MNIST, KMNIST: 28x28 grey images, 10 classes) as
in-memory tensors: read the files once, slice whole batches, normalise per batch.

Per-image PIL transforms and a DataLoader's per-sample collation cost a quarter of an epoch on a
small CPU; slicing one uint8 tensor costs almost nothing, and the same code keeps the whole data
set in GPU memory when training on a GPU.
"""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import torch
import torchvision.datasets
from PIL import Image
from torch import Tensor

from src.core.errors import UsageError, message_line
from src.data.augment import augment
from src.data.batches import TensorBatches
from src.data.images import like_dataset

IDX_DTYPE_UBYTE = 0x08
SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# The (mean, std) of each `normalize` option: the seed notes' (0.5, 0.5), the data set's own
# (None: its YAML's mean and std), or none at all.
NORMALIZE = {"half": (0.5, 0.5), "dataset": None, "none": (0.0, 1.0)}


def raw_folder(data_dir: str | Path, folder: str) -> Path:
    """torchvision's layout: <data root>/<data set's folder>/raw/<IDX files>."""
    return Path(data_dir) / folder / "raw"


def read_idx(path: Path) -> Tensor:
    """Read one IDX file of unsigned bytes into a uint8 tensor."""
    data = path.read_bytes()
    if len(data) < 4 or data[0:2] != b"\x00\x00" or data[2] != IDX_DTYPE_UBYTE:
        raise UsageError(
            f"{path} is not an IDX file (wrong magic number): replace it with the original "
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


def load_split(raw: Path, split: str) -> tuple[Tensor, Tensor]:
    """Images as uint8 [N, 1, H, W] and labels as int64 [N] for 'train' or 'test'."""
    image_file, label_file = (raw / name for name in SPLITS[split])
    images, labels = read_idx(image_file), read_idx(label_file)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise UsageError(
            f"{image_file} and {label_file} do not match: {tuple(images.shape)} images, "
            f"{tuple(labels.shape)} labels; replace them with the data set's original pair"
        )
    return images.unsqueeze(1), labels.long()


def ensure_files(data_dir: str | Path, folder: str) -> None:
    """Download a data set through torchvision (its class of the folder's name) if its files are
    missing; explain if that fails."""
    raw = raw_folder(data_dir, folder)
    missing = [n for names in SPLITS.values() for n in names if not (raw / n).exists()]
    if not missing:
        return
    try:
        dataset = getattr(torchvision.datasets, folder, None)
        # The folder comes from a config, maybe a checkpoint's: only a data set class is called.
        if not (isinstance(dataset, type) and issubclass(dataset, torchvision.datasets.MNIST)):
            raise ValueError(f"torchvision has no IDX data set named {folder}")
        for train in (True, False):
            dataset(root=str(data_dir), train=train, download=True)
    except Exception as error:
        raise UsageError(
            f"{folder} is not in {raw} (missing: {', '.join(missing)}) and the download failed "
            f"({type(error).__name__}: {message_line(error)}). "
            f"Put the four IDX files there, or point DATA_DIR (or data.data_dir=...) at a folder "
            f"that holds {folder}/raw, e.g. DATA_DIR=../shared/data"
        ) from None


def seeded_split(count: int, val_size: int, seed: int) -> tuple[Tensor, Tensor]:
    """Disjoint train and validation indices, the same for a given seed on every machine."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    return order[val_size:], order[:val_size]


class IDXDataModule(L.LightningDataModule):
    """The training file split into train/val by a seeded split; the test file is only ever the
    test set (for MNIST: the official 10,000 test images)."""

    image_shape = (1, 28, 28)

    def __init__(
        self,
        *,
        data_dir: str,
        folder: str,
        classes: list[str],
        mean: float,
        std: float,
        normalize: str,
        batch_size: int,
        eval_batch_size: int,
        val_size: int,
        split_seed: int,
        shuffle: bool,
        augment: bool,
        rotate_degrees: float,
        translate: float,
        scale: float,
        elastic_alpha: float,
        elastic_sigma: float,
        predict_box: int,
        predict_centre: str,
        seed: int,
    ) -> None:
        super().__init__()
        for fine, message in (
            (len(classes) >= 2, f"classes must name two or more classes, got {classes}"),
            (std > 0, f"std must be > 0, got {std}"),
            (
                normalize in NORMALIZE,
                f"normalize must be one of {list(NORMALIZE)}, got '{normalize}'",
            ),
            (batch_size >= 1, f"batch_size must be >= 1, got {batch_size}"),
            (eval_batch_size >= 1, f"eval_batch_size must be >= 1, got {eval_batch_size}"),
            (val_size >= 1, f"val_size must be >= 1, got {val_size}"),
            (
                0 <= rotate_degrees <= 180,
                f"rotate_degrees must be in [0, 180], got {rotate_degrees}",
            ),
            (0 <= translate < 1, f"translate must be in [0, 1), got {translate}"),
            (0 <= scale < 1, f"scale must be in [0, 1), got {scale}"),
            (elastic_alpha >= 0, f"elastic_alpha must be >= 0 (0: none), got {elastic_alpha}"),
            (elastic_sigma > 0, f"elastic_sigma must be > 0, e.g. 4 (pixels), got {elastic_sigma}"),
            (1 <= predict_box <= 28, f"predict_box must be in [1, 28], got {predict_box}"),
            (
                predict_centre in ("mass", "box"),
                f"predict_centre must be mass or box, got '{predict_centre}'",
            ),
        ):
            if not fine:
                raise ValueError(message)
        self.data_dir, self.folder, self.classes = data_dir, folder, list(classes)
        self.batch_size, self.eval_batch_size, self.val_size = batch_size, eval_batch_size, val_size
        self.split_seed, self.shuffle, self.seed = split_seed, shuffle, seed
        self.mean, self.std = NORMALIZE[normalize] or (mean, std)
        self.augment = augment
        self.augmentation = (rotate_degrees, translate, scale, elastic_alpha, elastic_sigma)
        self.predict_box, self.predict_centre = predict_box, predict_centre
        self.splits: dict[str, tuple[Tensor, Tensor]] = {}
        self.loaders: dict[str, TensorBatches] = {}

    def prepare_data(self) -> None:
        ensure_files(self.data_dir, self.folder)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        raw = raw_folder(self.data_dir, self.folder)
        images, labels = load_split(raw, "train")
        self.require_fitting(images, labels, raw)
        train_idx, val_idx = seeded_split(len(labels), self.val_size, self.split_seed)
        device = self.trainer.strategy.root_device if self.trainer else torch.device("cpu")
        test_images, test_labels = load_split(raw, "test")
        splits = {
            "train": (images[train_idx], labels[train_idx]),
            "val": (images[val_idx], labels[val_idx]),
            "test": (test_images, test_labels),
        }
        self.splits = {k: (x.to(device), y.to(device)) for k, (x, y) in splits.items()}

    def require_fitting(self, images: Tensor, labels: Tensor, raw: Path) -> None:
        if tuple(images.shape[1:]) != self.image_shape:
            raise UsageError(
                f"{raw} holds images of {tuple(images.shape[1:])}, not {self.image_shape}: "
                "this data module reads 28x28 grey IDX data sets"
            )
        if int(labels.max()) >= len(self.classes):
            raise UsageError(
                f"{raw} has labels up to {int(labels.max())}, but data.classes names only "
                f"{len(self.classes)} classes: list every class's name in data.classes (or, if "
                "the file is corrupt, replace it with the original)"
            )
        if not 0 < self.val_size < len(labels):
            raise UsageError(
                f"data.val_size={self.val_size} leaves no training images: the training file "
                f"holds {len(labels):,} images; choose a value between 1 and {len(labels) - 1}"
            )

    def batches(self, split: str) -> TensorBatches:
        # One iterator per split for the whole run, so its epoch counter and position persist
        # (and are saved in checkpoints for an exact resume).
        if split not in self.loaders:
            training = split == "train"
            trainer = self.trainer
            # trainer.overfit_batches trains on the same batches every epoch: Lightning turns a
            # DataLoader's shuffling off for it, and these batches are no DataLoader.
            overfitting = bool(trainer and trainer.overfit_batches)
            self.loaders[split] = TensorBatches(
                *self.splits[split],
                batch_size=self.batch_size if training else self.eval_batch_size,
                shuffle=training and self.shuffle and not overfitting,
                seed=self.seed,
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

    def normalize(self, images: Tensor) -> Tensor:
        """uint8 pixels to the network's input scale: (x / 255 - mean) / std."""
        return images.float().mul_(1 / (255 * self.std)).sub_(self.mean / self.std)

    def like_examples(self, image: Image.Image) -> Tensor:
        """A user's photo or scan as a uint8 image made the way this data set made its own."""
        return like_dataset(image, self.predict_box, self.predict_centre)

    def on_after_batch_transfer(self, batch: tuple[Tensor, Tensor], dataloader_idx: int):
        images, labels = batch
        images = self.normalize(images)
        if self.augment and self.trainer and self.trainer.training:
            # Augment in the normalised space, where the background is -mean/std, not 0.
            background = -self.mean / self.std
            images = augment(images - background, *self.augmentation) + background
        return images, labels
