"""Generation throughput over batch sizes, beside this machine's matmul roofline.

Run: ``python -m benchmarks throughput [--quick]`` (or ``python -m benchmarks.bench_throughput``).

1. Roofline: the FLOP/s that NumPy and jitted JAX matrix multiplies of the decoder's own layer
   shapes reach here (:func:`benchmarks.common.matmul_roofline`), measured before and after the
   generation runs; the higher of the two is used, so contention from other processes can only
   make the reported fractions smaller.
2. ``generation.generate`` (the library's functional core: one word blend and one PRNG key per
   row) at batch sizes from 1 to 1M settings: settings/s, and the decoder's matmul FLOP/s as a
   fraction of the roofline and of the NumPy roofline alone (sampling, denormalising and
   clipping count as overhead, not FLOPs).
3. Decoder variants at one large batch, to show what each choice is worth: one jitted call over
   the whole batch, ``lax.map`` over row tiles of several sizes, and bfloat16 matmul operands
   (float32 accumulation), with the response error bfloat16 causes in dB.
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import (
    bench_model,
    block,
    decoder_flops_per_setting,
    figure,
    machine,
    matmul_roofline,
    roofline_rows,
    standalone_main,
)
from neuraleq_jax import generation
from neuraleq_jax.model import networks, paramspace, response

BATCHES = (1, 16, 256, 4096, 65_536, 262_144, 1_048_576)
QUICK_BATCHES = (1, 256, 4096)
TARGET_FRACTION = 0.60  # goal: batched generation >= 60 % of the roofline at batch >= 64k
TARGET_BATCH = 65_536


def time_adaptive(fn, *, budget_s: float = 1.0, max_repeats: int = 50) -> dict:
    """Best and median wall time of ``fn()`` after a warm-up (compile) call; as many repeats as
    fit in ``budget_s`` by a second call's time (at least 5)."""
    start = time.perf_counter()
    block(fn())
    first = time.perf_counter() - start
    start = time.perf_counter()
    block(fn())
    second = time.perf_counter() - start
    repeats = int(min(max(5, budget_s / max(second, 1e-6)), max_repeats))
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        block(fn())
        samples.append(time.perf_counter() - start)
    return {
        "best_s": float(np.min(samples)),
        "median_s": float(np.median(samples)),
        "repeats": repeats,
        "first_call_s": first,
    }


def _generate_call(params, config, word_model, batch: int):
    n_words = word_model["centres_WxL"].shape[0]
    weights = jax.device_put(generation.one_hot(np.arange(batch) % n_words, n_words))
    keys = jax.random.split(jax.random.key(1), batch)
    return lambda: generation.generate(params, config, word_model, weights, keys)


# ------------------------------------------------------------------ decoder variants (instruments)


def _layer_norm(h, p):
    mean = jnp.mean(h, -1, keepdims=True)
    var = jnp.mean(h * h, -1, keepdims=True) - mean * mean
    return (h - mean) * jax.lax.rsqrt(jnp.maximum(var, 0.0) + 1e-6) * p["scale"] + p["bias"]


def decoder_with_matmul_dtype(params, config, latent_NxL, dtype):
    """The residual decoder written out in jnp with matmul operands in ``dtype`` and float32
    accumulation and elementwise maths: a measuring instrument for bfloat16 (checked against
    ``networks.decode`` in float32 before use)."""

    def dense(x, p):
        return (
            jnp.dot(x.astype(dtype), p["kernel"].astype(dtype), preferred_element_type=jnp.float32)
            + p["bias"]
        )

    d, x = params["decoder"], latent_NxL
    for i in range(len(config.decoder_widths)):
        block_params = d[f"ResidualBlock_{i}"]
        h = jax.nn.gelu(_layer_norm(dense(x, block_params["Dense_0"]), block_params["LayerNorm_0"]))
        h = _layer_norm(dense(h, block_params["Dense_1"]), block_params["LayerNorm_1"])
        x = jax.nn.gelu(h + (dense(x, block_params["skip"]) if "skip" in block_params else x))
    heads = [jnp.tanh(dense(x, d[f"{field}_head"])) for field in ("gain", "freq", "q")]
    return jnp.stack(heads, -1).reshape(x.shape[0], config.n_params)


