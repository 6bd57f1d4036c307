"""PersonVLM internals: spatial visual tokens, KV-cached decoding, heads, losses, size budget, config."""

from __future__ import annotations

import json

import pytest
import torch

from personvlm.models import ConfigError, KVCache, ModelConfig, PersonVLM, parameter_report
from personvlm.models.heads import calibrate_thresholds, decide, head_losses
from personvlm.models.visual_tokens import VisualTokens
from personvlm.schema import ATTRIBUTES, BY_NAME, UNKNOWN

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_config(**kw) -> ModelConfig:
    base = dict(encoder="tiny_cnn", pretrained=False, width=64, layers=2, heads=4, vocab_size=40, max_len=64,
                dropout=0.0)
    return ModelConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def model() -> PersonVLM:
    torch.manual_seed(0)
    return PersonVLM(tiny_config()).eval()


def test_visual_tokens_keep_where_things_are():
    """Changing only the bottom half of the feature map must leave the top-row tokens unchanged:
    tokens are grid cells, not a reshaped pooled vector."""
    torch.manual_seed(0)
    tokens = VisualTokens(in_channels=16, width=32, grid=(8, 4)).eval()
    fmap = torch.randn(1, 16, 8, 4)
    changed = fmap.clone()
    changed[:, :, 4:] += 3.0
    a, b = tokens(fmap), tokens(changed)
    assert a.shape == (1, 32, 32)
    top, bottom = slice(0, 16), slice(16, 32)  # rows 0-3 and 4-7, row-major
    assert torch.equal(a[:, top], b[:, top])
    assert not torch.allclose(a[:, bottom], b[:, bottom])
    # The same content in two cells gives two different tokens (2-D position embedding).
    flat = tokens(torch.ones(1, 16, 8, 4))
    assert not torch.allclose(flat[0, 0], flat[0, 31])


@pytest.mark.parametrize("grid", [(16, 8), (8, 4)])
def test_visual_tokens_from_maps_equal_tokens_of_the_concatenated_map(grid):
    """``from_maps`` (the exported graph's form: coarse maps projected at their own size, LayerNorm
    from per-block sums) must give the tokens of the concatenated, resized map: a coarser map
    repeated, a finer one pooled, one at the grid's size as is, with LayerNorm's scale and shift and
    the projection's bias all non-trivial; a grid that pools the map again takes the plain path."""
    from personvlm.models.encoders import resize_map

    torch.manual_seed(0)
    maps = [torch.rand(2, 40, 8, 4) * 6, torch.randn(2, 12, 32, 16), torch.randn(2, 8, 16, 8) + 2.0]
    size = (16, 8)
    tokens = VisualTokens(in_channels=60, width=32, grid=grid).eval()
    with torch.no_grad():
        for parameter in tokens.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.3)
        expected = tokens(torch.cat([resize_map(m, size) for m in maps], dim=1))
        got = tokens.from_maps(maps, size)
    assert got.shape == expected.shape == (2, grid[0] * grid[1], 32)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_encoder_maps_are_what_forward_concatenates():
    from personvlm.models.encoders import build_encoder, resize_map

    torch.manual_seed(0)
    encoder = build_encoder("tiny_cnn", taps=(0, 2), map_size=(8, 4)).eval()
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        maps = encoder.maps(x)
        size = encoder.output_size(maps)
        assert size == (8, 4) and len(maps) == 3
        assert torch.equal(torch.cat([resize_map(m, size) for m in maps], dim=1), encoder(x))


def test_encode_images_shape(model):
    with torch.inference_mode():
        visual = model.encode_images(torch.randn(3, 3, 256, 128))
    assert visual.shape == (3, 32, 64)


