"""Your own digit: a drawing or a photo turned into an input the digit models were trained on.

`to_mnist` makes a 28x28 image the way MNIST's digits were made (LeCun et al.): white ink on
black, the ink's bounding box scaled (antialiased, aspect kept) so its larger side is 20 px,
then pasted into 28x28 with its centre of mass on pixel (14, 14). Measured on the real MNIST
test set: the mass centres sit at (14.0, 14.0) with a standard deviation of 0.29 px, the spread
of whole-pixel shifts, so the shift here is whole pixels too. `prepare` normalizes that for a
data set (and frames it 8x8 for scikit-learn's digits); `load_upload` opens an uploaded PNG or
JPEG safely. Nothing here mutates its inputs.
"""
from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage
from torch import Tensor

from core.data import Dataset

MNIST_SIZE = 28
DIGIT_BOX = 20           # MNIST: the larger side of the ink box, in pixels
MASS_CENTRE = 14         # MNIST: row and column of the centre of mass (0-based)
MIN_CONTRAST = 0.15      # brightest ink minus background, below which an image counts as blank
INK_FLOOR = 0.2          # share of the ink's contrast under which a pixel is background (paper, JPEG noise)
WORK_SIDE = 1024         # larger inputs are shrunk first: a digit needs no more to become 20 px
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_UPLOAD_PIXELS = 50_000_000
UPLOAD_FORMATS = ("PNG", "JPEG")
EMPTY_MESSAGE = "the image is empty: draw a digit"


# ---------------------------------------------------------------- uploads
def load_upload(data: bytes, max_bytes: int = MAX_UPLOAD_BYTES, max_pixels: int = MAX_UPLOAD_PIXELS) -> Image.Image:
    """Open uploaded bytes as a decoded PIL image, refusing anything but a sound, reasonably sized PNG or JPEG.

    Format and size in pixels are read from the header and checked before anything is decoded
    (decompression bombs). JPEG orientation tags are applied. Raises ValueError with a message
    for the user naming what was wrong.
    """
    if not data:
        raise ValueError("the file is empty")
    if len(data) > max_bytes:
        raise ValueError(f"the file is {_megabytes(len(data))}; the limit is {_megabytes(max_bytes)}")
    kind, (width, height) = _header(data, max_pixels)
    if kind not in UPLOAD_FORMATS:
        raise ValueError(f"{kind or 'this kind of'} images are not supported: upload a PNG or JPEG picture")
    if width * height > max_pixels:
        raise ValueError(f"the image is {width:,}×{height:,} pixels ({width * height / 1e6:,.0f} megapixels); "
                         f"the limit is {max_pixels / 1e6:,.0f} megapixels")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            probe.verify()  # chunk checksums and structure, without decoding
        image = Image.open(io.BytesIO(data))  # verify() leaves its image unusable: reopen
        image.load()  # decode now, so a truncated JPEG fails here and not later in a page
    except (OSError, SyntaxError, EOFError, ValueError) as err:  # Pillow's ways of saying "damaged"
        raise ValueError(f"the {kind} file is damaged or truncated ({err})") from None
    return ImageOps.exif_transpose(image)


def _header(data: bytes, max_pixels: int) -> tuple[str | None, tuple[int, int]]:
    """Format and size from the file's header (Image.open decodes nothing yet)."""
    try:
        with Image.open(io.BytesIO(data)) as probe:
            return probe.format, probe.size
    except UnidentifiedImageError:
        raise ValueError("the file is not an image: upload a PNG or JPEG picture") from None
    except Image.DecompressionBombError:  # Pillow's own limit (179 megapixels), far above ours
        raise ValueError(f"the image has too many pixels (over {2 * Image.MAX_IMAGE_PIXELS / 1e6:,.0f} megapixels, "
                         f"a possible decompression bomb); the limit is {max_pixels / 1e6:,.0f} megapixels") from None
    except (OSError, SyntaxError, EOFError, ValueError) as err:
        raise ValueError(f"the file is damaged: its header cannot be read ({err})") from None


