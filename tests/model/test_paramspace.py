"""Parameter space: layout, normalisation round trip, clipping, validation, named dicts."""

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from neuraleq_jax.model import paramspace as ps
from neuraleq_jax.model.paramspace import DEFAULT_LAYOUT as L

SPEC_RANGES = {  # SPEC §2, written out independently of the module
    1: ((20, 200), (0.1, 2.0)),
    2: ((200, 800), (0.1, 10)),
    3: ((800, 3200), (0.1, 10)),
    4: ((3200, 12800), (0.1, 10)),
    5: ((8000, 20000), (0.1, 2.0)),
}


def in_range_settings(n):
    def place(u):
        geometric = np.abs(L.lower) * (np.abs(L.upper) / np.abs(L.lower)) ** u
        return np.where(L.log_scaled, geometric, L.lower + (L.upper - L.lower) * u)

    return hnp.arrays(np.float64, (n, 15), elements=st.floats(0, 1)).map(place)


def test_default_layout_matches_spec():
    assert L.n_params == 15
    assert L.param_names[:4] == ("band1_gain", "band1_freq", "band1_q", "band2_gain")
    assert L.param_names[-1] == "band5_q"
    assert L.kinds == ("low_shelf", "peaking", "peaking", "peaking", "high_shelf")
    for band, (freq, q) in SPEC_RANGES.items():
        i = 3 * (band - 1)
        assert (L.lower[i], L.upper[i]) == (-12, 12)
        assert (L.lower[i + 1], L.upper[i + 1]) == freq
        assert (L.lower[i + 2], L.upper[i + 2]) == pytest.approx(q)


def test_normalise_is_linear_in_gain_and_log_in_freq_and_q():
    x = np.array(ps.flat_setting())
    x[0], x[1], x[2] = 6.0, np.sqrt(20 * 200), 2.0
    u = np.asarray(ps.normalize(x))
    assert u[0] == pytest.approx(0.5)  # 6 dB of ±12
    assert u[1] == pytest.approx(0.0, abs=1e-6)  # geometric mean of 20..200 Hz
    assert u[2] == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(np.asarray(ps.normalize(L.lower)), -1, atol=1e-6)
    np.testing.assert_allclose(np.asarray(ps.normalize(L.upper)), 1, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(in_range_settings(4))
def test_round_trip_physical_unit_physical(x):
    back = np.asarray(ps.denormalize(ps.normalize(x.astype(np.float32))))
    np.testing.assert_allclose(back, x, rtol=2e-5, atol=1e-4)


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(np.float32, (3, 15), elements=st.floats(-1, 1, width=32)))
def test_round_trip_unit_physical_unit(u):
    np.testing.assert_allclose(np.asarray(ps.normalize(ps.denormalize(u))), u, atol=2e-5)


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(np.float32, (5, 15), elements=st.floats(-1e5, 1e5, width=32)))
def test_clip_is_idempotent_and_in_range(x):
    once = np.asarray(ps.clip(x))
    np.testing.assert_array_equal(np.asarray(ps.clip(once)), once)
    assert np.all(once >= L.lower.astype(np.float32)) and np.all(once <= L.upper.astype(np.float32))


def test_works_under_jit_and_vmap_with_any_batch_shape():
    x = np.broadcast_to(ps.flat_setting(), (2, 3, 15)).astype(np.float32)
    u = jax.jit(ps.normalize)(x)
    assert u.shape == (2, 3, 15)
    v = jax.vmap(ps.denormalize)(u)
    np.testing.assert_allclose(np.asarray(v), x, rtol=1e-5)


@pytest.mark.parametrize(
    "index,value,expected",
    [
        (1, 10.0, r"band1_freq = 10 .* allowed range \[20, 200\]"),
        (0, 13.0, r"band1_gain = 13 .* allowed range \[-12, 12\]"),
        (14, 5.0, r"band5_q = 5 .* allowed range \[0.1, 2\]"),
    ],
)
def test_validate_names_parameter_and_range(index, value, expected):
    x = ps.flat_setting()
    x[index] = value
    with pytest.raises(ValueError, match=expected):
        ps.validate(x)


def test_validate_rejects_non_finite_and_wrong_shape():
    x = ps.flat_setting()
    x[7] = np.nan
    with pytest.raises(ValueError, match="band3_freq is nan.*finite"):
        ps.validate(x)
    with pytest.raises(ValueError, match=r"shape \[\.\.\., 15\]"):
        ps.validate(np.zeros((4, 14)))


def test_dicts_round_trip_and_missing_key():
    x = np.stack([ps.flat_setting(), ps.flat_setting()])
    x[1, 0] = 3.5
    rows = ps.to_dicts(x)
    assert rows[1]["band1_gain"] == pytest.approx(3.5)
    np.testing.assert_allclose(ps.from_dicts(rows), x, rtol=1e-6)
    del rows[0]["band4_q"]
    with pytest.raises(ValueError, match="setting 0 lacks.*band4_q"):
        ps.from_dicts(rows)


def test_custom_layout_and_json_round_trip():
    wide = ps.EQLayout(bands=tuple(ps.Band(b.kind, (20.0, 20000.0), (0.1, 10.0)) for b in L.bands))
    x = ps.flat_setting(L)
    x[1] = 1000.0  # outside SPEC's low shelf but inside the wide layout
    ps.validate(x, wide)
    with pytest.raises(ValueError):
        ps.validate(x, L)
    assert ps.layout_from_json(ps.layout_to_json(wide)) == wide
    assert hash(wide) != hash(L)
    with pytest.raises(ValueError, match="band kind"):
        ps.Band("notch", (1, 2), (1, 2))
