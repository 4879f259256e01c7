"""Morphs whose end is a blend ("warm" → "0.7 warm + 0.3 bright"): the facade's compound path."""

import numpy as np

from neuraleq_jax.model import response


def _db(system, settings) -> np.ndarray:
    settings = np.asarray(settings, np.float32)
    return np.asarray(response.magnitude_response_db(settings, layout=system.layout), np.float64)


def _rms(a, b) -> float:
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def test_morph_to_a_blend_starts_at_the_word_ends_at_the_mix_and_steps_evenly(tiny_system):
    system, blend = tiny_system, "0.7 warm + 0.3 bright"
    path = np.asarray(system.morph_between_terms("warm", blend, steps=9, as_array=True))
    assert path.shape == (9, system.layout.n_params)
    lower, upper = system.layout.lower, system.layout.upper
    assert np.all((path >= lower) & (path <= upper))
    db = _db(system, path)
    centres_db = _db(system, system.centre_settings())
    warm, bright = system.vocabulary.index("warm"), system.vocabulary.index("bright")
    # the word's end is its centre setting exactly (the same decoded latent)
    assert _rms(db[0], centres_db[warm]) < 1e-3
    # the blend's end sounds like the weighted mix of the words' centres: its centre is fitted
    # to that response, so it lies within a small share of the distance between the words
    mix = 0.7 * centres_db[warm] + 0.3 * centres_db[bright]
    assert _rms(db[-1], mix) < 0.05 * _rms(centres_db[warm], centres_db[bright])
    # equal RMS-dB steps (arc-length spacing on a dense path; the morph smoothness goal is 1.5)
    steps = [_rms(db[i], db[i + 1]) for i in range(len(db) - 1)]
    assert max(steps) / np.mean(steps) < 1.1
    # deterministic, and the reverse morph is the same path backwards
    again = np.asarray(system.morph_between_terms("warm", blend, steps=9, as_array=True))
    np.testing.assert_array_equal(again, path)
    back = _db(system, system.morph_between_terms(blend, "warm", steps=9, as_array=True))
    assert max(_rms(a, b) for a, b in zip(back[::-1], db)) < 0.02 * max(1e-9, sum(steps))
