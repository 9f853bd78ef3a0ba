"""Decoding images correctly: modes, transparency, orientation, damage, bombs, resizing."""

from __future__ import annotations

import io
import os
import time
import warnings

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from tests.helpers.imagegen import (
    corrupt_file,
    image_bytes,
    make_animated_gif,
    make_cmyk_jpeg,
    make_exif_jpeg,
    make_gradient16_png,
    make_image,
    make_palette_png,
    make_png_bomb,
    truncate_file,
    write_bytes,
)
from tlcore.datasets._imageio import (
    IMAGE_EXTENSIONS,
    MAX_IMAGE_PIXELS,
    ImageHeader,
    load_rgb,
    read_header,
    resize_to,
    thumbnail,
)
from tlcore.errors import ImageDecodeError

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# ------------------------------------------------------------------ constants
def test_constants():
    assert {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"} == IMAGE_EXTENSIONS
    assert all(e == e.lower() for e in IMAGE_EXTENSIONS)
    assert MAX_IMAGE_PIXELS == 89_478_485
    assert Image.MAX_IMAGE_PIXELS is not None  # Pillow's own guard stays on


# ---------------------------------------------------------------- load_rgb
def test_rgb_jpeg(tmp_path):
    arr = load_rgb(make_image(tmp_path / "a.jpg", size=(40, 30), color=(200, 30, 30)))
    assert arr.shape == (30, 40, 3) and arr.dtype == np.uint8
    assert np.abs(arr.astype(int) - (200, 30, 30)).max() <= 3


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    # Pillow writes CMYK JPEGs Adobe-style (inverted, APP14 marker): the decoder must undo it.
    path = make_cmyk_jpeg(tmp_path / "c.jpg", (0, 255, 255, 0))
    assert read_header(path).mode == "CMYK"
    arr = load_rgb(path)
    assert arr.shape == (16, 16, 3)
    assert np.abs(arr.astype(int) - RED).max() <= 3


def test_16bit_png_is_scaled_not_clipped(tmp_path):
    values = np.linspace(0, 65535, 11).astype(np.uint16)
    path = make_gradient16_png(tmp_path / "g.png", values)
    assert read_header(path).mode.startswith("I;16")
    arr = load_rgb(path)
    expected = (values.astype(np.uint32) * 255 + 32767) // 65535
    np.testing.assert_array_equal(arr[0, :, 0], expected)
    np.testing.assert_array_equal(arr[0, :, 0], arr[0, :, 2])
    assert arr[0, 5, 0] == 127  # 32767 -> mid-grey, where clipping would give 255


def test_int32_image_scaled_from_16bit_range_or_stretched():
    buf = io.BytesIO()
    Image.fromarray(np.array([[0, 32768, 65535]], np.int32), "I").save(buf, "TIFF")
    np.testing.assert_array_equal(load_rgb(buf.getvalue())[0, :, 0], [0, 128, 255])
    buf = io.BytesIO()
    Image.fromarray(np.array([[-5, 0, 5]], np.int32), "I").save(buf, "TIFF")
    np.testing.assert_array_equal(load_rgb(buf.getvalue())[0, :, 0], [0, 128, 255])


def test_float_image_scaled():
    buf = io.BytesIO()
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32), "F").save(buf, "TIFF")
    np.testing.assert_array_equal(load_rgb(buf.getvalue())[0, :, 0], [0, 128, 255])


def test_la_composited_on_background():
    data = image_bytes((2, 2), (0, 128), "LA", "PNG")
    # 0 * 128/255 + 255 * 127/255 = 127 (rounded)
    np.testing.assert_array_equal(load_rgb(data)[0, 0], [127, 127, 127])


def test_rgba_composited_exactly():
    arr = np.zeros((1, 3, 4), np.uint8)
    arr[0, 0] = (255, 0, 0, 0)  # fully transparent red -> background
    arr[0, 1] = (255, 0, 0, 255)  # opaque red
    arr[0, 2] = (0, 0, 255, 128)  # half blue
    buf = io.BytesIO()
    Image.fromarray(arr, "RGBA").save(buf, "PNG")
    out = load_rgb(buf.getvalue())
    np.testing.assert_array_equal(out[0, 0], WHITE)
    np.testing.assert_array_equal(out[0, 1], RED)
    np.testing.assert_array_equal(out[0, 2], [127, 127, 255])
    black = load_rgb(buf.getvalue(), background=(0, 0, 0))
    np.testing.assert_array_equal(black[0, 0], [0, 0, 0])
    np.testing.assert_array_equal(black[0, 2], [0, 0, 128])