def _megabytes(n: int) -> str:
    return f"{n / 2**20:.1f} MB"


# ---------------------------------------------------------------- the MNIST recipe
def to_mnist(image: np.ndarray | Image.Image, background: float | None = None) -> Tensor:
    """A drawing or photo of one digit as an MNIST image: (1, 28, 28) float32 in [0, 1], white on black.

    image: PIL image of any mode, or an array (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) of uint8
    (0-255), uint16 or floats in [0, 1]; read, never modified. Transparent pixels show
    `background` (grey level in [0, 1]; None picks the colour that contrasts with the visible
    pixels, so white strokes on a transparent canvas land on black). Dark ink on a light
    background is inverted. The brightest pixel comes out 1, as every MNIST digit reaches 255.
    Raises ValueError(EMPTY_MESSAGE) when there is no ink.
    """
    ink = _ink(_gray(image, background))
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    crop = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    digit = _fit(crop, DIGIT_BOX)
    return torch.from_numpy(_paste_by_mass(digit / digit.max()))[None]


def _gray(image: np.ndarray | Image.Image, background: float | None) -> np.ndarray:
    """(H, W) float32 grey levels in [0, 1], transparency composited."""
    arr = _pil_array(_shrunk(image)) if isinstance(image, Image.Image) else np.asarray(image)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (3, 4))):
        raise ValueError(f"expected a grey, RGB or RGBA image (H, W[, C]), got shape {arr.shape}")
    values = _unit(arr)
    if values.ndim == 2:
        return values
    grey = values[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601 luma, as PIL's "L"
    if values.shape[-1] == 3:
        return grey
    alpha = values[..., 3]
    if background is None:
        seen = alpha.sum()
        background = 0.0 if seen == 0 or (alpha * grey).sum() / seen > 0.5 else 1.0
    return alpha * grey + (1 - alpha) * background


def _pil_array(image: Image.Image) -> np.ndarray:
    """A PIL image of any mode as an array that `_unit` reads: (H, W) grey or (H, W, 4) RGBA."""
    if image.mode == "F":
        return np.asarray(image, dtype=np.float32)
    if image.mode.startswith("I"):  # 16- and 32-bit greys (16-bit PNGs): keep their depth
        values = np.asarray(image, dtype=np.float32)
        return values / (65535.0 if values.max() > 255 else 255.0)
    alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    return np.asarray(image.convert("RGBA" if alpha else "L"))


def _shrunk(image: Image.Image) -> Image.Image:
    """A big photo reduced so its larger side is WORK_SIDE (a new image; small ones are returned as they are)."""
    scale = WORK_SIDE / max(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    if image.mode.startswith("I;16"):
        image = image.convert("I")
    elif image.mode not in ("L", "LA", "RGB", "RGBA", "I", "F"):
        image = image.convert("RGBA" if "transparency" in image.info or "A" in image.mode else "RGB")
    return image.resize(size, Image.Resampling.BILINEAR)  # antialiased when reducing; premultiplies alpha


def _unit(arr: np.ndarray) -> np.ndarray:
    """Pixel values as float32 in [0, 1]: uint8 /255, uint16 /65535, floats above 1 taken as 0-255."""
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535
    values = arr.astype(np.float32)
    return values / 255 if values.size and values.max() > 1 else values


def _ink(grey: np.ndarray) -> np.ndarray:
    """White-on-black ink in [0, 1] (a new array): inverted when the border is light, background at 0."""
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    back = float(np.median(border))
    if back > 0.5:  # MNIST is white on black; paper is the other way round
        grey, back = 1 - grey, 1 - back
    peak = float(grey.max())
    if peak - back < MIN_CONTRAST:
        raise ValueError(EMPTY_MESSAGE)
    ink = np.clip((grey - back) / (peak - back), 0, 1)
    ink[ink < INK_FLOOR] = 0
    return ink


def _fit(crop: np.ndarray, side: int) -> np.ndarray:
    """Scale (antialiased, aspect kept) so the larger side is `side` px; a new float32 array."""
    h, w = crop.shape
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    # BILINEAR, not LANCZOS: no ringing, so the result stays in [0, 1]; Pillow widens the
    # filter when reducing, which makes it a proper antialiasing filter.
    resized = Image.fromarray(crop.astype(np.float32)).resize(size, Image.Resampling.BILINEAR)
    return np.clip(np.asarray(resized, dtype=np.float32), 0, 1)


def _paste_by_mass(digit: np.ndarray) -> np.ndarray:
    """A 28x28 canvas with `digit` placed, by a whole-pixel shift, so its centre of mass is (14, 14).

    The shift is clamped so no ink leaves the frame (only a lopsided digit is affected).
    """
    h, w = digit.shape
    row, col = ndimage.center_of_mass(digit)
    top = int(np.clip(round(MASS_CENTRE - row), 0, MNIST_SIZE - h))
    left = int(np.clip(round(MASS_CENTRE - col), 0, MNIST_SIZE - w))
    out = np.zeros((MNIST_SIZE, MNIST_SIZE), np.float32)
    out[top:top + h, left:left + w] = digit
    return out


# ---------------------------------------------------------------- into a data set's format
def prepare(image: np.ndarray | Image.Image, dataset: Dataset, background: float | None = None) -> Tensor:
    """A model-ready batch of one: (1, C, H, W) float32, normalized with the data set's mean and std.

    28x28 data sets get `to_mnist`'s image. scikit-learn's 8x8 digits were made differently
    (32x32 bitmaps filled by the digit, counted in 4x4 blocks), so the ink box is fitted to the
    whole 8x8 frame: a plain 28->8 downsample leaves a 6-px digit that models trained there misread.
    Colour data sets raise ValueError: own input is for the digit data sets.
    """
    reason = unsupported(dataset)
    if reason:
        raise ValueError(reason)
    height, width = dataset.input_shape[1:]
    x = to_mnist(image, background)[0].numpy()
    if (height, width) != (MNIST_SIZE, MNIST_SIZE):
        x = _frame(x, height, width)
    mean, std = dataset.mean[0], dataset.std[0]
    return ((torch.from_numpy(np.ascontiguousarray(x)) - mean) / std)[None, None].float()


def _frame(mnist: np.ndarray, height: int, width: int) -> np.ndarray:
    """The ink of a 28x28 image fitted (aspect kept) and centred in a height x width frame, peak 1."""
    rows, cols = np.flatnonzero(mnist.any(axis=1)), np.flatnonzero(mnist.any(axis=0))
    # Fit at 4x the target size, then average 4x4 blocks: how the 8x8 digits were counted.
    big = _fit(mnist[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1], 4 * min(height, width))
    canvas = np.zeros((4 * height, 4 * width), np.float32)
    top, left = (canvas.shape[0] - big.shape[0]) // 2, (canvas.shape[1] - big.shape[1]) // 2
    canvas[top:top + big.shape[0], left:left + big.shape[1]] = big
    small = canvas.reshape(height, 4, width, 4).mean(axis=(1, 3))
    return small / small.max()


def unsupported(dataset: Dataset) -> str | None:
    """Why own input does not suit `dataset` (colour images), or None when it does."""
    if dataset.input_shape[0] != 1:
        return f"{dataset.name} has colour images: your own input works with the digit data sets"
    return None


def display_pixels(x: Tensor, dataset: Dataset, scale: int = 8) -> np.ndarray:
    """A prepared input (1, C, H, W) or (C, H, W) as uint8 grey pixels (H*scale, W*scale), each pixel a crisp block.

    Browsers smooth a small image when they enlarge it; repeating pixels keeps the model's view visible.
    """
    pixels = dataset.denormalize(x.reshape(-1, *x.shape[-3:])[0])[0].numpy()
    return np.kron(np.rint(pixels * 255).astype(np.uint8), np.ones((scale, scale), np.uint8))
