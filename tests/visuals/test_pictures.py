import torch

from src.train import train
from src.visuals.figures import maps_grid
from tests.test_train import event_folder, read_events

EVERY_EPOCH = {
    "val/confusion_matrix",
    "val/misclassified",
    "visuals/feature_maps/conv1",
    "visuals/feature_maps/conv2",
    "visuals/filters/conv1",
}
NO_PICTURES = [
    f"callbacks.pictures.{name}=false"
    for name in ("graph", "layer_table", "samples", "confusion", "misclassified")
    + ("feature_maps", "filters")
]


def test_every_default_picture_reaches_the_event_files(trained_run):
    run_dir, metrics = trained_run
    events = read_events(event_folder(run_dir))
    tags = events.Tags()
    assert set(tags["images"]) == EVERY_EPOCH | {"visuals/train_samples"}
    assert tags["graph"]
    assert tags["histograms"] == []  # off by default
    # one picture per validation epoch (2), none from the sanity check
    for tag in EVERY_EPOCH:
        assert len(events.Images(tag)) == metrics["epochs"] == 2, tag
    assert len(events.Images("visuals/train_samples")) == 1


def test_the_layer_table_lists_every_layer_and_the_parameter_count(trained_run):
    events = read_events(event_folder(trained_run[0]))
    (text,) = events.Tensors("model/layers/text_summary")
    table = text.tensor_proto.string_val[0].decode().splitlines()[2:]  # below the header
    rows = {
        cells[0]: cells[1:]
        for cells in ([c.strip() for c in r.strip("|").split("|")] for r in table)
    }
    assert rows["conv1"] == ["Conv2d", "32 x 28 x 28", "320", f"{32 * 9 * 28 * 28:,}"]
    assert rows["fc2"] == ["Linear", "10", "1,290", "1,280"]
    assert rows["total"][2] == "421,642"  # convnet32


def test_histograms_when_switched_on_and_each_picture_switched_off(tiny_cfg, tmp_path, trained_run):
    overrides = [
        *NO_PICTURES,
        "callbacks.pictures.histograms=true",
        "trainer.limit_train_batches=4",
    ]
    metrics = train(tiny_cfg(*overrides), tmp_path)
    tags = read_events(event_folder(tmp_path)).Tags()
    assert tags["images"] == [] and tags["tensors"] == [] and not tags["graph"]
    assert {"weights/conv1.weight", "gradients/conv1.weight", "gradients/fc2.bias"} <= set(
        tags["histograms"]
    )
    # The pictures leave training alone: the same numbers as the run with the default pictures.
    assert metrics["test/loss"] == trained_run[1]["test/loss"]


def test_a_network_without_convolutions_gets_the_pictures_that_need_none(tiny_cfg, tmp_path):
    metrics = train(tiny_cfg("model=mlp", "trainer.max_epochs=1"), tmp_path)
    assert metrics["val/acc_best"] == metrics["val/correct_best"] / 100  # validation ended
    images = read_events(event_folder(tmp_path)).Tags()["images"]
    assert set(images) == {"val/confusion_matrix", "val/misclassified", "visuals/train_samples"}


def test_small_feature_maps_are_enlarged_to_be_seen_and_large_ones_kept():
    deep = maps_grid(torch.rand(4, 8, 7, 7))  # a row per image, a column per channel
    assert deep.shape[1:] == (4 * (28 + 1) + 1, 8 * (28 + 1) + 1)
    first = maps_grid(torch.rand(4, 8, 28, 28))
    assert first.shape[1:] == (4 * 29 + 1, 8 * 29 + 1)
