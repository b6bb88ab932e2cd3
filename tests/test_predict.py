"""Predictions on a model trained on digits rendered from a font, MNIST-style (white on black,
about 20 pixels tall, centred), so that a photo-like image of a digit is only predicted right
when preprocessing makes it look like them."""

import json
import zlib

import torch
from PIL import Image

from src.data.idx import load_split, raw_folder
from src.data.images import MNIST_SIZE, like_dataset, read_image
from tests.conftest import data_module, photo_of, run_module


def predict(run_dir, *args):
    return run_module("src.predict", f"ckpt_path={run_dir}", *args)


def test_mnist_like_images_are_predicted_as_they_are(font_run, tmp_path):
    run_dir, data_dir = font_run
    images, labels = load_split(raw_folder(data_dir, "MNIST"), "test")
    for i in range(5):
        Image.fromarray(images[i, 0].numpy()).save(tmp_path / f"{i}.png")
    result = predict(run_dir, f"inputs={tmp_path}", "preprocess=false", "json=true")
    assert result.returncode == 0, result.stderr[-3000:]
    predictions = [json.loads(line) for line in result.stdout.splitlines()]
    assert [p["path"] for p in predictions] == [str(tmp_path / f"{i}.png") for i in range(5)]
    assert [p["class"] for p in predictions] == [str(label) for label in labels[:5].tolist()]
    for p in predictions:
        assert 1 >= p["probability"] >= p["runner_up_probability"] >= 0
        assert p["runner_up"] != p["class"]


def test_photos_are_predicted_and_bad_files_named_while_the_others_go_on(font_run, tmp_path):
    run_dir, _ = font_run
    for digit in (3, 7):
        photo_of(digit).save(tmp_path / f"photo{digit}.jpg")
    good = (tmp_path / "photo3.jpg").read_bytes()
    (tmp_path / "corrupt.jpg").write_bytes(good[: len(good) // 3])
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "huge.png").write_bytes(png_header(20_000, 20_000))
    inputs = f"inputs=[{tmp_path}/photo*.jpg,{tmp_path}/corrupt.jpg,{tmp_path}/notes.txt,"
    inputs += f"{tmp_path}/huge.png]"

    result = predict(run_dir, inputs)
    assert result.returncode == 2
    three, seven = result.stdout.splitlines()
    assert three.startswith(f"{tmp_path}/photo3.jpg: 3 (")
    assert seven.startswith(f"{tmp_path}/photo7.jpg: 7 (")
    errors = result.stderr.splitlines()
    assert len(errors) == 3
    assert errors[0].startswith(f"error: {tmp_path}/corrupt.jpg: ")
    assert errors[1] == f"error: {tmp_path}/notes.txt: not an image file " + (
        "(or one in a format Pillow cannot read)"
    )
    assert errors[2].startswith(f"error: {tmp_path}/huge.png: Image size (400000000 pixels)")
    assert errors[2].endswith(": scale it down")


def png_header(width: int, height: int) -> bytes:
    """A PNG file that declares its size and holds no pixels: Pillow checks the size first."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data).to_bytes(4, "big")
        return len(data).to_bytes(4, "big") + kind + data + crc

    size = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", size) + chunk(b"IEND", b"")


def test_without_preprocessing_a_photo_is_refused_and_a_missing_file_named(font_run, tmp_path):
    run_dir, _ = font_run
    photo_of(4).save(tmp_path / "photo.png")
    result = predict(
        run_dir, f"inputs=[{tmp_path}/photo.png,{tmp_path}/gone.png]", "preprocess=false"
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: {tmp_path}/photo.png: 180x240 pixels, not 28x28: preprocess=false takes "
        "MNIST-like images only; leave preprocess on for photos and scans",
        f"error: {tmp_path}/gone.png: no such file, folder or glob match",
    ]


def test_a_photo_is_made_mnist_like(tmp_path):
    photo_of(7).save(tmp_path / "seven.png")
    mnist = data_module()  # MNIST's way: a 20x20 box, centred by the centre of mass
    digit = mnist.like_examples(read_image(tmp_path / "seven.png"))[0].float()
    assert digit.shape == (MNIST_SIZE, MNIST_SIZE)
    rows, columns = (digit > 0).nonzero(as_tuple=True)
    height, width = rows.max() - rows.min() + 1, columns.max() - columns.min() + 1
    assert max(height, width) == 20
    assert digit[0].sum() == digit[:, 0].sum() == 0  # the light paper became black
    assert digit.max() == 255  # the dark ink became white
    middle = (MNIST_SIZE - 1) / 2
    centre_row = (digit.sum(dim=1) * torch.arange(MNIST_SIZE)).sum() / digit.sum()
    centre_column = (digit.sum(dim=0) * torch.arange(MNIST_SIZE)).sum() / digit.sum()
    assert abs(centre_row - middle) <= 0.5 and abs(centre_column - middle) <= 0.5


def test_predict_needs_inputs(font_run):
    result = predict(font_run[0])
    assert result.returncode == 2
    assert result.stderr.startswith("error: inputs is missing: python -m src.predict")


def test_a_photo_of_clothing_is_made_like_fashion_mnist(tmp_path):
    photo_of(7).save(tmp_path / "shirt.png")
    fashion = data_module("data=fashion_mnist")
    assert (fashion.predict_box, fashion.predict_centre) == (28, "box")
    thing = fashion.like_examples(read_image(tmp_path / "shirt.png"))[0].float()
    rows, columns = (thing > 0).nonzero(as_tuple=True)
    height, width = rows.max() - rows.min() + 1, columns.max() - columns.min() + 1
    assert max(height, width) == 28  # fills the image
    # Its bounding box in the middle, not its centre of mass.
    assert abs(int(rows.min()) - (28 - int(rows.max()) - 1)) <= 1
    assert abs(int(columns.min()) - (28 - int(columns.max()) - 1)) <= 1
    assert torch.equal(
        like_dataset(read_image(tmp_path / "shirt.png"), 28, "box"), thing[None].to(torch.uint8)
    )
