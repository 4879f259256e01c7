"""A foreign preset's filters (:class:`~neuraleq_jax.presets.formats.FilterList`) onto the
model's band layout: exactly when the file holds one filter per band (peaks in frequency
order), else, when asked, by fitting the layout's bands to the filters' summed response."""

from __future__ import annotations

import numpy as np

from neuraleq_jax.model import paramspace, response
from neuraleq_jax.model.paramspace import DEFAULT_LAYOUT, Band, EQLayout
from neuraleq_jax.presets.formats import APO_TOKENS as APO_TYPES
from neuraleq_jax.presets.formats import Filter, FilterList

MAX_FILTERS = 64  # a preset file with more filters than this is not an EQ preset


def _exact_row(filters: list[Filter], layout: EQLayout) -> tuple[np.ndarray | None, str]:
    """The layout's setting made of exactly these filters (peaks in frequency order), or
    ``(None, why not)``."""
    tokens = ", ".join(APO_TYPES[kind] for kind in layout.kinds)
    found = ", ".join(APO_TYPES[f.kind] for f in filters) or "none"
    if sorted(f.kind for f in filters) != sorted(layout.kinds):
        return None, (
            f"found {len(filters)} filters ({found}); the layout has "
            f"{layout.n_bands} bands ({tokens})"
        )
    row = np.zeros(layout.n_params)
    for kind in set(layout.kinds):
        slots = [i for i, k in enumerate(layout.kinds) if k == kind]
        chosen = sorted((f for f in filters if f.kind == kind), key=lambda f: f.freq_hz)
        for slot, f in zip(slots, chosen):
            row[3 * slot : 3 * slot + 3] = (f.gain_db, f.freq_hz, f.q)
    try:
        return paramspace.validate(row[None], layout, name="preset"), ""
    except ValueError as error:
        return None, str(error)


def filters_response_db(
    filters: list[Filter],
    freqs_F=response.REFERENCE_FREQS,
    sample_rate: float = response.DEFAULT_SAMPLE_RATE,
) -> np.ndarray:
    """dB response ``[F]`` of any list of RBJ filters (their sum; 0 dB for none)."""
    if not filters:
        return np.zeros(len(freqs_F), np.float32)
    nyquist = sample_rate / 2.0
    for f in filters:
        if not (0.0 < f.freq_hz < nyquist and f.q > 0):
            raise ValueError(
                f"filter {APO_TYPES[f.kind]} at {f.freq_hz:g} Hz, Q {f.q:g}: the "
                f"frequency must lie in (0, {nyquist:g}) Hz and Q be > 0"
            )
    # a layout with one band per filter and ranges wide enough for any of them
    layout = EQLayout(
        tuple(Band(f.kind, (1e-3, nyquist), (1e-6, 1e6), (-1e3, 1e3)) for f in filters)
    )
    params = np.array([v for f in filters for v in (f.gain_db, f.freq_hz, f.q)], np.float32)
    return np.asarray(response.magnitude_response_db(params, freqs_F, sample_rate, layout))


def filters_to_settings(
    found: FilterList,
    layout: EQLayout = DEFAULT_LAYOUT,
    *,
    fit: bool = False,
    fit_steps: int = 300,
    fit_restarts: int = 16,
) -> tuple[np.ndarray, float | None, list[str]]:
    """A foreign preset's filters → ``(settings [1, P], fit RMS dB or None, notes)``.

    One filter per band of the layout (peaks in frequency order) maps exactly; anything else
    raises ValueError unless ``fit``, which fits the layout to the filters' summed response on
    the reference grid with :func:`neuraleq_jax.data.curves.fit_curves`.
    """
    if len(found.filters) > MAX_FILTERS:
        raise ValueError(
            f"the preset has {len(found.filters)} filters; at most {MAX_FILTERS} are read"
        )
    if not found.filters:
        return (
            paramspace.flat_setting(layout)[None].astype(np.float32),
            None,
            ["no active filters: the flat setting"],
        )
    row, why = _exact_row(found.filters, layout)
    if row is not None:
        return row, None, []
    if not fit:
        raise ValueError(
            f'{why}; fit=True (neuraleq convert --fit, or "fit": true in the '
            f"API) fits the layout's bands to the file's response instead"
        )
    from neuraleq_jax.data import curves  # optax and the fitting code: only when a fit is asked for

    target_F = filters_response_db(found.filters)
    result = curves.fit_curves(
        target_F[None],
        response.REFERENCE_FREQS,
        layout=layout,
        steps=fit_steps,
        restarts=fit_restarts,
        candidates=32,
    )
    rms = float(result.rms_db[0])
    return (
        result.settings,
        rms,
        [
            f"{why}: fitted the layout to the file's response "
            f"(RMS error {rms:.2f} dB on 20 Hz-20 kHz)"
        ],
    )
