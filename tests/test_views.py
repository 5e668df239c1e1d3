"""The fixed views of pixelzoo.views on hand-computed examples."""

import pytest
import torch

from pixelzoo.errors import ConfigError
from pixelzoo.views import downsample2x, gray_to_image, grayscale4, pyramid, quantize, upsample_nearest


def rgb(*pixels):
    """(1, 3, 1, n) image of the given (R, G, B) pixels."""
    return torch.tensor(pixels, dtype=torch.long).T.reshape(1, 3, 1, len(pixels))


def test_quantize_is_floor_of_scaled_value():
    x = torch.tensor([0, 15, 16, 17, 255])
    assert quantize(x, 256, 16).tolist() == [0, 0, 1, 1, 15]
    # 17 levels (digits) to 4: floor(4x / 17)
    assert quantize(torch.arange(17), 17, 4).tolist() == [0] * 5 + [1] * 4 + [2] * 4 + [3] * 4
    assert quantize(torch.arange(5, dtype=torch.uint8), 5, 5).tolist() == [0, 1, 2, 3, 4]


def test_grayscale_bt601_luma_binned_exactly():
    # Y = 0.299 R + 0.587 G + 0.114 B; gray = floor(16 Y / 256) = floor(Y / 16)
    x = rgb((255, 255, 255), (255, 0, 0), (0, 255, 0), (0, 0, 255), (0, 0, 0), (16, 16, 16), (15, 15, 15),
            (100, 50, 200))
    # white 255 -> 15; red 76.245 -> 4; green 149.685 -> 9; blue 29.07 -> 1; black 0;
    # gray 16 -> exactly 1.0 (no float error may push it to 0); 15 -> 0; 29.9 + 29.35 + 22.8 = 82.05 -> 5
    assert grayscale4(x).flatten().tolist() == [15, 4, 9, 1, 0, 1, 0, 5]
    assert grayscale4(x).shape == (1, 1, 1, 8) and grayscale4(x).dtype == torch.long
    # a bin edge hit exactly: Y = 32 (R=G=B=32) is gray 2, Y just below (R=G=32, B=31 -> 31.886) is 1
    assert grayscale4(rgb((32, 32, 32), (32, 32, 31))).flatten().tolist() == [2, 1]


def test_grayscale_of_one_channel_is_the_quantisation():
    x = torch.arange(256).reshape(1, 1, 16, 16)
    assert torch.equal(grayscale4(x), x // 16)
    digits = torch.arange(17).reshape(1, 1, 1, 17)
    assert grayscale4(digits, levels=17, out_levels=4).flatten().tolist() == quantize(torch.arange(17), 17, 4).tolist()
    # an RGB image with R = G = B has the same view as its single channel
    assert torch.equal(grayscale4(x.expand(1, 3, 16, 16)), grayscale4(x))


def test_downsample_rounds_half_up():
    x = torch.tensor([[0, 1, 0, 0, 0, 0, 255, 255],
                      [1, 1, 1, 1, 0, 1, 255, 254]]).reshape(1, 1, 2, 8)
    # means 0.75 -> 1, 0.5 -> 1 (half up), 0.25 -> 0, 254.75 -> 255
    assert downsample2x(x).flatten().tolist() == [1, 1, 0, 255]
    y = torch.tensor([[1, 2], [2, 2]]).reshape(1, 1, 2, 2)   # 1.75 -> 2
    assert downsample2x(y).item() == 2
    z = torch.tensor([[1, 1], [1, 2]]).reshape(1, 1, 2, 2)   # 1.25 -> 1
    assert downsample2x(z).item() == 1
    # channels are independent; the top level stays in range
    c = torch.stack([torch.full((4, 4), 255), torch.zeros(4, 4, dtype=torch.long)]).unsqueeze(0)
    assert downsample2x(c)[0, :, 0, 0].tolist() == [255, 0]


def test_pyramid_levels():
    x = torch.arange(64).reshape(1, 1, 8, 8)
    levels = pyramid(x, 3)
    assert [tuple(l.shape[-2:]) for l in levels] == [(8, 8), (4, 4), (2, 2), (1, 1)]
    assert torch.equal(levels[0], x)
    # block (0, 0) of the 8x8 ramp: 0, 1, 8, 9 -> mean 4.5 -> 5
    assert levels[1][0, 0, 0, 0].item() == 5
    assert torch.equal(levels[2], downsample2x(levels[1])) and torch.equal(levels[3], downsample2x(levels[2]))
    assert len(pyramid(x, 0)) == 1


def test_views_reject_bad_input():
    with pytest.raises(ConfigError, match="integer"):
        grayscale4(torch.rand(1, 3, 2, 2))
    with pytest.raises(ConfigError, match=r"\[0, 256\)"):
        grayscale4(torch.full((1, 3, 2, 2), 256))
    with pytest.raises(ConfigError, match="1 or 3 channels"):
        grayscale4(torch.zeros(1, 2, 2, 2, dtype=torch.long))
    with pytest.raises(ConfigError, match="even"):
        downsample2x(torch.zeros(1, 1, 3, 4, dtype=torch.long))
    with pytest.raises(ConfigError, match="halved 3"):
        pyramid(torch.zeros(1, 1, 4, 4, dtype=torch.long), 3)


def test_display_helpers():
    g = torch.tensor([0, 15]).reshape(1, 1, 1, 2)
    assert gray_to_image(g, 16, 256, 3)[0, :, 0].tolist() == [[8, 248]] * 3   # bin centres
    assert upsample_nearest(torch.tensor([[[[1, 2]]]]), 2).tolist() == [[[[1, 1, 2, 2], [1, 1, 2, 2]]]]
