"""Export a trained checkpoint, or an ensemble of them, to ONNX, with the normalisation built in.

python -m src.export ckpt_path=outputs/runs/<date>/<time>       # a run folder: its best checkpoint
python -m src.export ckpt_path=outputs/multiruns/<date>/<time>  # a sweep's jobs as one model
python -m src.export ckpt_path=<...> bench=true                 # then time PyTorch and onnxruntime

Writes into outputs/exports/<date>/<time>/ (hydra.run.dir=<folder> elsewhere):
- model.onnx: input `images`, float32 (batch, 1, 28, 28), grey values 0..1 (white ink on black,
  made like the data set's images: src.predict's preparation, src/data/images.py, is not in it);
  output `probabilities`, float32 (batch, classes): an ensemble's is the mean of its members'.
  The exporter's opset (torch.onnx's default), any batch size.
- model.json: the class names, the input's and output's names and shapes, the opset, the members.
Then checks itself: onnxruntime and PyTorch (the network as src.eval runs it) must predict the
same class for each of the first check_images test digits; prints the largest difference of
their probabilities. A network that cannot be exported, or an export that disagrees, is named
with the reason in one line on stderr.
"""

from __future__ import annotations

import json
import logging
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import onnxruntime
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from torch import Tensor, nn

from src.bench import cpu_name
from src.core.config import validate
from src.core.config_errors import exit_on_config_error
from src.core.ensemble import Member, load_members, log_mean_probabilities
from src.core.errors import UsageError, exit_on_usage_error, message_line

INPUT, OUTPUT = "images", "probabilities"
BENCH_BATCH = 256
BENCH_ROUNDS = 5  # PyTorch and onnxruntime take turns, so a neighbour's load hits both alike


class ExportDisagrees(Exception):
    """onnxruntime predicted another class than PyTorch for some test digit."""


@hydra.main(version_base="1.3", config_path="../conf", config_name="export")
@exit_on_usage_error
def main(cfg: DictConfig) -> None:
    try:
        export(cfg, Path(HydraConfig.get().runtime.output_dir))
    except ExportDisagrees as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)


