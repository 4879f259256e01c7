"""Smoke tests of the benchmark runner's machinery and JSON schema (no timing is asserted)."""

import json
import sys
import types
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neuraleq_jax.model import networks

# benchmarks/ is a folder of the repository, not part of the installed package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import common, run


@pytest.fixture
def fake_benchmarks(monkeypatch):
    """Two instant benchmarks, ``fake`` (figures with targets) and ``broken`` (raises)."""
    calls = []

    def fake_run(quick=False):
        calls.append(quick)
        return {
            "benchmark": "fake",
            "figures": [
                common.figure("latency", 2e-3, "s", target=1e-3, goal="<=", source="test"),
                common.figure("fraction", 0.5, "fraction", target=0.4, goal=">=", source="test"),
                common.figure("settings/s", 123.0, "settings/s"),
            ],
        }

    def broken_run(quick=False):
        raise RuntimeError("this benchmark is broken on purpose")

    monkeypatch.setitem(sys.modules, "benchmarks.bench_fake", types.SimpleNamespace(run=fake_run))
    monkeypatch.setitem(
        sys.modules, "benchmarks.bench_broken", types.SimpleNamespace(run=broken_run)
    )
    monkeypatch.setattr(run, "BENCHMARKS", run.BENCHMARKS + ("fake", "broken"))
    return calls


def _only_json(directory):
    files = sorted(directory.glob("*.json"))
    assert len(files) == 1, files
    return files[0], json.loads(files[0].read_text())


def test_quick_run_writes_one_json_with_schema(tmp_path, fake_benchmarks, capsys):
    assert run.main(["fake", "--quick", "--cpu-devices", "0", "--out", str(tmp_path)]) == 0
    assert fake_benchmarks == [True]
    path, record = _only_json(tmp_path)
    assert path.name.startswith("run_") and path.name.endswith("_cpu_quick.json")
    assert record["schema"] == run.SCHEMA and record["quick"] is True
    assert record["jax"] == jax.__version__
    assert record["devices"] == [str(d) for d in jax.devices()]
    for key in ("date", "platform", "cpu_count", "backend"):
        assert key in record["machine"]
    assert record["benchmarks"]["fake"]["status"] == "ok"
    assert {"wall_s", "loadavg_before", "loadavg_after"} <= set(record["benchmarks"]["fake"])
    latency, fraction, rate = record["figures"]
    # ratio = figure / target; goal "<=" is met when the ratio is <= 1, ">=" when >= 1
    assert latency["ratio"] == pytest.approx(2.0) and latency["meets"] is False
    assert fraction["ratio"] == pytest.approx(1.25) and fraction["meets"] is True
    assert rate["ratio"] is None and rate["meets"] is None
    assert all(f["benchmark"] == "fake" for f in record["figures"])
    table = capsys.readouterr().out
    assert "latency" in table and "2 ms" in table and "NO" in table and "50.0 %" in table


def test_no_save_writes_nothing_and_a_failure_does_not_hide_the_others(
    tmp_path, fake_benchmarks, capsys
):
    status = run.main(
        ["broken", "fake", "--quick", "--no-save", "--cpu-devices", "0", "--out", str(tmp_path)]
    )
    assert status == 1
    assert list(tmp_path.iterdir()) == []
    assert fake_benchmarks == [True]
    out = capsys.readouterr().out
    assert "broken on purpose" in out and "FAILED: broken" in out and "latency" in out


def test_unknown_benchmark_is_refused(capsys):
    with pytest.raises(SystemExit) as raised:
        run.main(["no_such_benchmark", "--no-save"])
    assert raised.value.code == 2
    assert "known:" in capsys.readouterr().err


def test_real_data_benchmark_quick(tmp_path):
    record = run.run_suite(["data"], quick=True, log=lambda *a, **k: None)
    entry = record["benchmarks"]["data"]
    assert entry["status"] == "ok", entry.get("error")
    names = {f["name"] for f in record["figures"]}
    assert "synthetic settings/s" in names
    assert all(f["value"] is not None and f["value"] > 0 for f in record["figures"])


def test_targets_table_picks_paths_out_of_results():
    figures = run.collect_figures("training", {"epochs_50": {"train_s": 1.2}})
    by_source = {f["source"]: f for f in figures if f["path"] == "epochs_50.train_s"}
    assert by_source["seed 11.9 s"]["ratio"] == pytest.approx(1.2 / 11.9)
    assert by_source["issue: <= 0.6 s after compile"]["meets"] is False
    missing = [f for f in figures if f["path"] == "epochs_50.compile_s"]
    assert missing and missing[0]["value"] is None and missing[0]["ratio"] is None


