"""Describer: the public inference API, its model directory, and caption/structure agreement."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

from personvlm.data.transforms import letterbox, preprocess, to_tensor
from personvlm.describer import (
    MODEL_ENV,
    Describer,
    ModelNotFoundError,
    contradicts,
    default_model_dir,
    sentence_case,
)
from personvlm.models.checkpoint import CheckpointError
from personvlm.schema import NAMES, UNKNOWN, PersonDescription, parse

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def crops(n: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (int(rng.integers(40, 200)), int(rng.integers(20, 90)), 3),
                                         dtype=np.uint8)) for _ in range(n)]


@pytest.fixture(scope="module")
def describer() -> Describer:
    return Describer.tiny(seed=0)


def test_describe_returns_one_full_description_per_image(describer):
    out = describer.describe(crops(3), style="compact")
    assert len(out) == 3
    for desc in out:
        assert isinstance(desc, PersonDescription) and desc.style == "compact" and desc.caption
        assert set(desc.attributes) == set(NAMES)
        assert all(0.0 <= av.confidence <= 1.0 for av in desc.attributes.values())
    assert describer.describe([]) == []
    assert describer.model_version == "tiny-seed0"


def test_compact_captions_parse_back_to_the_structure(describer):
    """The agreement rule: heads decide, and the compact caption says exactly that."""
    for desc in describer.describe(crops(12, seed=1)):
        assert parse(desc.caption).values() == desc.values(), desc.caption


def test_compact_caption_is_what_agreeing_constrained_decoding_produces(describer):
    """Why the Describer renders instead of decoding: the decoder, constrained to phrases that agree
    with the heads, has exactly one path, and it spells the same caption."""
    from personvlm.generation import CompactConstraint, GenerationConfig, generate

    images = crops(4, seed=6)
    described = describer.describe(images)
    with torch.inference_mode():
        visual = describer.model.encode_images(preprocess(images))
        constraints = [CompactConstraint.agreeing_with(describer.vocab, d) for d in described]
        prompt = [describer.vocab.bos_id, describer.vocab.style_id("compact")]
        ids = generate(describer.model, visual, prompt, GenerationConfig(max_new_tokens=120), constraints)
    assert [describer.vocab.decode(row) for row in ids] == [d.caption for d in described]


def test_unknown_below_threshold_reaches_structure_and_caption():
    describer = Describer.tiny(seed=0)
    describer.model.config.unknown_thresholds = {"gender": 1.01, "upper_color": 1.01, "bags": 1.01}
    desc = describer.describe(crops(1))[0]
    assert desc.value("gender") == desc.value("upper_color") == desc.value("bags") == UNKNOWN
    assert desc.attributes["gender"].confidence > 0.0  # the confidence is kept for the caller
    assert "unknown bag" in desc.caption and not desc.caption.startswith(("male", "female"))
    assert parse(desc.caption).values() == desc.values()


def test_batching_does_not_change_results(describer):
    images = crops(11, seed=2)
    together = describer.describe(images)
    one_by_one = [describer.describe([img])[0] for img in images]
    assert [d.caption for d in together] == [d.caption for d in one_by_one]
    assert describer.max_batch < len(images)  # the call above really was split into batches


def test_tiny_is_deterministic_per_seed():
    a = Describer.tiny(seed=3).describe(crops(2))
    b = Describer.tiny(seed=3).describe(crops(2))
    assert [d.to_dict() for d in a] == [d.to_dict() for d in b]


def test_save_and_load_round_trip(tmp_path, describer):
    describer.save_pretrained(tmp_path / "m")
    assert {p.name for p in (tmp_path / "m").iterdir()} >= {"config.json", "model.safetensors", "vocab.json"}
    loaded = Describer.from_pretrained(tmp_path / "m")
    images = crops(3, seed=4)
    assert [d.to_dict() for d in loaded.describe(images)] == [d.to_dict() for d in describer.describe(images)]
    assert re.fullmatch(r"m-[0-9a-f]{12}\.[0-9a-f]{6}", loaded.model_version)


def test_model_version_names_the_answer_rule_too(tmp_path, describer):
    # Calibration rewrites config.json, not the weights, and changes the answers: the version
    # every stored description carries must change with it, and come back when the rule does.
    from personvlm.models.checkpoint import CONFIG_FILE, weights_digest
    from personvlm.models.config import ModelConfig

    describer.save_pretrained(tmp_path / "m")
    before = Describer.from_pretrained(tmp_path / "m").model_version
    config = ModelConfig.load(tmp_path / "m" / CONFIG_FILE)
    config.unknown_thresholds = {"gender": 0.9}
    config.save(tmp_path / "m" / CONFIG_FILE)
    after = Describer.from_pretrained(tmp_path / "m").model_version
    weights = f"m-{weights_digest(tmp_path / 'm')}."
    assert before != after and before.startswith(weights) and after.startswith(weights)
    config.unknown_thresholds = {}
    config.save(tmp_path / "m" / CONFIG_FILE)
    assert Describer.from_pretrained(tmp_path / "m").model_version == before


def test_missing_and_broken_model_files_are_named(tmp_path, describer):
    with pytest.raises(ModelNotFoundError, match="personvlm train"):
        Describer.from_pretrained(tmp_path / "nowhere")
    describer.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "vocab.json").unlink()
    with pytest.raises(CheckpointError, match="missing vocab.json"):
        Describer.from_pretrained(tmp_path / "m")
    describer.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        Describer.from_pretrained(tmp_path / "m")


def test_weights_that_do_not_match_the_config_are_refused(tmp_path, describer):
    describer.save_pretrained(tmp_path / "m")
    cfg = (tmp_path / "m" / "config.json").read_text().replace('"layers": 2', '"layers": 3')
    (tmp_path / "m" / "config.json").write_text(cfg)
    with pytest.raises(CheckpointError, match="do not match config.json"):
        Describer.from_pretrained(tmp_path / "m")


def test_default_model_dir_and_env_override(monkeypatch, tmp_path):
    monkeypatch.delenv(MODEL_ENV, raising=False)
    assert default_model_dir().parts[-2:] == ("models", "default")
    monkeypatch.setenv(MODEL_ENV, str(tmp_path))
    assert default_model_dir() == tmp_path


def test_contradiction_rule_for_natural_captions():
    structure = PersonDescription.from_values({"gender": "male", "upper_color": "red"})
    assert contradicts("female adult", structure)
    assert not contradicts("male adult, red top", structure)
    assert not contradicts("", structure)  # silence is not a contradiction


def test_sentence_case_for_natural_captions():
    assert sentence_case("the image shows a man. he is walking fast!  she? no") == \
        "The image shows a man. He is walking fast!  She? No"
    assert sentence_case("") == ""


def test_natural_captions_never_contradict_the_heads(describer):
    pytest.importorskip("personvlm.schema.natural", reason="the natural-language parser is not in the package yet")
    for desc in describer.describe(crops(4, seed=5), style="natural"):
        assert desc.style == "natural" and not contradicts(desc.caption, desc)


def test_letterbox_keeps_the_aspect_ratio_and_pads_with_zero_after_normalisation():
    wide = Image.new("RGB", (200, 100), (255, 0, 0))  # a 2:1 landscape crop
    boxed = letterbox(wide, (256, 128))
    assert boxed.size == (128, 256)
    px = np.asarray(boxed)
    assert tuple(px[128, 64]) == (255, 0, 0) and tuple(px[5, 64]) != (255, 0, 0)
    green = Image.new("RGB", (64, 128), (10, 200, 30))
    batch = preprocess([wide, green])
    assert batch.shape == (2, 3, 256, 128) and batch.dtype == torch.float32
    assert batch.is_contiguous(memory_format=torch.channels_last)  # the CPU encoder's layout, no copy
    torch.testing.assert_close(batch[1], to_tensor(letterbox(green, (256, 128))))  # training's per-image path
    assert batch[1, 1, 128, 64].item() == pytest.approx((200 / 255 - 0.456) / 0.224, abs=1e-5)
    assert batch[0, :, 5, 64].abs().max() < 0.02  # padding is the ImageNet mean
    with pytest.raises(ValueError, match="at least one"):
        preprocess([])



def test_the_shipped_model_loads_fits_its_bound_and_describes_a_real_crop(monkeypatch):
    """models/default is what `personvlm describe` uses without --model: it must load with the
    code as it is now (config fields, taps, vocabulary), stay within 25 MB, and give a parseable
    compact caption on a real surveillance crop from shared/realcrops. The ONNX graphs are derived
    from the weights by `make` (`personvlm model export-onnx`), not shipped, so they are not counted."""
    import os
    from pathlib import Path

    from personvlm.imageio import load_image

    monkeypatch.delenv(MODEL_ENV, raising=False)
    directory = default_model_dir()
    size = sum(f.stat().st_size for f in directory.iterdir() if f.is_file() and f.suffix != ".onnx")
    assert size <= 25 * 2**20, f"{directory} is {size / 2**20:.1f} MiB"
    shipped = Describer.from_pretrained()
    assert shipped.model.encoder.taps == shipped.config.feature_taps
    real = sorted((Path(__file__).resolve().parents[2] / "shared" / "realcrops" / "images").glob("*.png"))
    if not real:
        if os.environ.get("CI"):
            pytest.fail("shared/realcrops/images is missing beside the repo")
        pytest.skip("shared/realcrops is not beside the repo")
    [desc] = shipped.describe([load_image(real[0])], style="compact")
    assert parse(desc.caption).values() == desc.values()
