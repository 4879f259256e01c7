"""Test setup, before jax is first used: 8 simulated CPU devices, programs compiled without
XLA's backend optimisations, a compilation cache shared with the workers and child processes;
one tiny trained model for the whole run; how pytest-xdist hands files to its workers."""

import os
import shutil
from pathlib import Path

import jax
import pytest

jax.config.update("jax_num_cpu_devices", 8)


def _optimize_programs() -> bool:
    """Whether XLA optimises the suite's programs as it does a user's (NEURALEQ_TEST_OPTIMIZED=1).

    By default it does not: the tests run small arrays through many programs, so compiling, not
    running, is most of their cost, and XLA's backend optimisations (LLVM's passes) are a third of
    the suite's CPU time. The code path and the HLO are the same; only the generated machine code
    differs, which may move float32 round-off as another CPU would, and every tolerance of the
    suite is already set to hold across CPUs."""
    return os.environ.get("NEURALEQ_TEST_OPTIMIZED", "") not in ("", "0")


if not _optimize_programs():
    # in the environment too, so that the processes the tests start compile the same way
    os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "1"
    jax.config.update("jax_disable_most_optimizations", True)


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
AUDEALIZE_JSON = SHARED_DATA / "audealize" / "eqdescriptors.json"
SOCIALFX_CSV = SHARED_DATA / "socialfx" / "eq_contributions.csv"


def require_shared(path: Path, what: str) -> Path:
    """``path``, a file of the shared data; skip the test, saying where it is looked for, where
    it is absent (a user's clone has no ../shared; CI has it)."""
    if not path.is_file():
        pytest.skip(
            f"{what} not found at {path} (it lives in ../shared/data/{path.parent.name} beside "
            "the repository; set NEURALEQ_SHARED_DATA to its parent folder)"
        )
    return path


# the session's tiny model: the synthetic preset's code path at a size that trains in seconds,
# on one device as on a user's CPU (sharded training has tests of its own; eight simulated
# devices on a 2-core machine only add compiling and collectives to every test that needs a model)
TINY_TRAIN_ARGS = (
    "--train.devices=1",
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
    return require_shared(SAFE_CSV, "SAFE-DB")


@pytest.fixture(scope="session")
def tiny_train_args() -> list[str]:
    """The ``neuraleq train`` options that :func:`tiny_workdir` was trained with."""
    return list(TINY_TRAIN_ARGS)


@pytest.fixture(scope="session")
def tiny_workdir(tmp_path_factory, tiny_train_args) -> Path:
    """A finished ``neuraleq train`` workdir of a tiny synthetic model, trained once per run.

    Shared by every test that needs a trained model on disk: treat it as read-only, and copy it
    (``shutil.copytree``) to damage, retrain or write into it."""
    from neuraleq_jax import cli

    def train(path: Path) -> None:
        assert cli.main(["train", "--workdir", str(path), *tiny_train_args]) == 0

    path = built_once_per_run(tmp_path_factory, "tiny_model", train)
    assert (path / "bundle").is_dir() and (path / "config.json").is_file()
    return path


def built_once_per_run(tmp_path_factory, name: str, build) -> Path:
    """``build(folder)`` once per test run, also when pytest-xdist runs several workers: the
    first worker to get here builds in the run's shared temporary folder while the others wait
    on a file lock, then every worker uses that folder (read-only). A lone process builds in its
    own temporary folder."""
    import fcntl

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the workers' folders (popen-gw0, …) sit side by side in it
    folder, complete = root / name, root / f"{name}.complete"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not complete.is_file():
            shutil.rmtree(folder, ignore_errors=True)  # what a worker that failed left
            build(folder)
            complete.write_text("")
    return folder


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
    ``train_config`` and ``result`` (trainer.fit's FitResult); treat it as read-only."""
    import dataclasses

    from neuraleq_jax import config
    from neuraleq_jax.data import synthetic
    from neuraleq_jax.data.dataset import stratified_split
    from neuraleq_jax.training import trainer

    preset = config.load_preset("synthetic")
    train, validation, test = stratified_split(
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
        result=trainer.fit(train, preset.model, train_config),
    )


# ------------------------------------------------------------------ parallel runs (pytest-xdist)
# README's `pytest -q` runs the files on several worker processes (pyproject's addopts: -n auto).
# A worker takes whole files, so that module fixtures are built once; files that share a costly
# session fixture go to one worker together; and the costliest files are handed out first, so
# that the workers finish together instead of one waiting on a long file picked up last.
SAME_WORKER = {  # file → group: these files share synthetic_preset_fit (a 50-epoch training)
    "test_generation.py": "synthetic preset",
    "test_trainer.py": "synthetic preset",
}
COSTLY_FIRST = (  # by CPU seconds of a whole-suite run, costliest first; the rest follow
    "test_trainer.py",
    "test_generation.py",
    "test_readme.py",
    "test_system.py",
    "test_experiment.py",
    "test_crowd.py",
    "test_morph.py",
    "test_safe_cv.py",
    "test_explore.py",
    "test_cli_faults.py",
    "test_cli.py",
    "test_web.py",
    "test_networks.py",
)
MAX_WORKERS = 4  # each worker holds its own compiled programs and trained fixtures (GBs)


def pytest_collection_modifyitems(items):
    """Costly files first (stable: tests keep their order within a file)."""
    rank = {name: i for i, name in enumerate(COSTLY_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


class _XdistHooks:
    """Registered only where pytest-xdist is loaded: pytest refuses hooks it does not know."""

    @staticmethod
    def pytest_xdist_auto_num_workers(config) -> int:
        """``-n auto``: one worker per usable core, at most MAX_WORKERS."""
        usable = (
            len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        )
        return max(1, min(usable or 1, MAX_WORKERS))

    @staticmethod
    def pytest_xdist_make_scheduler(config, log):
        """Whole files to a worker (SAME_WORKER's files together), in COSTLY_FIRST's order."""
        from xdist.scheduler import LoadScopeScheduling

        class WholeFiles(LoadScopeScheduling):
            def _split_scope(self, nodeid: str) -> str:
                path = nodeid.split("::", 1)[0]
                return SAME_WORKER.get(Path(path).name, path)

        config.option.loadscopereorder = False  # keep COSTLY_FIRST's order, not test counts
        return WholeFiles(config, log)


def pytest_addoption(parser, pluginmanager):
    # the earliest hook a conftest gets: before xdist reads ``-n auto``
    if pluginmanager.hasplugin("xdist"):
        pluginmanager.register(_XdistHooks(), "neuraleq-xdist-hooks")