def tiled(decode_fn, tile: int):
    """``lax.map`` of ``decode_fn`` over row tiles: each tile's activations stay in cache."""

    def run(params, latent_NxL):
        n, dims = latent_NxL.shape
        out = jax.lax.map(lambda x: decode_fn(params, x), latent_NxL.reshape(n // tile, tile, dims))
        return out.reshape(n, -1)

    return jax.jit(run)


def decoder_variants(params, config, batch: int, flops: float, roofline: float) -> dict:
    latents = jnp.tanh(jax.random.normal(jax.random.key(2), (batch, config.latent_dim)))

    def flax_decode(p, x):
        return networks.decode(p, config, x)

    def f32(p, x):
        return decoder_with_matmul_dtype(p, config, x, jnp.float32)

    def bf16(p, x):
        return decoder_with_matmul_dtype(p, config, x, jnp.bfloat16)

    reference = np.asarray(jax.jit(flax_decode)(params, latents[:1024]))
    mismatch = float(np.max(np.abs(np.asarray(jax.jit(f32)(params, latents[:1024])) - reference)))
    if mismatch > 1e-4:
        raise RuntimeError(
            f"the jnp decoder differs from networks.decode by {mismatch}; update "
            f"decoder_with_matmul_dtype to the model"
        )
    candidates = {"jit_whole_batch": jax.jit(flax_decode)}
    for tile in (1024, 2048, 4096):
        if batch % tile == 0:
            candidates[f"lax_map_tile_{tile}"] = tiled(flax_decode, tile)
    if batch % 2048 == 0:
        candidates["lax_map_tile_2048_bf16"] = tiled(bf16, 2048)
    out = {}
    for name, fn in candidates.items():
        timing = time_adaptive(lambda fn=fn: fn(params, latents))
        rate = flops * batch / timing["best_s"]
        out[name] = {
            **timing,
            "settings_per_s": batch / timing["best_s"],
            "decoder_flops_per_s": rate,
            "fraction_of_roofline": rate / roofline,
        }
    return out


def bf16_response_error(params, config, word_model, n: int) -> dict:
    """Largest and typical dB error of the response when the decoder's matmuls use bfloat16."""
    z = jax.random.normal(jax.random.key(3), (n, config.latent_dim))
    latents = jnp.clip(
        word_model["global_centre_L"] + z @ word_model["global_spread_LxL"].T, -1.0, 1.0
    )

    @functools.partial(jax.jit, static_argnums=2)
    def settings(p, x, use_bf16):
        dtype = jnp.bfloat16 if use_bf16 else jnp.float32
        unit = decoder_with_matmul_dtype(p, config, x, dtype)
        return paramspace.clip(paramspace.denormalize(unit))

    exact = settings(params, latents, False)
    approx = settings(params, latents, True)
    respond = jax.jit(response.magnitude_response_db)
    error_NxF = np.abs(np.asarray(respond(exact)) - np.asarray(respond(approx)))
    gains = paramspace.DEFAULT_LAYOUT.gain_indices
    return {
        "settings": n,
        "max_abs_db": float(error_NxF.max()),
        "p99_per_setting_max_db": float(np.percentile(error_NxF.max(axis=1), 99)),
        "mean_abs_db": float(error_NxF.mean()),
        "max_rms_db": float(np.sqrt((error_NxF**2).mean(axis=1)).max()),
        "max_gain_error_db": float(np.max(np.abs(np.asarray(exact - approx)[:, gains]))),
    }


# ------------------------------------------------------------------ the benchmark


def run(quick: bool = False) -> dict:
    params, config, word_model = bench_model(epochs=0 if quick else 50)
    flops = float(decoder_flops_per_setting(config))
    rows = roofline_rows(quick)
    roof_before = matmul_roofline(config, rows)

    curve = []
    for batch in QUICK_BATCHES if quick else BATCHES:
        timing = time_adaptive(
            _generate_call(params, config, word_model, batch), budget_s=0.5 if quick else 2.0
        )
        curve.append(
            {
                "batch": batch,
                **timing,
                "settings_per_s": batch / timing["best_s"],
                "per_setting_s": timing["best_s"] / batch,
                "decoder_flops_per_s": flops * batch / timing["best_s"],
            }
        )
    variant_batch = 8192 if quick else TARGET_BATCH
    roof_after = matmul_roofline(config, rows)
    roofline = max(roof_before["roofline_flops_per_s"], roof_after["roofline_flops_per_s"])
    numpy_roofline = max(roof_before["numpy_flops_per_s"], roof_after["numpy_flops_per_s"])
    for point in curve:
        point["fraction_of_roofline"] = point["decoder_flops_per_s"] / roofline
        point["fraction_of_numpy_roofline"] = point["decoder_flops_per_s"] / numpy_roofline
    variants = decoder_variants(params, config, variant_batch, flops, roofline)
    accuracy = bf16_response_error(params, config, word_model, 4096 if quick else 65_536)

    figures = [
        figure(
            "matmul roofline, decoder shapes (NumPy)",
            max(roof_before["numpy_flops_per_s"], roof_after["numpy_flops_per_s"]),
            "FLOP/s",
        ),
        figure(
            "matmul roofline, decoder shapes (jax)",
            max(roof_before["jax_flops_per_s"], roof_after["jax_flops_per_s"]),
            "FLOP/s",
        ),
        figure(
            "generate, time per setting at batch 1",
            curve[0]["best_s"],
            "s",
            target=0.80e-3,
            goal="<=",
            source="seed 0.80 ms per setting",
        ),
    ]
    for point in curve:
        if point["batch"] >= TARGET_BATCH or point is curve[-1]:
            target = TARGET_FRACTION if point["batch"] >= TARGET_BATCH else None
            figures.append(
                figure(
                    f"generate, fraction of roofline (batch {point['batch']})",
                    point["fraction_of_roofline"],
                    "fraction",
                    target=target,
                    goal=">=" if target else None,
                    source="issue: >= 60 % at batch >= 64k" if target else "",
                )
            )
            if target:
                figures.append(
                    figure(
                        f"generate, fraction of the NumPy roofline (batch {point['batch']})",
                        point["fraction_of_numpy_roofline"],
                        "fraction",
                        target=target,
                        goal=">=",
                        source="issue: >= 60 % of the same-run NumPy matmul roofline",
                    )
                )
    figures.append(
        figure(
            f"generate, settings/s (batch {curve[-1]['batch']})",
            curve[-1]["settings_per_s"],
            "settings/s",
        )
    )
    for name, v in variants.items():
        figures.append(
            figure(
                f"decoder {name}, fraction of roofline (batch {variant_batch})",
                v["fraction_of_roofline"],
                "fraction",
            )
        )
    figures.append(
        figure("bfloat16 matmuls: max response error vs float32", accuracy["max_abs_db"], "dB")
    )
    return {
        "benchmark": "throughput",
        "machine": machine(),
        "quick": quick,
        "model": {
            "trained_epochs": 0 if quick else 50,
            "decoder_widths": list(config.decoder_widths),
            "latent_dim": config.latent_dim,
            "decoder_matmul_flops_per_setting": flops,
        },
        "roofline": {"flops_per_s": roofline, "before": roof_before, "after": roof_after},
        "generate": curve,
        "decoder_variants": variants,
        "bf16_accuracy": accuracy,
        "figures": figures,
    }


def main(argv=None):
    return standalone_main(
        run, "throughput", __doc__, argv, summary=lambda result: result["figures"]
    )


if __name__ == "__main__":
    main()
