"""``personvlm data render-probe``: a head's mean probability on renders with pinned attributes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from personvlm.cli import app
from personvlm.data.synth.pins import parse_pins, pinned_renders
from personvlm.data.synth.render import render_person
from personvlm.describer import Describer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_pins_parse_into_the_samplers_values() -> None:
    pins = parse_pins(["gender=female", "hair_length=short", "headwear=none", "bags=backpack+handbag", "held="])
    assert pins == {"gender": "female", "hair_length": "short", "headwear": "none",
                    "bags": ("backpack", "handbag"), "held": ()}
    for label in (render_person(pins, seed=5, index=i).description for i in range(3)):
        assert label.value("gender") == "female"


@pytest.mark.parametrize(("pin", "message"), [
    ("gender", "expected NAME=VALUE"),  # no '='
    ("sex=female", "expected NAME=VALUE"),  # a name the sampler would silently ignore
    ("gender=woman", "'woman' is not a value of gender"),
    ("bags=backpack+rucksack", "'rucksack' is not a value of bags"),
])
def test_a_bad_pin_is_named(pin: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_pins([pin])


def test_pinned_renders_repeat_by_seed() -> None:
    first, again = pinned_renders({"gender": "male"}, 2, seed=3), pinned_renders({"gender": "male"}, 2, seed=3)
    other = pinned_renders({"gender": "male"}, 2, seed=4)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(np.asarray(first[0]), np.asarray(other[0]))


def test_render_probe_command(tmp_path) -> None:
    model = tmp_path / "model"
    Describer.tiny(seed=0).save_pretrained(model)
    runner = CliRunner()
    args = ["data", "render-probe", "--attribute", "gender", "--value", "female", "--n", "4", "--model", str(model)]
    result = runner.invoke(app, [*args, "--pin", "gender=female", "--pin", "headwear=none", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["pins"] == {"gender": "female", "headwear": "none"} and figures["n"] == 4
    (mean,) = figures["means"].values()
    expected = Describer.from_pretrained(model).head_probabilities(pinned_renders(
        {"gender": "female", "headwear": "none"}, 4, seed=901), "gender")[:, 1].mean()
    assert mean == pytest.approx(float(expected), abs=1e-6)
    bad_pin = runner.invoke(app, [*args, "--pin", "gender=woman"])
    assert bad_pin.exit_code == 2 and "not a value of gender" in bad_pin.stderr
    bad_value = runner.invoke(app, [*args[:5], "nobody", *args[6:], "--pin", "gender=male"])
    assert bad_value.exit_code == 2 and "not a value of gender" in bad_value.stderr
