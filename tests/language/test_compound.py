"""Compound word descriptions ("warm and punchy", "0.7 warm + 0.3 bright") read into normalised
weights over a vocabulary, and the one-line refusals of what they cannot mean."""

import numpy as np
import pytest

from neuraleq_jax.data import synthetic
from neuraleq_jax.language import compound

W = len(synthetic.VOCABULARY)


@pytest.mark.parametrize(
    "term, expected",
    [
        ("warm", {"warm": 1.0}),
        ("Warm and Punchy", {"warm": 0.5, "punchy": 0.5}),
        ("0.7 warm + 0.3 bright", {"warm": 0.7, "bright": 0.3}),
        ("7*warm + 3*bright", {"warm": 0.7, "bright": 0.3}),
        ("70% warm, 30% bright", {"warm": 0.7, "bright": 0.3}),
        ({"warm": 2, "bright": 2}, {"warm": 0.5, "bright": 0.5}),
        (["soft", "hollow", "soft"], {"soft": 2 / 3, "hollow": 1 / 3}),
    ],
)
def test_compound_descriptions_parse_to_normalised_weights(term, expected):
    weights = compound.parse_weights(term, synthetic.VOCABULARY)
    wanted = np.zeros(W)
    for word, value in expected.items():
        wanted[synthetic.VOCABULARY.index(word)] = value
    np.testing.assert_allclose(weights, wanted, rtol=1e-6)


@pytest.mark.parametrize(
    "term, message",
    [
        ("warmm", "known words: warm, bright.*Did you mean 'warm'"),
        ("warm and brigth", "Did you mean 'bright'"),
        ("0 warm + 0 bright", "sum to 0"),
        ({"warm": -1.0, "bright": 2.0}, ">= 0"),
        ("0.7 warm - 0.3 bright", "subtracts"),
        ("0.7 warm + bright", "every part"),
        ("0.7 warm + 0.3", r"a weight with no word after it \('0.3'\)"),
        ("70% warm, 30%", r"a weight with no word after it \('30%'\)"),
        ("2* warm + 10.5", r"a weight with no word after it \('10.5'\)"),
        ({"warm": float("nan")}, "finite"),
        ("", "empty"),
    ],
)
def test_bad_compound_descriptions_raise_clear_errors(term, message):
    with pytest.raises(ValueError, match=message):
        compound.parse_weights(term, synthetic.VOCABULARY)