@pytest.mark.parametrize(
    "config",
    [networks.ModelConfig(), networks.ModelConfig(latent_dim=8, decoder_widths=(16, 16, 48))],
)
def test_decoder_flop_count(config):
    # shapes are all this needs: eval_shape traces the initialiser without compiling it
    params = jax.eval_shape(lambda key: networks.init_params(config, key), jax.random.key(0))
    kernels = [
        leaf
        for path, leaf in jax.tree_util.tree_leaves_with_path(params["decoder"])
        if "kernel" in jax.tree_util.keystr(path)
    ]
    # one multiply-add per weight per setting: the count must equal twice the decoder's weights
    assert common.decoder_flops_per_setting(config) == 2 * sum(k.size for k in kernels)
    # and XLA's own count (which adds the elementwise work) is at most a little larger
    rows = 512
    compiled = (
        jax.jit(lambda p, z: networks.decode(p, config, z))
        .lower(params, jnp.zeros((rows, config.latent_dim)))
        .compile()
    )
    analysis = compiled.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list) else analysis
    ratio = common.decoder_flops_per_setting(config) * rows / analysis["flops"]
    assert 0.6 < ratio <= 1.0


def test_model_round_trips_through_npz(tmp_path):
    config = networks.ModelConfig(latent_dim=4, decoder_widths=(8,), encoder_widths=(8,))
    # the model's parameter tree, filled with random values (running the initialiser eagerly
    # would compile each of its primitives, and would leave every bias zero)
    rng = np.random.default_rng(1)
    params = jax.tree.map(
        lambda leaf: jnp.asarray(rng.normal(size=leaf.shape).astype(leaf.dtype)),
        jax.eval_shape(lambda key: networks.init_params(config, key), jax.random.key(1)),
    )
    word_model = {"global_centre_L": np.arange(4, dtype=np.float32), "truncation": np.float32(2)}
    loaded_params, loaded_model = common.load_model(
        common.save_model(tmp_path / "m.npz", params, word_model)
    )
    assert jax.tree_util.tree_structure(loaded_params) == jax.tree_util.tree_structure(params)
    for a, b in zip(jax.tree_util.tree_leaves(loaded_params), jax.tree_util.tree_leaves(params)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded_model["global_centre_L"], word_model["global_centre_L"])
    assert float(loaded_model["truncation"]) == 2.0


def test_machine_names_the_cpu_and_only_vector_extensions_it_has():
    description = common.machine()
    assert description["cpu_model"]
    extensions = description["vector_extensions"]
    assert set(extensions) <= set(common.VECTOR_FLAGS)
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        lines = [
            line
            for line in cpuinfo.read_text().splitlines()
            if line.split(":")[0].strip() in ("flags", "Features")
        ]
        flags = set(lines[0].split(":", 1)[1].split()) if lines else set()
        assert set(extensions) == set(common.VECTOR_FLAGS) & flags


def test_tiled_word_model_repeats_words_along_every_word_axis():
    from benchmarks.bench_vocabulary import tiled_word_model

    rng = np.random.default_rng(0)
    model = {
        "centres_WxL": rng.normal(size=(3, 4)),
        "planes_WxWxK": rng.normal(size=(3, 3, 2)),
        "truncation": np.float32(2.5),
        "global_LxL": rng.normal(size=(4, 4)),
        "counts_W": np.arange(3),
    }
    tiled = tiled_word_model(model, 3, 7)
    words = [w % 3 for w in range(7)]
    np.testing.assert_array_equal(tiled["centres_WxL"], model["centres_WxL"][words])
    for a in range(7):
        for b in range(7):
            np.testing.assert_array_equal(
                tiled["planes_WxWxK"][a, b], model["planes_WxWxK"][words[a], words[b]]
            )
    np.testing.assert_array_equal(tiled["counts_W"], np.arange(7) % 3)
    np.testing.assert_array_equal(tiled["global_LxL"], model["global_LxL"])
    assert tiled["truncation"] == model["truncation"]


def test_a_benchmark_whose_requirement_is_missing_is_skipped_with_its_reason(
    tmp_path, fake_benchmarks, monkeypatch, capsys
):
    """README's plain install lacks the test extra (httpx2) and Audealize's file: such a
    benchmark is recorded as skipped with what it needs, the others run, and the exit
    status is 0 (1 stays for a benchmark that fails)."""

    def needs_an_extra(quick=False):
        common.require_module("no_such_module_for_the_test")
        raise AssertionError("ran without its requirement")

    monkeypatch.setitem(
        sys.modules, "benchmarks.bench_needy", types.SimpleNamespace(run=needs_an_extra)
    )
    monkeypatch.setattr(run, "BENCHMARKS", run.BENCHMARKS + ("needy",))
    argv = ["needy", "fake", "--quick", "--cpu-devices", "0", "--out", str(tmp_path)]
    assert run.main(argv) == 0
    _, record = _only_json(tmp_path)
    reason = "needs no_such_module_for_the_test (pip install -e '.[test]')"
    assert record["benchmarks"]["needy"]["status"] == "skipped"
    assert record["benchmarks"]["needy"]["reason"] == reason
    assert record["benchmarks"]["fake"]["status"] == "ok" and fake_benchmarks == [True]
    out = capsys.readouterr().out
    assert f"skipped: needy ({reason})" in out and "FAILED" not in out
    assert run.main(["needy", "broken", "--quick", "--no-save", "--cpu-devices", "0"]) == 1
