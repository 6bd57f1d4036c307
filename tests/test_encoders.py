"""Encoders: the packaged EfficientNet-Lite0 weights load correctly (real photos get the right
ImageNet class), MobileViT-XS builds at its published size and loads local weights, freezing is by
named stage."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from personvlm.data.transforms import to_tensor
from personvlm.models.config import ConfigError
from personvlm.models.encoders import (
    EfficientNetLite0,
    MobileViTXS,
    TinyCNN,
    build_encoder,
    fused_for_inference,
    load_lite0_imagenet,
    load_local_weights,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")
skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (dev extra) ships the test photos")
TABBY_TIGER_EGYPTIAN_CAT = {281, 282, 283, 284, 285}
CUP_ESPRESSO_COFFEEMUG = {967, 968, 504}


@pytest.fixture(scope="module")
def lite0() -> EfficientNetLite0:
    torch.manual_seed(0)
    model = EfficientNetLite0(num_classes=1000)
    load_lite0_imagenet(model)
    return model.eval()


def _imagenet_top5(model: EfficientNetLite0, photo: np.ndarray) -> list[int]:
    from PIL import Image

    img = Image.fromarray(photo).resize((224, 224), Image.BILINEAR)
    with torch.inference_mode():
        logits = model.classify(to_tensor(img).unsqueeze(0))
    return logits[0].topk(5).indices.tolist()


def test_lite0_has_the_published_size(lite0):
    assert sum(p.numel() for p in lite0.parameters()) == 4_652_008  # 4.65M with the classifier


def test_lite0_classifies_the_cat(lite0):
    top5 = _imagenet_top5(lite0, skimage_data.chelsea())
    assert top5[0] in TABBY_TIGER_EGYPTIAN_CAT, top5


def test_lite0_classifies_the_coffee_cup(lite0):
    top5 = _imagenet_top5(lite0, skimage_data.coffee())
    assert top5[0] in CUP_ESPRESSO_COFFEEMUG, top5


def test_untrained_lite0_does_not_pass_the_photo_test():
    """The photo tests above mean something: random weights do not find the cat."""
    torch.manual_seed(0)
    model = EfficientNetLite0(num_classes=1000).eval()
    assert _imagenet_top5(model, skimage_data.chelsea())[0] not in TABBY_TIGER_EGYPTIAN_CAT


def test_feature_map_is_spatial_for_person_crops():
    enc = build_encoder("efficientnet_lite0", pretrained=True).eval()
    with torch.inference_mode():
        fmap = enc(torch.randn(2, 3, 256, 128))
    assert fmap.shape == (2, enc.out_channels, 8, 4)
    assert not hasattr(enc, "classifier") or enc.classifier is None


def test_mobilevit_xs_architecture_and_local_weights(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    src = MobileViTXS().eval()
    n = sum(p.numel() for p in src.parameters())
    assert 1_800_000 < n < 2_100_000  # 2.3M published, of which 0.385M is the ImageNet classifier
    with torch.inference_mode():
        x = torch.randn(1, 3, 256, 128)
        assert src(x).shape == (1, 384, 8, 4)
        assert src(torch.randn(1, 3, 200, 90)).shape[1] == 384  # sizes not divisible by the patch
    path = tmp_path / "mvit.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    loaded = build_encoder("mobilevit_xs", weights=path).eval()
    with torch.inference_mode():
        assert torch.equal(loaded(x), src(x))


def test_local_weights_that_do_not_fit_are_refused_with_the_file_name(tmp_path):
    path = tmp_path / "tiny.pth"
    torch.save(TinyCNN().state_dict(), path)
    with pytest.raises(ValueError, match="tiny.pth.*MobileViTXS"):
        load_local_weights(MobileViTXS(), path)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_local_weights(MobileViTXS(), tmp_path / "missing.pth")


def test_unknown_encoder_and_unpackaged_pretrained_weights():
    with pytest.raises(ConfigError, match="resnet"):
        build_encoder("resnet50")
    with pytest.raises(ConfigError, match="encoder_weights"):
        build_encoder("mobilevit_xs", pretrained=True)


def test_freeze_is_by_named_stage_and_keeps_batchnorm_statistics():
    enc = build_encoder("efficientnet_lite0")
    frozen = enc.freeze(3)
    assert frozen == ["stem", "stages.0", "stages.1", "stages.2"]
    for name, p in enc.named_parameters():
        expect_frozen = name.startswith(("stem.", "stages.0.", "stages.1.", "stages.2."))
        assert p.requires_grad is not expect_frozen, name
    enc.train()
    assert not enc.stem.training and not enc.stages[2].training and enc.stages[3].training
    stats = enc.stem[1].running_mean.clone()
    enc(torch.randn(2, 3, 64, 32) * 5)
    assert torch.equal(enc.stem[1].running_mean, stats)
    assert build_encoder("tiny_cnn").freeze(99)[-1] == "head"


@pytest.mark.parametrize("name", ["efficientnet_lite0", "mobilevit_xs", "tiny_cnn"])
def test_batchnorm_folding_keeps_outputs_and_leaves_the_original_alone(name):
    torch.manual_seed(0)
    enc = build_encoder(name, pretrained=name == "efficientnet_lite0")
    enc.train()
    enc(torch.randn(4, 3, 64, 32))  # move BatchNorm statistics away from their initial values
    enc.eval()
    fused = fused_for_inference(enc)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in enc.modules())
    x = torch.randn(2, 3, 256, 128)
    with torch.inference_mode():
        torch.testing.assert_close(fused(x), enc(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["efficientnet_lite0", "mobilevit_xs", "tiny_cnn"])
def test_feature_taps_append_pooled_stage_outputs_after_the_head(name):
    """Tapped stages are the real stage outputs, average-pooled to the head's map and concatenated
    after its channels; the head's own channels are unchanged, so a tapped encoder is a superset."""
    torch.manual_seed(0)
    plain = build_encoder(name).eval()
    tapped = build_encoder(name, taps=(2, 1))
    tapped.load_state_dict(plain.state_dict())
    tapped.eval()
    assert tapped.taps == (1, 2)
    assert tapped.out_channels == plain.out_channels + plain.stage_channels[1] + plain.stage_channels[2]
    x = torch.randn(2, 3, 256, 128)
    with torch.inference_mode():
        out, ref = tapped(x), plain(x)
        stage = plain.stages[0](plain.stem(x))
        stage = plain.stages[1](stage)
    assert out.shape == (2, tapped.out_channels, *ref.shape[-2:])
    torch.testing.assert_close(out[:, : plain.out_channels], ref)
    pooled = torch.nn.functional.adaptive_avg_pool2d(stage, ref.shape[-2:])
    torch.testing.assert_close(out[:, plain.out_channels: plain.out_channels + stage.shape[1]], pooled)


