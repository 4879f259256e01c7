"""Data sets named by configs: SAFE-DB by contributor, fitted curve files, and bad choices."""

import json
import re

import numpy as np
import pytest

from neuraleq_jax import config as config_lib
from neuraleq_jax.config import DataConfig
from neuraleq_jax.data import curves
from neuraleq_jax.data.registry import DATASETS, build_datasets
from neuraleq_jax.model import paramspace


def test_safe_preset_splits_by_contributor(safe_csv_path, monkeypatch):
    experiment = config_lib.load_preset("safe")
    data = experiment.data
    train, val, test = build_datasets(DataConfig(**{**data.__dict__, "path": str(safe_csv_path)}))
    assert train.vocabulary == ("warm", "bright")
    owners = [set(part.contributors) for part in (train, val, test)]
    assert not (owners[0] & owners[1] or owners[0] & owners[2] or owners[1] & owners[2])
    for part in (train, val, test):
        paramspace.validate(part.settings, part.layout)
        assert min(part.counts().values()) > 0
    assert len(train) + len(val) + len(test) == 523 + 496  # warm + bright after cleaning


def test_curve_file_dataset_with_word_filter(tmp_path):
    rng = np.random.default_rng(0)
    lower, upper = paramspace.DEFAULT_LAYOUT.lower, paramspace.DEFAULT_LAYOUT.upper
    unit = rng.uniform(-0.6, 0.6, (12, 15)).astype(np.float32)
    settings = np.asarray(paramspace.denormalize(unit))
    from neuraleq_jax.model import response

    gains = np.asarray(response.magnitude_response_db(settings, curves.CURVE_FREQS))
    words = ["warm", "bright", "thin"] * 4
    path = tmp_path / "curves.json"
    path.write_text(json.dumps([{"word": w, "gains_db": g.tolist()} for w, g in zip(words, gains)]))
    data = DataConfig(
        dataset="curves",
        path=str(path),
        words=("warm", "bright"),
        split_fractions=(0.5, 0.5),
        max_fit_rms_db=1.0,
    )
    train, val, test = build_datasets(data)
    assert test is None
    assert train.vocabulary == ("warm", "bright")
    assert len(train) + len(val) == 8
    assert np.all(train.settings >= lower.astype(np.float32) - 1e-3)
    assert np.all(train.settings <= upper.astype(np.float32) + 1e-3)


def test_curve_data_set_reads_an_audealize_file_too(tmp_path, capsys):
    # a flat curve and a 6 dB one: the fit must give a flat setting and one about 6 dB up
    document = [
        {"word": w, "lang": "English", "settings": [g] * 40, "agreement": 0.5, "num": 3}
        | {"x": 0.0, "y": 0.0}
        for w, g in (("flat", 0.0), ("loud", 6.0))
    ]
    path = tmp_path / "eqdescriptors.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    data = DataConfig(dataset="curves", path=str(path))
    whole = DATASETS["curves"](data, False)
    assert whole.vocabulary == ("flat", "loud") and len(whole) == 2
    assert capsys.readouterr().err == ""  # no bar unless asked
    # asked (as training asks, issue 28 11c): a bar while the curves are fitted, same fit
    shown = DATASETS["curves"](data, True)
    assert "fitting 5 bands to 2 curves" in capsys.readouterr().err
    np.testing.assert_array_equal(shown.settings, whole.settings)
    from neuraleq_jax.model import response

    gains = np.asarray(response.magnitude_response_db(whole.settings, curves.CURVE_FREQS))
    np.testing.assert_allclose(gains.mean(axis=1), [0.0, 6.0], atol=0.5)


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"dataset": "mnist"}, "data.dataset must be one of"),
        ({"dataset": "curves"}, "data.path must name a curve file"),
        ({"layout": "wide"}, "data.layout must be 'safe' or 'spec'"),
        ({"min_examples": 0}, "data.min_examples must be >= 1"),
    ],
)
def test_bad_data_choices_are_named(fields, message):
    with pytest.raises(ValueError, match=message):
        DataConfig(**fields)


@pytest.mark.parametrize(
    "preset, asked",
    [
        ("curves", "pass --data.path=FILE.json"),
        ("audealize", "pass --data.path=eqdescriptors.json (from neuraleq data fetch audealize)"),
    ],
)
def test_a_preset_whose_file_is_the_users_says_which_option_gives_it(preset, asked):
    """Not 'file not found: REQUIRED: --data.path=…', the placeholder read as a file name."""
    from neuraleq_jax.config import load_preset
    from neuraleq_jax.data import registry

    with pytest.raises(
        ValueError, match=rf"^the {preset} data set needs a file: {re.escape(asked)}$"
    ):
        registry.load_dataset(load_preset(preset).data)
