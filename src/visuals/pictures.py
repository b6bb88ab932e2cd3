"""Pictures in TensorBoard during training: what the network is, what it sees and where it fails.

Once, when training starts: the network's graph, a table of its layers, and a grid of training
inputs as the network sees them (normalised, and augmented when augmentation is on). Every
validation epoch: the confusion matrix, the worst misclassified digits, the feature maps of every
convolution for a few fixed digits and the first convolution's filters. Weight and gradient
histograms every epoch when switched on. Each is a switch in `callbacks.pictures`.

The training steps are left alone; validation steps only update a confusion matrix and keep the
worst few digits on the device, so the pictures are drawn once per epoch without host syncs in
between. Nothing is drawn during Lightning's sanity check. Under DDP the confusion matrix counts
every process's digits; the other pictures show rank 0's.
"""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor, nn
from torch.utils.tensorboard._pytorch_graph import graph
from torchmetrics.classification import MulticlassConfusionMatrix
from torchvision.utils import make_grid

from src.models import LAYER_COLUMNS, layer_rows, outputs_of
from src.visuals.figures import (
    confusion_figure,
    digits_figure,
    figure_pixels,
    filters_grid,
    maps_grid,
    mistakes_by_loss,
)
from src.visuals.tables import markdown_table

# The graph is traced with torch.jit.trace, which newer torch marks deprecated; TensorBoard's
# add_graph has nothing else yet.
warnings.filterwarnings(
    "ignore", message=r".*torch\.jit\.trace.* is deprecated", category=FutureWarning
)

SAMPLES = 64  # training inputs in the grid of samples
WORST = 20  # misclassified validation digits shown each epoch, the most confidently wrong first
PROBES = 4  # validation digits (the first ones, the same every epoch) whose feature maps are shown
# The graph of each network drawn so far in this process, by its settings, layers and input shape.
_GRAPHS: dict[tuple[str, str, tuple[int, ...]], tuple] = {}


def network_graph(network: nn.Module, settings: dict, blank: Tensor) -> tuple:
    """The network's graph as TensorBoard stores it, traced once per distinct network in a process:
    torch.jit.trace registers what it traces in torch's global TorchScript unit for good, about
    1 MB for convnet32, so tracing every job of a long sweep would grow its memory without end."""
    key = (repr(settings), repr(network), tuple(blank.shape))
    if key not in _GRAPHS:
        _GRAPHS[key] = graph(network, blank)
    return _GRAPHS[key]


