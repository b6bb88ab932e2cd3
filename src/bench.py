"""Benchmark: the seed notes' plain PyTorch loop against the project's own training path.

    python -m src.bench                      # A B C, alternating, 3 repeats, 55,000 images each
    python -m src.bench --end-to-end         # whole processes: src.train vs the plain script
    python -m src.bench plain                # the plain loop alone, one epoch + test, as a script
    python -m src.bench profile              # where the project's training time goes, by operator

(A) the seed loop as written: torchvision MNIST, ToTensor + Normalize per image, DataLoader.
(B) `src.train.train`: fit (with its validation) and test, fp32.
(C) the same with trainer.precision=bf16-mixed.
B and C are timed over their whole fit (sanity check and validation included), A over its
training loop alone, so the ratios understate the project's lead rather than flatter it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import torch
import torch.nn.functional as F

from src.core.classifier import build_network
from src.core.config import compose_config

OUTPUT_DIR = Path("outputs/bench")
BENCH_RUN = OUTPUT_DIR / "last_train_run"  # the end-to-end training run, made anew each repeat
MNIST_TRAIN_IMAGES = 60_000


@dataclass
class Measurement:
    variant: str
    images: int
    seconds: float
    images_per_second: float
    test_acc: float


def data_dir() -> str:
    return os.environ.get("DATA_DIR", "data")


def plain_loop(model: str, batch_size: int, images: int, device: str, seed: int = 0) -> Measurement:
    """The seed notes' loop: per-image transforms, a DataLoader, Adam, cross-entropy."""
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    torch.manual_seed(seed)
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    train_set = datasets.MNIST(data_dir(), train=True, transform=transform)
    test_set = datasets.MNIST(data_dir(), train=False, transform=transform)
    train_loader = DataLoader(Subset(train_set, range(images)), batch_size=batch_size, shuffle=True)
    net = build_network(compose_config([f"model={model}"]).model, (1, 28, 28), 10).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.001)

    start = time.perf_counter()
    net.train()
    running_loss = 0.0
    for inputs, labels in train_loader:
        inputs, labels = inputs.to(device), labels.to(device)
        optimizer.zero_grad()
        loss = F.cross_entropy(net(inputs), labels)
        loss.backward()
        optimizer.step()
        running_loss += loss.item()
    seconds = time.perf_counter() - start
    print(f"plain loop: average training loss {running_loss / len(train_loader):.4f}")

    net.eval()
    correct = 0
    with torch.no_grad():
        for inputs, labels in DataLoader(test_set, batch_size=1000):
            correct += (net(inputs.to(device)).argmax(1) == labels.to(device)).sum().item()
    return Measurement("A plain loop", images, seconds, images / seconds, correct / len(test_set))


def project(
    model: str, batch_size: int, images: int, device: str, precision: str, extra: list[str]
) -> Measurement:
    """The project's own path, `src.train.train`, on the first `images` of its training split."""
    from src.train import train

    overrides = [
        f"model={model}",
        "optimizer=adam",
        f"data.batch_size={batch_size}",
        f"data.data_dir={data_dir()}",
        f"trainer.limit_train_batches={math.ceil(images / batch_size)}",
        f"trainer.precision={precision}",
        f"trainer.accelerator={device if device == 'cpu' else 'gpu'}",
        "trainer.max_epochs=1",
        "logger=none",
        "callbacks.progress_bar_refresh=0",
        *extra,
    ]
    cfg = compose_config(overrides)
    with tempfile.TemporaryDirectory() as run_dir:
        metrics = train(cfg, Path(run_dir))
    seconds = metrics["fit_seconds"]
    variant = "B project fp32" if precision == "32" else f"C project {precision}"
    return Measurement(variant, images, seconds, images / seconds, metrics["test/acc"])


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def compare(args: argparse.Namespace) -> dict:
    """A, B, C alternating in each repeat, so slow spells of a noisy machine hit all three."""
    rounds = []
    for repeat in range(args.repeats):
        a = plain_loop(args.model, args.batch_size, args.images, args.device, seed=repeat)
        b, c = (
            project(args.model, args.batch_size, args.images, args.device, precision, args.override)
            for precision in ("32", "bf16-mixed")
        )
        rounds.append([a, b, c])
        print_round(repeat, rounds[-1])
    ratio = {
        name: spread([r[i].images_per_second / r[0].images_per_second for r in rounds])
        for i, name in ((1, "B/A"), (2, "C/A"))
    }
    return {"rounds": [[asdict(m) for m in r] for r in rounds], "ratios": ratio}


def print_round(repeat: int, measurements: list[Measurement]) -> None:
    for m in measurements:
        print(
            f"repeat {repeat}: {m.variant:<24} {m.seconds:7.1f} s {m.images_per_second:8,.0f} "
            f"images/s  test acc {m.test_acc:.2%}",
            flush=True,
        )