def export(cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    """Write model.onnx and model.json, check them (and time them with bench=true); returns
    model.json's content with the check's result."""
    validate(cfg, "export")
    members = load_members(cfg.ckpt_path, cfg.data)
    out_dir.mkdir(parents=True, exist_ok=True)
    description = write_onnx(members, out_dir)
    session = onnx_session(out_dir / "model.onnx")
    images = test_images(members[0].data, max(cfg.check_images, BENCH_BATCH if cfg.bench else 0))
    check = agreement(members, session, images[: cfg.check_images])
    print(
        f"wrote model.onnx and model.json in {out_dir}; onnxruntime and PyTorch predict the same "
        f"class for all {check.images:,} first test digits (largest difference of probabilities "
        f"{check.largest_difference:.1e})"
    )
    if cfg.bench:
        print(format_bench(bench(ProbabilityModel(members), session, images)))
    return {**description, "check": check.__dict__}


class ProbabilityModel(nn.Module):
    """The members as one network from 0..1 images to probabilities: each normalises as its run
    did, and their probabilities are averaged as src.eval and src.predict average them."""

    def __init__(self, members: list[Member]) -> None:
        super().__init__()
        self.networks = nn.ModuleList(member.model.network for member in members)
        # Plain numbers, so the export writes them into the graph as constants.
        self.normalizations = [(member.data.mean, member.data.std) for member in members]

    def forward(self, images: Tensor) -> Tensor:
        logits = [
            network((images - mean) / std)
            for network, (mean, std) in zip(self.networks, self.normalizations, strict=True)
        ]
        return log_mean_probabilities(logits).exp()


def write_onnx(members: list[Member], out_dir: Path) -> dict[str, Any]:
    """model.onnx (any batch size) and model.json; returns model.json's content. A network the
    exporter refuses is a UsageError that names it and the exporter's reason."""
    model = ProbabilityModel(members).eval()
    # The exporter's optimiser logs every step at INFO, which the commands' logging shows.
    for chatty in ("onnxscript", "onnx_ir"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    example = torch.rand(2, *members[0].data.image_shape)  # 2: a batch of 1 would be fixed
    try:
        program = torch.onnx.export(
            model,
            (example,),
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            dynamo=True,
            verbose=False,
        )
        program.save(str(out_dir / "model.onnx"))
    except Exception as error:  # the exporter's errors have no common class
        networks = ", ".join(sorted({type(network).__name__ for network in model.networks}))
        raise UsageError(
            f"{networks} cannot be exported to ONNX ({message_line(error)}): every network of "
            "conf/model/ can; a network of your own needs operations that torch.onnx exports"
        ) from None
    description = describe(members, opset=program.model_proto.opset_import[0].version)
    (out_dir / "model.json").write_text(json.dumps(description, indent=2) + "\n")
    return description


def describe(members: list[Member], opset: int) -> dict[str, Any]:
    data = members[0].data  # load_members checked that the members share the data set
    return {
        "classes": data.classes,
        "input": {
            "name": INPUT,
            "shape": ["batch", *data.image_shape],
            "dtype": "float32",
            "values": "0..1, white ink on black, made like the data set's images: "
            f"scaled into a {data.predict_box}x{data.predict_box} box, centred by its "
            f"{'centre of mass' if data.predict_centre == 'mass' else 'bounding box'}",
        },
        "output": {"name": OUTPUT, "shape": ["batch", len(data.classes)], "dtype": "float32"},
        "opset": opset,
        "members": [
            {"checkpoint": str(m.checkpoint), "network": type(m.model.network).__name__}
            for m in members
        ],
    }


def onnx_session(path: Path) -> onnxruntime.InferenceSession:
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_images(data: Any, count: int) -> Tensor:
    """The first `count` images of the data set's official test set (uint8), or all of them."""
    data.prepare_data()
    data.setup("test")
    return data.splits["test"][0][:count]


@dataclass(frozen=True)
class Agreement:
    images: int
    largest_difference: float


def agreement(
    members: list[Member], session: onnxruntime.InferenceSession, images: Tensor
) -> Agreement:
    """Compare onnxruntime with the members as src.eval runs them (uint8 images, normalised by
    each member's data module); raise ExportDisagrees where a predicted class differs."""
    reference = log_mean_probabilities([member.logits(images) for member in members]).exp()
    exported = torch.from_numpy(session.run([OUTPUT], {INPUT: as_unit_range(images)})[0])
    differ = (reference.argmax(dim=1) != exported.argmax(dim=1)).nonzero().flatten().tolist()
    largest = float((reference - exported).abs().max())
    if differ:
        raise ExportDisagrees(
            f"model.onnx predicts another class than PyTorch for {len(differ)} of the first "
            f"{len(images):,} test digits (e.g. test digit {differ[0]}; largest difference of "
            f"probabilities {largest:.2g}): do not use it, and file the network with the issue"
        )
    return Agreement(len(images), largest)


def as_unit_range(images: Tensor) -> np.ndarray:
    """uint8 images as model.onnx takes them: float32 values 0..1."""
    return (images.float() / 255).numpy()


def bench(
    model: ProbabilityModel,
    session: onnxruntime.InferenceSession,
    images: Tensor,
    rounds: int = BENCH_ROUNDS,
    calls: int = 200,
) -> dict[str, dict[str, float]]:
    """PyTorch eager (with torch's threads, and with one) and onnxruntime on the same inputs,
    taking turns round by round: the latency of one image (median and 99th percentile of `calls`
    a round, ms) and the images per second of a batch of BENCH_BATCH (the median round's)."""
    one, batch = as_unit_range(images[:1]), as_unit_range(images[:BENCH_BATCH])
    threads = torch.get_num_threads()  # torch's default: one per core
    engines = {
        f"PyTorch eager, {threads} threads": eager(model.eval(), threads),
        "PyTorch eager, 1 thread": eager(model, 1),  # as src.serve runs it
        "onnxruntime": onnx_runner(session),
    }
    latencies: dict[str, list[float]] = {name: [] for name in engines}
    throughputs: dict[str, list[float]] = {name: [] for name in engines}
    try:
        for _ in range(rounds):
            for name, run in engines.items():
                run(one)  # warm: the first call of a round allocates
                latencies[name] += [seconds(run, one) * 1000 for _ in range(calls)]
                throughputs[name].append(
                    len(batch) / statistics.median(seconds(run, batch) for _ in range(5))
                )
    finally:
        torch.set_num_threads(threads)
    return {
        name: {
            "latency_median_ms": statistics.median(latencies[name]),
            "latency_p99_ms": float(np.percentile(latencies[name], 99)),
            "images_per_second": statistics.median(throughputs[name]),
        }
        for name in engines
    }


def eager(model: nn.Module, threads: int) -> Callable[[np.ndarray], Any]:
    def run(images: np.ndarray) -> Tensor:
        torch.set_num_threads(threads)  # the engines take turns: each sets its own
        with torch.inference_mode():
            return model(torch.from_numpy(images))

    return run


def onnx_runner(session: onnxruntime.InferenceSession) -> Callable[[np.ndarray], Any]:
    return lambda images: session.run([OUTPUT], {INPUT: images})


def seconds(run: Callable[[np.ndarray], Any], images: np.ndarray) -> float:
    start = time.perf_counter()
    run(images)
    return time.perf_counter() - start


def format_bench(results: dict[str, dict[str, float]]) -> str:
    """A Markdown table for docs/performance.md, with what the figures depend on."""
    lines = [
        f"{time.strftime('%Y-%m-%d')}, {cpu_name()}, torch {torch.__version__}, "
        f"onnxruntime {onnxruntime.__version__} (its default: a thread per core)",
        "",
        f"| engine | one image, median | one image, p99 | batch {BENCH_BATCH}, images/s |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {r['latency_median_ms']:.2f} ms | {r['latency_p99_ms']:.2f} ms | "
        f"{r['images_per_second']:,.0f} |"
        for name, r in results.items()
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    exit_on_config_error(main)()
