"""A crowd vocabulary end to end: `--config audealize` on a small subset of Audealize's words
(one tiny training), then the facade (describe, word_info, word_map), the CLI (words, describe,
plot --map) and the crowd evaluation."""

import json

import numpy as np
import pytest
from conftest import AUDEALIZE_JSON, require_shared

from neuraleq_jax import cli, presets
from neuraleq_jax.data import vocabulary
from neuraleq_jax.evaluation import crowd as crowd_eval
from neuraleq_jax.model import paramspace
from neuraleq_jax.system import NeuralEQMorphingSystem
from neuraleq_jax.training import checkpoints

WORDS = (
    "warm",
    "bright",
    "muddy",
    "tinny",
    "airy",
    "heavy",
    "harsh",
    "frío",
    "brillante",
    "calm",
    "soft",
    "loud",
)
# one device, as on a user's CPU: this file is about the crowd vocabulary, not sharding
TINY = [
    "--quiet",
    "--train.devices=1",
    "--train.epochs=4",
    "--train.batch_size=16",
    "--data.per_word=8",
    "--model.encoder_widths=32,32",
    "--model.decoder_widths=32,32",
    "--model.mlp_width=32",
    "--model.embedding_dim=32",
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    require_shared(AUDEALIZE_JSON, "Audealize's curves")
    folder = tmp_path_factory.mktemp("crowd")
    document = json.loads(AUDEALIZE_JSON.read_text(encoding="utf-8"))
    subset = [e for e in document if e["word"] in WORDS]
    path = folder / "eqdescriptors.json"
    path.write_text(json.dumps(subset, ensure_ascii=False), encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NEURALEQ_JAX_FIT_CACHE", str(folder / "fits"))
        patch.setenv("NEURALEQ_JAX_CACHE_DIR", "off")
        assert (
            cli.main(
                [
                    "train",
                    "--config",
                    "audealize",
                    f"--data.path={path}",
                    "--workdir",
                    str(folder / "run"),
                    *TINY,
                ]
            )
            == 0
        )
    return folder / "run"


@pytest.fixture(scope="module")
def system(workdir):
    return NeuralEQMorphingSystem.load(workdir)


def test_every_word_of_the_file_is_in_the_vocabulary(system):
    assert sorted(system.vocabulary) == sorted(WORDS)
    for word in system.vocabulary:
        settings = system.generate_eq_from_semantic(word, 3, as_array=True)
        assert settings.shape == (3, 15)


def test_a_words_own_centre_is_described_by_that_word_first(system):
    centres = system.centre_settings()
    described = system.describe(centres, k=3)
    assert [row[0][0] for row in described] == list(system.vocabulary)
    assert all(row[0][1] < 1e-3 and row[0][1] <= row[1][1] <= row[2][1] for row in described)
    one = system.describe(dict(zip(system.layout.param_names, centres[2].tolist())), k=20)
    assert one[0][0] == system.vocabulary[2] and len(one) == len(WORDS)
    with pytest.raises(ValueError, match="outside its allowed range"):
        system.describe(np.full(15, 1e6))
    with pytest.raises(ValueError, match="k must be"):
        system.describe(centres[0], k=0)


def test_word_info_from_the_bundle(system):
    info = system.word_info("Frío")
    assert info["word"] == "frío" and info["lang"] == "Español"
    (source,) = info["sources"]
    assert source["name"] == "audealize" and source["settings"] == 8
    warm = system.word_info("warm")
    assert warm["contributors"] == 122 and 0.8 < warm["agreement"] < 0.83
    assert warm["confidence"] == pytest.approx(vocabulary.confidence(warm["agreement"], 122))
    with pytest.raises(ValueError, match="unknown word 'wram'.*Did you mean 'warm'"):
        system.word_info("wram")


def test_word_map_is_stored_in_the_bundle(system, workdir):
    stored = checkpoints.load_bundle(workdir).word_model[vocabulary.WORD_MAP_KEY]
    np.testing.assert_array_equal(system.word_map(), stored)
    np.testing.assert_allclose(
        stored, vocabulary.word_map(system.word_model["centre_responses_WxF"]), rtol=1e-5, atol=1e-6
    )
    assert stored.shape == (len(WORDS), 2)


def test_cli_words_describe_and_map(workdir, tmp_path, capsys, system):
    assert cli.main(["words", "--workdir", str(workdir)]) == 0
    out = capsys.readouterr().out
    assert "frío" in out and f"{len(WORDS)} of {len(WORDS)} words" in out
    assert cli.main(["words", "b", "--workdir", str(workdir), "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted(i["word"] for i in listed) == ["bright", "brillante"]
    assert cli.main(["words", "zz", "--workdir", str(workdir)]) == 2
    preset = tmp_path / "muddy.json"
    centre = system.centre_settings()[system.vocabulary.index("muddy")]
    presets.write_preset(preset, centre[None], format="json", names=["mine"])
    assert cli.main(["describe", str(preset), "-k", "2", "--workdir", str(workdir)]) == 0
    assert capsys.readouterr().out.startswith("mine: muddy (0.00 dB)")
    png = tmp_path / "map.png"
    assert cli.main(["plot", "--map", "--out", str(png), "--workdir", str(workdir)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_crowd_evaluation_runs_on_the_subset(system, workdir):
    config = json.loads((workdir / "config.json").read_text())
    figures = crowd_eval.evaluate_crowd(system, config, n_variations=8, steps=9)
    source = figures["sources"]["audealize"]
    assert source["words"] == len(WORDS) and len(source["worst"]) == 10
    assert -1 <= figures["map_spearman"] <= 1 and figures["morph_endpoint_max_db"] < 0.5
    assert {row["key"] for row in crowd_eval.check_goals(figures)} >= {
        "audealize_fidelity_r_median",
        "audealize_fidelity_rel_median",
    }


def test_crowd_dataset_fuses_sources_by_contributors(workdir, safe_csv_path, monkeypatch):
    from neuraleq_jax.data import crowd
    from neuraleq_jax.data.safedb import load_safe_db

    monkeypatch.setenv("NEURALEQ_JAX_FIT_CACHE", str(workdir.parent / "fits"))  # fitted above
    subset = workdir.parent / "eqdescriptors.json"
    fused = crowd.crowd_dataset(subset, safe_csv_path, per_word=8, min_examples=5)
    safe, _ = load_safe_db(safe_csv_path, layout="spec", min_examples=5)
    adz_words = [w for w in fused.vocabulary if w in WORDS]
    assert fused.vocabulary[: len(adz_words)] == tuple(adz_words)  # Audealize's order first
    assert set(fused.vocabulary) == set(adz_words) | set(safe.vocabulary)
    assert fused.source_names == ("audealize", "safe")
    np.testing.assert_array_equal(np.bincount(fused.word_ids), fused.source_settings.sum(1))
    warm = fused.vocabulary.index("warm")
    a_count, s_count = fused.source_settings[warm]
    a_people, s_people = fused.source_contributors[warm]
    assert a_people == 122 and s_people == len(
        set(safe.contributors[safe.word_ids == safe.vocabulary.index("warm")])
    )
    assert s_count / a_count == pytest.approx(s_people / a_people, abs=0.5 / a_count)
    only_safe = [w for w in safe.vocabulary if w not in WORDS][0]
    row = fused.vocabulary.index(only_safe)
    assert fused.source_settings[row, 0] == 0 and fused.source_contributors[row, 0] == -1
    assert 0 <= fused.source_agreement[row, 1] <= 1
    paramspace.validate(fused.settings)  # SPEC's ranges (SAFE's wider sliders clipped)
