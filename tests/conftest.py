"""Test setup: 8 simulated CPU devices and a compilation cache shared with child processes,
configured before jax is first used; one tiny trained model for the whole session."""

import os
from pathlib import Path

import jax
import pytest

jax.config.update("jax_num_cpu_devices", 8)


def _compilation_cache() -> str:
    """The suite's persistent compilation cache, also named in the environment, so that the CLI
    and training processes the tests start load the programs that this process or an earlier
    child compiled instead of compiling them again (a fresh clone, as in CI, starts it empty).
    It lives in pytest's cache folder, so ``pytest --cache-clear`` runs cold; set
    NEURALEQ_JAX_CACHE_DIR to a folder to use that one instead."""
    chosen = os.environ.get("NEURALEQ_JAX_CACHE_DIR", "")
    if chosen and chosen.lower() != "off":
        return chosen
    return str(Path(__file__).resolve().parents[1] / ".pytest_cache" / "d" / "neuraleq-xla")


XLA_CACHE = _compilation_cache()
# the JAX_* names configure jax in every child; NEURALEQ_JAX_CACHE_DIR keeps train.setup_jax
# (in this process and in children) on the same folder instead of the user's cache
os.environ.update(
    NEURALEQ_JAX_CACHE_DIR=XLA_CACHE,
    JAX_COMPILATION_CACHE_DIR=XLA_CACHE,
    JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
    JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1",
)
jax.config.update("jax_compilation_cache_dir", XLA_CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
# the curve fits of crowd vocabularies are cached beside it rather than in the user's cache
os.environ.setdefault("NEURALEQ_JAX_FIT_CACHE", str(Path(XLA_CACHE).parent / "neuraleq-fits"))

SHARED_DATA = Path(
    os.environ.get("NEURALEQ_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
SAFE_CSV = SHARED_DATA / "safe-db" / "SAFEEqualiserUserData.csv"

# the session's tiny model: the synthetic preset's code path at a size that trains in seconds
TINY_TRAIN_ARGS = (
    "--train.epochs=2",
    "--data.per_word=20",
    "--model.encoder_widths=32,32",
    "--model.decoder_widths=32,32",
    "--model.mlp_width=32",
    "--model.embedding_dim=32",
    "--quiet",
)


@pytest.fixture(scope="session")
def safe_csv_path() -> Path:
    """Path of the shared SAFE-DB CSV; tests using it skip where the shared folder is absent."""
    if not SAFE_CSV.is_file():
        pytest.skip(
            f"SAFE-DB not found at {SAFE_CSV} (it lives in ../shared/data/safe-db beside "
            "the repository; set NEURALEQ_SHARED_DATA to its parent folder)"
        )
    return SAFE_CSV


@pytest.fixture(scope="session")
def tiny_train_args() -> list[str]:
    """The ``neuraleq train`` options that :func:`tiny_workdir` was trained with."""
    return list(TINY_TRAIN_ARGS)


@pytest.fixture(scope="session")
def tiny_workdir(tmp_path_factory, tiny_train_args) -> Path:
    """A finished ``neuraleq train`` workdir of a tiny synthetic model, trained once per session.

    Shared by every test that needs a trained model on disk: treat it as read-only, and copy it
    (``shutil.copytree``) to damage, retrain or write into it."""
    from neuraleq_jax import cli

    path = tmp_path_factory.mktemp("tiny_model") / "run"
    assert cli.main(["train", "--workdir", str(path), *tiny_train_args]) == 0
    assert (path / "bundle").is_dir() and (path / "config.json").is_file()
    return path


@pytest.fixture(scope="session")
def tiny_system(tiny_workdir):
    """:func:`tiny_workdir` loaded through the facade once per session, so that its serving
    executables compile once for every test file that only needs some trained model.

    Shared: give every call a ``seed`` (an unseeded call advances the system's call counter for
    the tests that follow), and load a model of your own to change or save it."""
    from neuraleq_jax.system import NeuralEQMorphingSystem

    return NeuralEQMorphingSystem.load(tiny_workdir)


@pytest.fixture(scope="session")
def synthetic_preset_fit():
    """The synthetic preset (SPEC's budget: default widths, 50 epochs) trained once per session
    on one device, on the training part of its own split (build_datasets' split of the
    70-per-word set, seed 0). Tests that judge what that preset learns share it.

    Returns a dict: ``train``, ``validation``, ``test`` (EQDatasets), ``model_config``,
    ``train_config`` and ``result`` (training.fit's FitResult); treat it as read-only."""
    import dataclasses

    from neuraleq_jax import config, data, synthetic, training

    preset = config.load_preset("synthetic")
    train, validation, test = data.stratified_split(
        synthetic.make_synthetic(preset.data.per_word, seed=preset.data.data_seed),
        preset.data.split_fractions,
        seed=preset.data.split_seed,
    )
    train_config = dataclasses.replace(preset.train, devices=1)
    return dict(
        train=train,
        validation=validation,
        test=test,
        model_config=preset.model,
        train_config=train_config,
        result=training.fit(train, preset.model, train_config),
    )