# Operator name prefixes (forward and backward) by what they compute, for the profile's summary.
# The optimizer step's own range (not its operators) is the Python that runs inside it: Lightning
# calls the training step from within optimizer.step, so that is training_step's code and
# Lightning's around it.
OPERATOR_KINDS = {
    "convolutions": ("aten::convolution", "aten::_convolution", "aten::mkldnn_convolution"),
    "linear layers": ("aten::addmm", "aten::mm"),
    "max pooling": ("aten::max_pool2d",),
    "Python in the step (training_step, Lightning)": ("Optimizer.step",),
}
# The ranges that mark each profiled step begin and end inside an optimizer step, so the profiler
# cannot nest operators in them: their self time is the whole step, counted again. Left out.
STEP_MARKER = "ProfilerStep"
PROFILE_WARMUP_STEPS = 5
PROFILE_MAX_STEPS = 200  # enough for stable shares; a longer trace only costs memory


def profile(args: argparse.Namespace) -> dict:
    """Training steps of the project's fp32 run under torch.profiler: the operators that take the
    most time, and the shares of convolutions, linear layers, pooling and Python. Only whole
    training steps are recorded (from one optimizer step to the next), not validation or testing.
    """
    from torch.autograd.profiler_util import EventList
    from torch.optim.optimizer import register_optimizer_step_post_hook
    from torch.profiler import ProfilerActivity, schedule
    from torch.profiler import profile as torch_profile

    steps = min(
        math.ceil(args.images / args.batch_size) - PROFILE_WARMUP_STEPS - 1, PROFILE_MAX_STEPS
    )
    if steps < 1:
        sys.exit(f"error: profile needs more than {PROFILE_WARMUP_STEPS + 1} batches of --images")
    recording = schedule(wait=0, warmup=PROFILE_WARMUP_STEPS, active=steps, repeat=1)
    with torch_profile(activities=[ProfilerActivity.CPU], schedule=recording) as profiler:
        hook = register_optimizer_step_post_hook(lambda *_: profiler.step())
        try:
            measurement = project(
                args.model, args.batch_size, args.images, args.device, "32", args.override
            )
        finally:
            hook.remove()
    events = EventList(e for e in profiler.key_averages() if not e.key.startswith(STEP_MARKER))
    print(events.table(sort_by="self_cpu_time_total", row_limit=15))
    total = sum(event.self_cpu_time_total for event in events)
    shares = {
        kind: sum(e.self_cpu_time_total for e in events if e.key.startswith(prefixes)) / total
        for kind, prefixes in OPERATOR_KINDS.items()
    }
    shares["everything else"] = 1 - sum(shares.values())
    return {
        "measurement": asdict(measurement),
        "profiled_steps": steps,
        "self_cpu_time_shares": shares,
    }


def end_to_end(args: argparse.Namespace) -> dict:
    """Whole processes, start-up included: one epoch of src.train against the plain script."""
    commands = {
        "project": [
            sys.executable,
            "-m",
            "src.train",
            f"model={args.model}",
            "optimizer=adam",
            "trainer.max_epochs=1",
            "callbacks.progress_bar_refresh=0",
            f"hydra.run.dir={BENCH_RUN}",
        ],
        "plain": [
            sys.executable,
            "-m",
            "src.bench",
            "plain",
            "--model",
            args.model,
            "--images",
            str(MNIST_TRAIN_IMAGES),
        ],
    }
    seconds: dict[str, list[float]] = {name: [] for name in commands}
    for repeat in range(args.repeats):
        for name, command in commands.items():
            shutil.rmtree(BENCH_RUN, ignore_errors=True)  # src.train writes into no earlier run
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            seconds[name].append(time.perf_counter() - start)
            print(f"repeat {repeat}: {name:<8} {seconds[name][-1]:6.1f} s", flush=True)
    ratios = [p / q for p, q in zip(seconds["project"], seconds["plain"], strict=True)]
    return {"seconds": seconds, "project/plain": spread(ratios)}


def write_report(kind: str, report: dict, args: argparse.Namespace) -> Path:
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUTPUT_DIR / f"{kind}-{datetime.now():%Y-%m-%d-%H-%M-%S}.json"
    environment = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": cpu_name(),
        "date": datetime.now().isoformat(timespec="seconds"),
    }
    path.write_text(
        json.dumps({"settings": vars(args), "environment": environment, **report}, indent=2) + "\n"
    )
    return path


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return f"{names[0]} x{len(names)}" if names else "unknown"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "mode", nargs="?", choices=["compare", "plain", "profile"], default="compare"
    )
    parser.add_argument("--model", default="convnet32")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--images",
        type=int,
        default=55_000,
        help="training images per variant (at most 59,999 for B and C)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu"
    )
    parser.add_argument("--end-to-end", action="store_true")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra config override for the project's runs (repeatable)",
    )
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda needs a GPU, and this machine shows none: use --device cpu")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.mode == "plain":
        result = plain_loop(args.model, args.batch_size, args.images, args.device)
        print_round(0, [result])
        return asdict(result)
    kind = "end_to_end" if args.end_to_end else args.mode
    report = {"compare": compare, "profile": profile, "end_to_end": end_to_end}[kind](args)
    summary = {
        k: v for k, v in report.items() if k in ("ratios", "project/plain", "self_cpu_time_shares")
    }
    print(json.dumps(summary, indent=2))
    print(f"written to {write_report(kind, report, args)}")
    return report


if __name__ == "__main__":
    main()
