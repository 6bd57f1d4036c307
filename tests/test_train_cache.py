"""The frozen-encoder feature cache: computed once, keyed by weights + preprocessing, invalidated."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from personvlm.data.transforms import letterbox, to_tensor
from personvlm.imageio import load_image
from personvlm.models.encoders import build_encoder
from personvlm.training.config import TrainConfig
from personvlm.training.feature_cache import FeatureCache, encoder_fingerprint
from personvlm.training.trainer import Trainer, TrainingError
from training_data import make_dataset, tiny_config

PRE = {"image_size": [64, 32], "resize": "letterbox-bilinear"}


def _cache(root: Path, encoder: torch.nn.Module, pre: dict = PRE) -> FeatureCache:
    return FeatureCache(root, encoder, pre, lambda img: to_tensor(letterbox(img, (64, 32))), batch_size=4)


def test_fingerprint_tracks_weights_buffers_and_preprocessing() -> None:
    torch.manual_seed(0)
    enc = build_encoder("tiny_cnn")
    base = encoder_fingerprint(enc, PRE)
    assert encoder_fingerprint(enc, dict(PRE)) == base
    assert encoder_fingerprint(enc, {**PRE, "image_size": [128, 64]}) != base
    with torch.no_grad():
        enc.stem[0].weight[0, 0, 0, 0] += 1e-3
    assert encoder_fingerprint(enc, PRE) != base
    changed = encoder_fingerprint(enc, PRE)
    enc.stem[1].running_mean += 0.1  # BatchNorm statistics change the features too
    assert encoder_fingerprint(enc, PRE) != changed


def test_hit_miss_flip_and_stale_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    jsonl = make_dataset(tmp_path / "d", n=6)
    paths = sorted((jsonl.parent / "images").glob("*.jpg"))
    torch.manual_seed(0)
    enc = build_encoder("tiny_cnn").eval()
    cache = _cache(tmp_path / "cache", enc)
    [feats] = cache.features(paths)
    with torch.no_grad():
        direct = enc(torch.stack([to_tensor(letterbox(load_image(p), (64, 32))) for p in paths]))
    assert feats.dtype == torch.float16 and torch.allclose(feats.float(), direct, atol=1e-2)
    entry = cache.path_for(paths)
    assert entry.is_file()

    monkeypatch.setattr(FeatureCache, "_compute", lambda *a: pytest.fail("cache hit expected"))
    assert torch.equal(_cache(tmp_path / "cache", enc).features(paths)[0], feats)
    monkeypatch.undo()

    [flipped] = cache.features(paths, flip=True)
    assert not torch.equal(flipped, feats) and cache.path_for(paths, flip=True).is_file()

    other = _cache(tmp_path / "cache", enc, {**PRE, "mean": [0.5, 0.5, 0.5]})
    other.features(paths)
    assert not entry.exists()  # same images, new preprocessing: the old entry is gone
    assert other.path_for(paths).is_file()

    before = other.path_for(paths)
    paths[0].write_bytes(paths[0].read_bytes())  # rewritten with the same bytes: same entry
    assert other.path_for(paths) == before
    paths[0].write_bytes(paths[1].read_bytes())  # different content: a different entry
    assert other.path_for(paths) != before


@pytest.mark.parametrize("model", [{"freeze_stages": 9}, {"freeze_stages": 2, "feature_taps": [0, 3]}],
                         ids=["whole encoder frozen", "first stages frozen"])
def test_training_with_a_frozen_encoder_uses_the_cache(tmp_path: Path, model: dict) -> None:
    torch.set_num_threads(1)
    jsonl = make_dataset(tmp_path / "d", n=16)
    cfg_path = tiny_config(tmp_path / "c.yaml", jsonl, model=model, train={"epochs": 1},
                           cache={"enabled": True})
    Trainer(TrainConfig.load(cfg_path), tmp_path / "run1").run()
    entries = sorted((tmp_path / "cache").glob("*/*.safetensors"))
    assert len(entries) == 3  # train, train flipped, val
    mtimes = [e.stat().st_mtime_ns for e in entries]
    Trainer(TrainConfig.load(cfg_path), tmp_path / "run2").run()
    assert [e.stat().st_mtime_ns for e in entries] == mtimes  # second run read, did not rewrite
    rows1 = (tmp_path / "run1" / "metrics.jsonl").read_text().split('"epoch_seconds"')[0]
    rows2 = (tmp_path / "run2" / "metrics.jsonl").read_text().split('"epoch_seconds"')[0]
    assert rows1 == rows2  # identical losses from cached features


def test_cached_prefix_training_trains_only_the_unfrozen_stages(tmp_path: Path) -> None:
    """With stages 0-1 cached, the optimiser moves stages 2+ of the encoder and nothing before."""
    torch.set_num_threads(1)
    jsonl = make_dataset(tmp_path / "d", n=16)
    cfg_path = tiny_config(tmp_path / "c.yaml", jsonl, model={"freeze_stages": 2, "feature_taps": [0]},
                           train={"epochs": 1, "encoder_lr": 1e-2}, cache={"enabled": True})
    Trainer(TrainConfig.load(cfg_path), tmp_path / "run").run()
    trained = load_file(tmp_path / "run" / "model.safetensors")
    torch.manual_seed(0)  # the trainer seeds with train.seed=0 before building the model
    initial = build_encoder("tiny_cnn").state_dict()
    for name, value in initial.items():
        if value.is_floating_point() and not name.endswith(("running_mean", "running_var")):
            changed = not torch.allclose(trained[f"encoder.{name}"].float(), value, atol=1e-4)
            assert changed is name.startswith(("stages.2.", "stages.3.")), name


def test_a_blank_training_crop_stops_the_run_naming_it(tmp_path: Path) -> None:
    """imageio refuses flat single-colour crops; training says which file instead of a traceback."""
    jsonl = make_dataset(tmp_path / "d", n=8)
    blank = sorted((jsonl.parent / "images").glob("*.jpg"))[3]
    Image.new("RGB", (32, 64), (0, 0, 0)).save(blank)
    cfg_path = tiny_config(tmp_path / "c.yaml", jsonl, model={"freeze_stages": 9}, train={"epochs": 1},
                           cache={"enabled": True})
    with pytest.raises(TrainingError, match=rf"feature cache: {blank}: image is blank"):
        Trainer(TrainConfig.load(cfg_path), tmp_path / "run").run()