def test_a_map_finer_than_the_head_repeats_the_head_cells_and_pools_the_taps_to_its_size():
    """``map_size`` (the model's token grid) finer than the head's stride-32 map: each head cell is
    repeated over the cells it covers, finer taps are pooled to the grid instead of to the head's
    map, and the cached path (frozen part + trainable part) gives the same map as ``forward``."""
    torch.manual_seed(0)
    plain = build_encoder("efficientnet_lite0").eval()
    fine = build_encoder("efficientnet_lite0", taps=(2,), map_size=(16, 8))
    fine.load_state_dict(plain.state_dict())
    fine.eval()
    x = torch.randn(2, 3, 256, 128)
    with torch.inference_mode():
        out, head = fine(x), plain(x)
        stage = x
        stage = plain.stem(stage)
        for i in range(3):
            stage = plain.stages[i](stage)
    assert head.shape[-2:] == (8, 4) and out.shape == (2, fine.out_channels, 16, 8)
    torch.testing.assert_close(out[:, :plain.out_channels], head.repeat_interleave(2, -2).repeat_interleave(2, -1))
    torch.testing.assert_close(out[:, plain.out_channels:], torch.nn.functional.adaptive_avg_pool2d(stage, (16, 8)))
    fine.freeze(5)
    with torch.inference_mode():
        torch.testing.assert_close(fine.trainable_part(fine.frozen_part(x)), out)


def test_a_tap_on_a_missing_stage_is_refused():
    with pytest.raises(ConfigError, match="feature_taps.*0..3"):
        build_encoder("tiny_cnn", taps=(4,))


@pytest.mark.parametrize("taps", [3, ["a"], [-1], [1.5], [True]])
def test_feature_taps_that_are_not_stage_numbers_are_a_config_error(taps):
    from personvlm.models.config import ModelConfig

    with pytest.raises(ConfigError, match="feature_taps: expected a list of encoder stage numbers"):
        ModelConfig.from_dict({"feature_taps": taps})
    assert ModelConfig.from_dict({"feature_taps": [2, 4]}).feature_taps == (2, 4)