def test_palette_png_with_transparency(tmp_path):
    path = make_palette_png(tmp_path / "p.png", size=(8, 8))
    assert read_header(path).mode == "P"
    out = load_rgb(path, background=(10, 20, 30))
    np.testing.assert_array_equal(out[0, 0], [10, 20, 30])  # transparent index -> background, not red
    np.testing.assert_array_equal(out[0, 7], GREEN)


def test_grayscale_with_trns_and_bilevel():
    data = image_bytes((4, 4), 10, "L", "PNG", transparency=10)
    np.testing.assert_array_equal(load_rgb(data, background=GREEN)[0, 0], GREEN)
    np.testing.assert_array_equal(load_rgb(image_bytes((4, 4), 77, "L", "PNG"))[0, 0], [77, 77, 77])
    np.testing.assert_array_equal(load_rgb(image_bytes((4, 4), 1, "1", "PNG"))[0, 0], WHITE)


def test_animated_gif_first_frame(tmp_path):
    path = make_animated_gif(tmp_path / "a.gif", [RED, BLUE])
    assert read_header(path).n_frames == 2
    np.testing.assert_array_equal(load_rgb(path)[0, 0], RED)


@pytest.mark.parametrize(
    ("orientation", "shape", "red_corner"),
    [(1, (20, 40, 3), (0, 0)), (6, (40, 20, 3), (0, -1)), (8, (40, 20, 3), (-1, 0)), (3, (20, 40, 3), (-1, -1))],
)
def test_exif_orientation_applied(tmp_path, orientation, shape, red_corner):
    path = make_exif_jpeg(tmp_path / "e.jpg", orientation, size=(40, 20))  # red top-left quarter
    arr = load_rgb(path)
    assert arr.shape == shape
    assert np.abs(arr[red_corner].astype(int) - RED).max() <= 3


def test_invalid_exif_orientation_is_ignored(tmp_path):
    assert load_rgb(make_exif_jpeg(tmp_path / "e.jpg", 42, size=(40, 20))).shape == (20, 40, 3)


@pytest.mark.parametrize(("fmt", "ext", "kwargs"), [("WEBP", ".webp", {"lossless": True}), ("BMP", ".bmp", {}),
                                                    ("TIFF", ".tif", {}), ("PNG", ".png", {})])
def test_lossless_formats_exact(tmp_path, fmt, ext, kwargs):
    path = make_image(tmp_path / f"x{ext}", size=(5, 4), color=(10, 20, 30), fmt=fmt, **kwargs)
    arr = load_rgb(path)
    assert arr.shape == (4, 5, 3)
    np.testing.assert_array_equal(arr[2, 3], (10, 20, 30))


def test_uppercase_extension_non_ascii_and_spaces(tmp_path):
    p1 = make_image(tmp_path / "PHOTO.JPG", fmt="JPEG")
    p2 = make_image(tmp_path / "chat été 猫 1.png", color=(1, 2, 3))
    assert load_rgb(p1).shape == (32, 32, 3)
    np.testing.assert_array_equal(load_rgb(str(p2))[0, 0], (1, 2, 3))
    assert read_header(p2).format == "PNG"


def test_accepts_bytes_and_memoryview(tmp_path):
    data = image_bytes((3, 2), (9, 8, 7))
    np.testing.assert_array_equal(load_rgb(data)[1, 2], (9, 8, 7))
    np.testing.assert_array_equal(load_rgb(memoryview(data))[0, 0], (9, 8, 7))


# ------------------------------------------------------------------ refusals
def _refused(source, *words: str) -> ImageDecodeError:
    with pytest.raises(ImageDecodeError) as info:
        load_rgb(source)
    message = str(info.value).lower()
    for w in words:
        assert w in message, message
    assert info.value.fix  # every refusal says what to do
    return info.value


def test_zero_byte_file(tmp_path):
    err = _refused(write_bytes(tmp_path / "z.jpg", b""), "empty")
    assert "z.jpg" in str(err)


def test_text_with_image_extension(tmp_path):
    _refused(write_bytes(tmp_path / "t.jpg", b"hello, I am a text file\n"), "not an image", "text")


def test_html_page_saved_as_jpg(tmp_path):
    _refused(write_bytes(tmp_path / "h.jpg", b"<!DOCTYPE html><html>404</html>"), "not an image", "html")


def test_other_pillow_format_is_refused():
    # ICO is a format Pillow reads, but not one we accept: it must not be handed to that plugin.
    _refused(image_bytes((16, 16), RED, "RGB", "ICO"), "not an image")


def test_truncated_jpeg_and_png(tmp_path):
    jpg = truncate_file(make_image(tmp_path / "a.jpg", size=(64, 64), seed=1), 0.6)
    png = truncate_file(make_image(tmp_path / "a.png", size=(64, 64), seed=1), 0.6)
    _refused(jpg, "truncated")
    _refused(png, "truncated")