class Pictures(Callback):
    """Each argument switches one picture on or off (conf/callbacks/default.yaml); a run without
    a TensorBoard logger among its loggers draws none."""

    def __init__(
        self,
        *,
        graph: bool,
        layer_table: bool,
        samples: bool,
        confusion: bool,
        misclassified: bool,
        feature_maps: bool,
        filters: bool,
        histograms: bool,
    ) -> None:
        self.show = SimpleNamespace(**{k: v for k, v in locals().items() if k != "self"})
        self.confusion: MulticlassConfusionMatrix | None = None
        self.worst: dict[str, Tensor] = {}
        self.probes: Tensor | None = None
        self.histograms_epoch = -1
        self.tensorboard: TensorBoardLogger | None = None  # the run's, found in setup

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.tensorboard = tensorboard_of(trainer)
        if self.tensorboard is None:  # fast_dev_run's stand-in logger too: nothing to draw
            self.show = SimpleNamespace(**dict.fromkeys(vars(self.show), False))

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or self.tensorboard is None:
            return
        blank = torch.zeros(
            1, *pl_module.hparams.image_shape, device=pl_module.device, dtype=pl_module.dtype
        )
        # In eval mode, so that tracing the network neither updates batch-norm statistics nor
        # draws dropout masks: training goes exactly as it would without the pictures.
        network = pl_module.network.eval()
        writer = self.tensorboard.experiment
        if self.show.graph:
            writer._get_file_writer().add_graph(
                network_graph(network, pl_module.hparams.model, blank)
            )
        if self.show.layer_table:
            table = markdown_table(LAYER_COLUMNS, layer_rows(network, blank.shape[1:]))
            writer.add_text("model/layers", table)
        network.train()

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int
    ) -> None:
        if self.show.samples and trainer.global_step == 0 and trainer.is_global_zero:
            # One scale for the whole grid (the smallest input value black, the largest white), so
            # the images keep their brightness relative to each other.
            grid = make_grid(batch[0][:SAMPLES].float().cpu(), nrow=8, normalize=True)
            self.tensorboard.experiment.add_image("visuals/train_samples", grid, 0)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.confusion = MulticlassConfusionMatrix(pl_module.num_classes).to(pl_module.device)
        self.worst = {}

    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, logits, batch, batch_idx: int, *_
    ) -> None:
        if trainer.sanity_checking:
            return
        images, labels = batch
        if self.show.confusion:
            self.confusion.update(logits, labels)
        if self.show.misclassified:
            self.keep_worst(images, labels, logits)
        if self.show.feature_maps and self.probes is None:
            self.probes = images[:PROBES].clone()

    def keep_worst(self, images: Tensor, labels: Tensor, logits: Tensor) -> None:
        """Keep the WORST highest-loss mistakes seen so far, on the device (no host sync)."""
        losses = F.cross_entropy(logits, labels, reduction="none")
        losses = losses.masked_fill(logits.argmax(dim=1) == labels, -torch.inf)
        batch = {"loss": losses, "image": images, "label": labels, "logits": logits.detach()}
        if self.worst:
            batch = {key: torch.cat([self.worst[key], values]) for key, values in batch.items()}
        keep = batch["loss"].topk(min(WORST, len(batch["loss"]))).indices
        self.worst = {key: values[keep] for key, values in batch.items()}

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        matrix = self.confusion.compute() if self.show.confusion else None  # every process
        if not trainer.is_global_zero or self.tensorboard is None:
            return
        if not finite(pl_module.network):
            return  # a diverged network: nothing to draw, and the run stops at its next check
        writer, step = self.tensorboard.experiment, trainer.global_step
        if matrix is not None:
            figure = figure_pixels(confusion_figure(matrix, pl_module.hparams.classes))
            writer.add_image("val/confusion_matrix", figure, step, dataformats="HWC")
        if self.worst:
            logits, labels = self.worst["logits"], self.worst["label"]
            shown = mistakes_by_loss(logits, labels)
            figure = digits_figure(
                self.worst["image"][shown],
                logits[shown].argmax(dim=1),
                labels[shown],
                pl_module.hparams.classes,
            )
            writer.add_image("val/misclassified", figure_pixels(figure), step, dataformats="HWC")
        convolutions = modules_of_type(pl_module.network, nn.Conv2d)
        if self.show.feature_maps and self.probes is not None:
            maps = layer_outputs(pl_module.network, self.probes, convolutions)
            for name, output in maps.items():
                writer.add_image(f"visuals/feature_maps/{name}", maps_grid(output), step)
        # A network without convolutions (mlp) has no filters. (Asking for its first one raised
        # StopIteration, which Lightning's loop took for the end of the data: it skipped the
        # classifier's end of validation.)
        if self.show.filters and convolutions:
            name, first = next(iter(convolutions.items()))
            writer.add_image(f"visuals/filters/{name}", filters_grid(first.weight), step)

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer
    ) -> None:
        """Histograms of the weights and their gradients at each epoch's first step."""
        if not self.show.histograms or self.histograms_epoch == trainer.current_epoch:
            return
        self.histograms_epoch = trainer.current_epoch
        if not trainer.is_global_zero:
            return
        writer, step = self.tensorboard.experiment, trainer.global_step
        for name, parameter in pl_module.network.named_parameters():
            writer.add_histogram(f"weights/{name}", parameter, step)
            if parameter.grad is not None:
                writer.add_histogram(f"gradients/{name}", parameter.grad, step)


def tensorboard_of(trainer: L.Trainer) -> TensorBoardLogger | None:
    """The run's TensorBoard logger, one among its loggers; None without one."""
    return next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)


def finite(network: nn.Module) -> bool:
    return all(bool(torch.isfinite(weight).all()) for weight in network.parameters())


def modules_of_type(network: nn.Module, kind: type[nn.Module]) -> dict[str, nn.Module]:
    return {name: module for name, module in network.named_modules() if isinstance(module, kind)}


def layer_outputs(
    network: nn.Module, images: Tensor, layers: dict[str, nn.Module]
) -> dict[str, Tensor]:
    """What each of these layers outputs for the images."""
    with outputs_of(layers) as outputs, torch.no_grad():
        network(images)
    return outputs
