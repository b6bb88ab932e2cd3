from types import SimpleNamespace

import pytest
import torch

from src.core.errors import UsageError
from src.data.augment import augment
from src.data.batches import TensorBatches
from src.data.idx import ensure_files, load_split, raw_folder, read_idx, seeded_split
from tests.conftest import TEST_FILES, data_module, idx_bytes, make_digits, write_mnist


def test_read_idx_reads_what_was_written(tmp_path):
    images, _ = make_digits(5, seed=0)
    (tmp_path / "f").write_bytes(idx_bytes(images))
    assert torch.equal(read_idx(tmp_path / "f"), images)


def test_wrong_magic_number_is_named(tmp_path):
    (tmp_path / "f").write_bytes(b"\x12\x34\x08\x03" + bytes(20))
    with pytest.raises(UsageError, match="wrong magic number"):
        read_idx(tmp_path / "f")


def test_truncated_file_is_named(tmp_path):
    images, _ = make_digits(5, seed=0)
    (tmp_path / "f").write_bytes(idx_bytes(images)[:-100])
    with pytest.raises(UsageError, match="truncated or corrupt"):
        read_idx(tmp_path / "f")


def test_missing_mnist_without_network_says_where_and_how(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr("torchvision.datasets.MNIST.download", no_network)
    with pytest.raises(UsageError) as error:
        ensure_files(tmp_path, "MNIST")
    message = str(error.value)
    assert str(tmp_path / "MNIST" / "raw") in message
    assert "DATA_DIR" in message and "download failed" in message


def test_split_is_seeded_disjoint_and_complete():
    train, val = seeded_split(1000, 100, seed=3)
    assert len(train) == 900 and len(val) == 100
    assert set(train.tolist()).isdisjoint(val.tolist())
    assert set(train.tolist()) | set(val.tolist()) == set(range(1000))
    again, _ = seeded_split(1000, 100, seed=3)
    other, _ = seeded_split(1000, 100, seed=4)
    assert torch.equal(train, again) and not torch.equal(train, other)


def test_test_set_is_the_official_test_file_and_train_val_come_from_the_train_file(tiny_mnist):
    data = data_module(f"data.data_dir={tiny_mnist}", "data.val_size=100")
    data.setup()
    test_images, test_labels = load_split(raw_folder(tiny_mnist, "MNIST"), "test")
    assert torch.equal(data.splits["test"][0], test_images)
    assert torch.equal(data.splits["test"][1], test_labels)
    train_images, _ = load_split(raw_folder(tiny_mnist, "MNIST"), "train")
    rows = {bytes(x.flatten().tolist()) for x in train_images}
    for split in ("train", "val"):
        assert all(bytes(x.flatten().tolist()) in rows for x in data.splits[split][0])
    assert len(data.splits["train"][0]) == 300 and len(data.splits["val"][0]) == 100
    assert TEST_FILES[0].startswith("t10k")


def served_indices(batches: TensorBatches) -> list[int]:
    return [int(i) for x, _ in batches for i in x[:, 0]]


def numbered(count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose first value is their own index, to see which ones a batch holds."""
    images = torch.arange(count).view(count, 1).expand(count, 4).clone()
    return images, torch.zeros(count, dtype=torch.long)


def test_a_pass_left_early_does_not_shorten_the_next_one():
    batches = TensorBatches(*numbered(100), batch_size=10)
    next(iter(batches))  # as Lightning's sanity check does with the validation batches
    assert served_indices(batches) == list(range(100))


def test_each_epoch_serves_every_image_once_in_a_new_order():
    batches = TensorBatches(*numbered(100), batch_size=32, shuffle=True, seed=1)
    first, second = served_indices(batches), served_indices(batches)
    assert sorted(first) == sorted(second) == list(range(100))
    assert first != second
    assert len(batches) == 4


def test_training_shards_are_disjoint_and_equal_and_eval_shards_cover_every_image_once():
    images, labels = numbered(101)
    train = [
        served_indices(TensorBatches(images, labels, 8, True, 0, rank, 2, equal_shards=True))
        for rank in range(2)
    ]
    assert len(train[0]) == len(train[1]) == 50
    assert set(train[0]).isdisjoint(train[1])
    evaluation = [served_indices(TensorBatches(images, labels, 8, False, 0, r, 2)) for r in (0, 1)]
    assert sorted(evaluation[0] + evaluation[1]) == list(range(101))
    assert [len(TensorBatches(images, labels, 8, False, 0, r, 2)) for r in (0, 1)] == [7, 7]


def test_the_data_lives_on_the_strategy_device_and_each_process_takes_its_own_shard(tiny_mnist):
    # "meta" stands in for a GPU: tensors with a device and a shape, but no memory or kernels.
    data = data_module(f"data.data_dir={tiny_mnist}", "data.val_size=100", "data.batch_size=32")
    strategy = SimpleNamespace(root_device=torch.device("meta"))
    data.trainer = SimpleNamespace(
        strategy=strategy, global_rank=1, world_size=2, training=True, overfit_batches=0
    )
    data.setup("fit")
    assert {x.device.type for split in data.splits.values() for x in split} == {"meta"}
    train = data.train_dataloader()
    assert (train.rank, train.world_size, train.equal_shards) == (1, 2, True)
    assert train.shard().device.type == "meta"  # batches are sliced where the data lives
    images, labels = data.on_after_batch_transfer(next(iter(train)), 0)
    assert images.device.type == labels.device.type == "meta"
    assert images.dtype == torch.float32 and images.shape == (32, 1, 28, 28)
    test = data.test_dataloader()
    assert (test.rank, test.world_size, test.equal_shards) == (1, 2, False)


def test_saved_position_resumes_with_the_same_remaining_batches():
    batches = TensorBatches(*numbered(100), batch_size=10, shuffle=True, seed=5)
    served = iter(batches)
    for _ in range(3):
        next(served)
    state = batches.state_dict()
    rest = [int(i) for x, _ in served for i in x[:, 0]]
    resumed = TensorBatches(*numbered(100), batch_size=10, shuffle=True, seed=5)
    resumed.load_state_dict(state)
    assert served_indices(resumed) == rest


@pytest.mark.parametrize(("preset", "low", "high"), [("half", -1, 1), ("none", 0, 1)])
def test_normalisation_presets_map_pixels_to_their_range(preset, low, high):
    data = data_module(f"data.normalize={preset}")
    pixels = torch.tensor([[0, 255]], dtype=torch.uint8)
    images, _ = data.on_after_batch_transfer((pixels, torch.zeros(1)), 0)
    assert images.tolist() == [[low, high]]


@pytest.mark.parametrize(
    ("data_set", "mean", "std"),
    [("mnist", 0.1307, 0.3081), ("fashion_mnist", 0.2860, 0.3530), ("kmnist", 0.1918, 0.3483)],
)
def test_dataset_normalisation_uses_each_data_sets_own_statistics(data_set, mean, std):
    data = data_module(f"data={data_set}", "data.normalize=dataset")
    images, _ = data.on_after_batch_transfer((torch.tensor([0], dtype=torch.uint8), None), 0)
    assert images.item() == pytest.approx(-mean / std, abs=1e-5)


@pytest.mark.parametrize(
    ("data_set", "folder", "first", "last"),
    [
        ("mnist", "MNIST", "0", "9"),
        ("fashion_mnist", "FashionMNIST", "T-shirt/top", "Ankle boot"),
        ("kmnist", "KMNIST", "o", "wo"),
    ],
)
def test_each_data_set_reads_its_own_folder_with_its_class_names(
    data_set, folder, first, last, tmp_path
):
    write_mnist(tmp_path, folder=folder)
    data = data_module(f"data={data_set}", f"data.data_dir={tmp_path}", "data.val_size=100")
    data.prepare_data()  # finds its files: no download
    data.setup()
    assert len(data.splits["test"][1]) == 100 and len(data.splits["train"][1]) == 300
    assert (len(data.classes), data.classes[0], data.classes[-1]) == (10, first, last)


@pytest.mark.parametrize(
    ("data_set", "folder"), [("fashion_mnist", "FashionMNIST"), ("kmnist", "KMNIST")]
)
def test_a_missing_data_set_names_its_own_folder(data_set, folder, tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr("torchvision.datasets.MNIST.download", no_network)
    data = data_module(f"data={data_set}", f"data.data_dir={tmp_path}")
    with pytest.raises(UsageError, match=f"{folder} is not in {tmp_path / folder / 'raw'}"):
        data.prepare_data()


def test_a_folder_that_names_no_torchvision_data_set_is_not_called(tmp_path):
    data = data_module(f"data.data_dir={tmp_path}", "data.folder=system")
    with pytest.raises(UsageError, match="torchvision has no IDX data set named system"):
        data.prepare_data()


def test_augment_moves_pixels_but_keeps_shape_and_a_zero_background():
    images = torch.zeros(8, 1, 28, 28)
    images[:, :, 10:18, 10:18] = 1
    moved = augment(images, 15, 0.1, 0.1, elastic_alpha=0, elastic_sigma=4)
    assert moved.shape == images.shape
    assert not torch.allclose(moved, images)
    assert moved[:, :, 0, 0].abs().max() == 0
    assert torch.allclose(augment(images, 0, 0, 0, 0, 4), images, atol=1e-5)


def test_elastic_distortion_bends_the_digit_locally_and_keeps_the_background():
    # Seeded: otherwise the tests that ran before in the process pick the random fields.
    torch.manual_seed(0)
    images = torch.zeros(8, 1, 28, 28)
    images[:, :, 6:22, 12:16] = 1  # a vertical stroke
    bent = augment(images, 0, 0, 0, elastic_alpha=34, elastic_sigma=4)
    assert bent.shape == images.shape
    assert not torch.allclose(bent, images, atol=0.05)
    assert bent[:, :, 0, 0].abs().max() == 0
    # Moved, not erased. A field stretches or squeezes one stroke's ink by up to a third (by
    # more than a quarter for one seed in four); over the batch that evens out.
    assert bent.sum() == pytest.approx(images.sum(), rel=0.25)
    assert not torch.allclose(bent[0], bent[1])  # each image its own distortion