def test_jpeg_missing_only_its_end_marker(tmp_path):
    _refused(truncate_file(make_image(tmp_path / "a.jpg", size=(64, 64), seed=1), -2), "truncated")


def test_corrupt_bytes_in_the_middle(tmp_path):
    _refused(corrupt_file(make_image(tmp_path / "c.png", size=(64, 64), seed=2)), "damaged")


def test_corrupt_header(tmp_path):
    data = bytearray(image_bytes((32, 32), RED, "RGB", "PNG"))
    data[12:30] = b"\x00" * 18  # wipe IHDR
    _refused(bytes(data), "damaged")


def test_decompression_bomb_refused_without_decoding(tmp_path, monkeypatch):
    def no_load(self, *a, **k):  # any pixel decoding would call load()
        raise AssertionError("a decompression bomb was decoded")

    monkeypatch.setattr(Image.Image, "load", no_load)
    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", no_load)
    huge = make_png_bomb(tmp_path / "huge.png", 100_000, 100_000)  # Pillow refuses this one itself
    big = make_png_bomb(tmp_path / "big.png", 10_000, 10_000)  # above our limit, below Pillow's error level
    for path in (huge, big):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            err = _refused(path, "decompression bomb")
        assert time.perf_counter() - t0 < 1.0
    assert "10000x10000" in str(err)