def test_kv_cached_decoding_equals_full_decoding(model):
    torch.manual_seed(1)
    visual = torch.randn(2, 32, 64)
    ids = torch.randint(6, 40, (2, 12))
    with torch.inference_mode():
        full, cache = model.decode(ids, visual)
        assert cache.length == 12
        logits, cache = model.decode(ids[:, :5], visual)  # prefill
        steps = [logits]
        for t in range(5, 12):
            step, cache = model.decode(ids[:, t:t + 1], visual, cache)
            steps.append(step)
        cached = torch.cat(steps, dim=1)
        # several new tokens on a filled cache (chunked decoding) too
        chunk, _ = model.decode(ids[:, 7:], visual, model.decode(ids[:, :7], visual)[1])
    torch.testing.assert_close(cached, full, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(chunk, full[:, 7:], rtol=1e-4, atol=1e-5)
    assert cache.length == 12


def test_cross_attention_is_computed_once_and_cached(model):
    visual = torch.randn(1, 32, 64)
    with torch.inference_mode():
        _, cache = model.decode(torch.tensor([[1, 4]]), visual)
        cross = cache.layers[0].cross_k
        _, cache = model.decode(torch.tensor([[7]]), torch.zeros_like(visual), cache)
    assert cache.layers[0].cross_k is cross  # the visual argument is not re-projected


def test_cache_reorder_follows_beams(model):
    torch.manual_seed(2)
    visual = torch.randn(3, 32, 64)
    ids = torch.randint(6, 40, (3, 6))
    index = torch.tensor([2, 0, 0])
    with torch.inference_mode():
        _, cache = model.decode(ids[:, :5], visual)
        reordered, _ = model.decode(ids[index, 5:], visual[index], cache.reorder(index))
        expected, _ = model.decode(ids[index], visual[index])
    torch.testing.assert_close(reordered[:, -1], expected[:, -1], rtol=1e-4, atol=1e-5)


def test_too_long_sequences_are_refused(model):
    with pytest.raises(ValueError, match="max_len"):
        model.decode(torch.zeros(1, 65, dtype=torch.long), torch.randn(1, 32, 64))


def test_embeddings_are_tied(model):
    names = [n for n, _ in model.decoder.named_parameters()]
    assert "tok.weight" in names and not any("lm_head" in n or "output" in n for n in names)
    assert model.decoder.tok.weight.shape == (40, 64)


def _batch(model: PersonVLM, with_images: bool = True) -> dict:
    torch.manual_seed(3)
    images = torch.randn(2, 3, 256, 128)
    ids = torch.randint(6, 40, (2, 9))
    target = torch.cat([ids[:, 1:], torch.full((2, 1), -100)], dim=1)
    heads = {"gender": torch.tensor([0, -100]), "upper_color": torch.tensor([3, 11]),
             "bags": torch.tensor([[1.0, 0, 0, 0, 0, 0, 0], [float("nan")] * 7])}
    batch = {"input_ids": ids, "target_ids": target, "head_targets": heads}
    if with_images:
        batch["images"] = images
    else:
        with torch.no_grad():
            batch["features"] = model.encode_features(images)
    return batch


@pytest.mark.parametrize(("freeze", "taps", "parts"), [(9, (), 1), (9, (1, 3), 1), (2, (), 1), (2, (0, 1, 3), 2),
                                                    (3, (1, 2), 2)])
def test_compute_loss_from_images_or_cached_features(freeze, taps, parts):
    """A cache of the frozen part (the whole encoder, or its first stages with their taps) gives
    the loss that the images give: the trainable stages finish the pass exactly."""
    torch.manual_seed(0)
    model = PersonVLM(tiny_config(freeze_stages=freeze, feature_taps=taps)).eval()
    assert len(_batch(model, with_images=False)["features"]) == parts
    with torch.no_grad():
        from_images = model.compute_loss(_batch(model))
        from_features = model.compute_loss(_batch(model, with_images=False))
    assert set(from_images) >= {"loss", "caption", "heads", "head/gender", "head/upper_color", "head/bags"}
    torch.testing.assert_close(from_images["loss"], from_features["loss"])
    cfg = model.config
    expected = cfg.caption_weight * from_images["caption"] + cfg.head_weight * from_images["heads"]
    torch.testing.assert_close(from_images["loss"], expected)


def test_loss_backpropagates_and_ignored_targets_are_not_nan():
    torch.manual_seed(0)
    model = PersonVLM(tiny_config()).train()
    batch = _batch(model)
    batch["head_targets"] = {"gender": torch.tensor([-100, -100]), "bags": torch.full((2, 7), float("nan"))}
    out = model.compute_loss(batch)
    assert torch.isfinite(out["loss"]) and out["heads"] == 0
    out["loss"].backward()
    assert model.decoder.tok.weight.grad is not None and model.encoder.stem[0].weight.grad is not None
    with pytest.raises(KeyError, match="images"):
        model.compute_loss({"input_ids": batch["input_ids"], "target_ids": batch["target_ids"]})


def test_head_losses_skip_missing_attributes():
    logits = {a.name: torch.zeros(2, len(a.values)) for a in ATTRIBUTES}
    losses = head_losses(logits, {"age": torch.tensor([1, 2])})
    assert set(losses) == {"age"}
    assert losses["age"].item() == pytest.approx(torch.log(torch.tensor(3.0)).item(), rel=1e-5)


def test_decide_applies_unknown_thresholds_per_attribute():
    logits = {a.name: torch.zeros(1, len(a.values)) for a in ATTRIBUTES}
    logits["gender"] = torch.tensor([[2.0, 0.0]])  # p(male) = 0.88
    logits["upper_color"] = torch.tensor([[0.0] * 11 + [1.0]])  # beige, p = e / (11 + e) = 0.198
    logits["bags"] = torch.tensor([[4.0, -4.0, -4.0, -4.0, -4.0, -4.0, -4.0]])
    row = decide(logits, {"gender": 0.8, "upper_color": 0.5, "bags": 0.9})[0]
    assert row["gender"].value == "male" and row["gender"].confidence == pytest.approx(0.881, abs=1e-3)
    assert row["upper_color"].value == UNKNOWN and row["upper_color"].confidence == pytest.approx(0.198, abs=1e-3)
    assert row["bags"].value == ("backpack",)
    assert decide(logits, {"bags": 0.99})[0]["bags"].value == UNKNOWN
    assert set(row) == set(BY_NAME)


def test_calibrate_thresholds_picks_the_lowest_that_reaches_the_target():
    import numpy as np

    conf = {"gender": np.array([0.9, 0.8, 0.7, 0.6, 0.55]), "age": np.array([0.9, 0.5])}
    correct = {"gender": np.array([1, 1, 1, 0, 0]), "age": np.array([1, 1])}
    th = calibrate_thresholds(conf, correct, target_accuracy=0.9)
    assert th == {"gender": 0.7, "age": 0.0}


def test_parameter_report_and_budget(monkeypatch):
    report = parameter_report(ModelConfig())
    assert set(report) == {"encoder", "visual_tokens", "heads", "decoder"}
    total = sum(t for t, _ in report.values())
    assert 5_000_000 < total < 20_000_000
    frozen = parameter_report(ModelConfig(freeze_stages=99))
    assert frozen["encoder"][1] == 0 and frozen["decoder"][1] == frozen["decoder"][0]
    oversized = ModelConfig(width=2048, heads=16, layers=24)
    assert sum(t for t, _ in parameter_report(oversized).values()) > 100_000_000  # counted without allocating
    monkeypatch.setattr("personvlm.models.personvlm.MAX_PARAMETERS", 10_000)  # refuse without building 100M
    with pytest.raises(ConfigError, match="over the limit of 10,000"):
        PersonVLM(tiny_config())


def test_config_json_round_trip_and_clear_errors(tmp_path):
    cfg = ModelConfig(width=128, grid=[4, 2], unknown_thresholds={"gender": 0.7})
    cfg.save(tmp_path / "config.json")
    loaded = ModelConfig.load(tmp_path / "config.json")
    assert loaded == cfg and loaded.grid == (4, 2) and loaded.unknown_threshold("gender") == 0.7
    assert loaded.unknown_threshold("age") == cfg.default_unknown_threshold
    (tmp_path / "bad.json").write_text(json.dumps({"widht": 128}))
    with pytest.raises(ConfigError, match=r"bad.json.*widht"):
        ModelConfig.load(tmp_path / "bad.json")
    (tmp_path / "bad.yaml").write_text("width: [unclosed")
    with pytest.raises(ConfigError, match="bad.yaml.*YAML"):
        ModelConfig.load(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="divisible"):
        ModelConfig(width=100, heads=3)
    with pytest.raises(ConfigError, match="encoder"):
        ModelConfig(encoder="vgg")


def test_freeze_stages_from_config():
    model = PersonVLM(tiny_config(freeze_stages=2))
    frozen = {n for n, p in model.encoder.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith(("stem.", "stages.0.", "stages.1.")) for n in frozen)
    assert isinstance(KVCache.empty(2), KVCache)