def test_decompression_bomb_when_pillow_warning_is_an_error(tmp_path):
    big = make_png_bomb(tmp_path / "big.png", 10_000, 10_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        _refused(big, "decompression bomb")
        with pytest.raises(ImageDecodeError, match="decompression bomb"):
            read_header(big)


def test_missing_file_and_folder(tmp_path):
    _refused(tmp_path / "nope.jpg", "does not exist")
    _refused(tmp_path, "folder")


def test_unreadable_file(tmp_path, monkeypatch):
    path = make_image(tmp_path / "a.png")
    real_open = open

    def deny(file, *args, **kwargs):
        if os.fspath(file) == str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", deny)
    _refused(path, "cannot be read", "permission denied")


def test_bad_background():
    with pytest.raises(ValueError, match="background"):
        load_rgb(image_bytes(), background=(1, 2))


def test_no_file_handles_left_open(tmp_path):
    good = make_image(tmp_path / "g.jpg", seed=1)
    bad = truncate_file(make_image(tmp_path / "b.jpg", seed=1), 0.5)
    text = write_bytes(tmp_path / "t.png", b"text")
    load_rgb(good), read_header(good), thumbnail(good)  # warm up lazy imports
    before = _open_fds()
    for _ in range(20):
        load_rgb(good)
        read_header(good)
        thumbnail(good, 16)
        for p in (bad, text):
            with pytest.raises(ImageDecodeError):
                load_rgb(p)
        with pytest.raises(ImageDecodeError):
            read_header(text)
    assert _open_fds() == before


def test_probe_never_raises_on_damaged_files():
    """Fuzz: random byte damage in every supported format gives a verdict, never an exception."""
    from tlcore.datasets._imageio import _probe_bytes

    rng = np.random.default_rng(0)
    samples = [image_bytes((24, 16), seed=1, fmt=fmt) for fmt in ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP")]
    samples.append(image_bytes((24, 16), seed=1, fmt="GIF", save_all=True,
                               append_images=[Image.new("RGB", (24, 16), BLUE)]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for data in samples:
            for _ in range(60):
                damaged = bytearray(data)
                for pos in rng.integers(0, len(damaged), int(rng.integers(1, 8))):
                    damaged[pos] = int(rng.integers(0, 256))
                cut = int(rng.integers(1, len(damaged) + 1))
                probe = _probe_bytes(bytes(damaged[:cut] if rng.random() < 0.3 else damaged))
                assert probe.kind in (None, "corrupt", "truncated", "not_an_image", "decompression_bomb")


# -------------------------------------------------------------- read_header
def test_read_header_does_not_decode(tmp_path, monkeypatch):
    path = make_image(tmp_path / "a.jpg", size=(70, 50), seed=1)

    def no_load(self, *a, **k):
        raise AssertionError("read_header decoded pixels")

    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", no_load)
    assert read_header(path) == ImageHeader(width=70, height=50, mode="RGB", format="JPEG", n_frames=1)


def test_read_header_refuses_non_images(tmp_path):
    with pytest.raises(ImageDecodeError, match="empty"):
        read_header(write_bytes(tmp_path / "z.png", b""))
    with pytest.raises(ImageDecodeError, match="not an image"):
        read_header(write_bytes(tmp_path / "t.png", b"just text"))
    with pytest.raises(ImageDecodeError, match="does not exist"):
        read_header(tmp_path / "missing.png")


# ---------------------------------------------------------------- resize_to
def test_resize_pad_letterboxes_and_centres():
    arr = np.full((50, 100, 3), 200, np.uint8)
    out = resize_to(arr, 20, mode="pad", pad_value=7)
    assert out.shape == (20, 20, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:5], 7)  # top band
    np.testing.assert_array_equal(out[15:], 7)  # bottom band
    np.testing.assert_array_equal(out[5:15], 200)  # the image, full width


def test_resize_pad_value_per_channel_and_portrait():
    out = resize_to(np.full((100, 50, 3), 9, np.uint8), 10, pad_value=(1, 2, 3))
    np.testing.assert_array_equal(out[0, 0], (1, 2, 3))
    np.testing.assert_array_equal(out[5, 5], (9, 9, 9))


def test_resize_crop_takes_the_centre():
    arr = np.zeros((40, 120, 3), np.uint8)
    arr[:, 40:80] = 255  # the centre square is white
    out = resize_to(arr, 20, mode="crop")
    assert out.shape == (20, 20, 3)
    assert out[:, 1:-1].min() == 255  # (the outermost columns blend with the dark sides)


def test_resize_stretch_and_grayscale():
    arr = np.zeros((10, 40), np.uint8)
    out = resize_to(arr, 16, mode="stretch")
    assert out.shape == (16, 16)
    assert resize_to(np.zeros((10, 40, 1), np.uint8), 8).shape == (8, 8, 1)


def test_resize_downscale_is_antialiased():
    checker = (np.indices((64, 64)).sum(axis=0) % 2 * 255).astype(np.uint8)
    out = resize_to(checker, 8, mode="stretch")
    assert 100 < out.mean() < 155 and out.std() < 10  # an average, not a sample of one colour


def test_resize_rejects_bad_arguments():
    arr = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(ValueError, match="mode"):
        resize_to(arr, 8, mode="squash")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="size"):
        resize_to(arr, 0)
    with pytest.raises(ValueError, match="uint8"):
        resize_to(arr.astype(np.float32), 8)
    with pytest.raises(ValueError, match="pad_value"):
        resize_to(arr, 8, pad_value=(1, 2))


# ---------------------------------------------------------------- thumbnail
def test_thumbnail_keeps_aspect_and_uses_draft_for_jpeg(tmp_path, monkeypatch):
    path = make_image(tmp_path / "big.jpg", size=(2000, 1000), seed=3)
    calls = []
    real_draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        result = real_draft(self, mode, size)
        calls.append(result)
        return result

    monkeypatch.setattr("PIL.JpegImagePlugin.JpegImageFile.draft", spy)
    thumb = thumbnail(path, 128)
    assert thumb.shape == (64, 128, 3) and thumb.dtype == np.uint8
    assert calls and calls[0] is not None  # libjpeg decoded at a reduced scale


def test_a_boxed_thumbnail_is_square_with_the_image_centred(tmp_path):
    """A 4 x 3,000 px image: unboxed it is a 1-px-wide sliver that a grid scaled to one width draws
    tens of thousands of pixels tall; boxed it is 128 x 128, the sliver centred on transparent bars
    (the page's background shows through, light or dark)."""
    Image.fromarray(np.full((3000, 4, 3), (200, 0, 0), np.uint8)).save(tmp_path / "sliver.png")
    assert thumbnail(tmp_path / "sliver.png", 128).shape == (128, 1, 3)
    boxed = thumbnail(tmp_path / "sliver.png", 128, box=True)
    assert boxed.shape == (128, 128, 4) and boxed.dtype == np.uint8
    assert tuple(boxed[64, 63]) == (200, 0, 0, 255) and boxed[64, 0, 3] == boxed[64, 127, 3] == 0
    wide = thumbnail(make_image(tmp_path / "w.png", size=(40, 10)), 32, box=True)
    assert wide.shape == (32, 32, 4) and wide[0, 16, 3] == 0 and wide[16, 16, 3] == 255
    square = make_image(tmp_path / "sq.png", size=(20, 20))
    boxed_square = thumbnail(square, 32, box=True)
    assert np.array_equal(boxed_square[..., :3], thumbnail(square, 32)) and (boxed_square[..., 3] == 255).all()


def test_thumbnail_small_portrait_and_orientation(tmp_path):
    assert thumbnail(make_image(tmp_path / "s.png", size=(10, 20)), 64).shape == (64, 32, 3)
    assert thumbnail(make_exif_jpeg(tmp_path / "e.jpg", 6, size=(40, 20)), 20).shape == (20, 10, 3)
    cmyk = thumbnail(make_cmyk_jpeg(tmp_path / "c.jpg", (0, 255, 255, 0), size=(400, 200)), 50)
    assert cmyk.shape == (25, 50, 3)
    assert np.abs(cmyk[10, 10].astype(int) - RED).max() <= 3
