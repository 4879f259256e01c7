"""Test setup: 8 simulated CPU devices, configured before jax is first used."""

import os
from pathlib import Path

import jax
import pytest

jax.config.update("jax_num_cpu_devices", 8)

SHARED_DATA = Path(os.environ.get(
    "NEURALEQ_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
SAFE_CSV = SHARED_DATA / "safe-db" / "SAFEEqualiserUserData.csv"


@pytest.fixture(scope="session")
def safe_csv_path() -> Path:
    """Path of the shared SAFE-DB CSV; tests using it skip where the shared folder is absent."""
    if not SAFE_CSV.is_file():
        pytest.skip(f"SAFE-DB not found at {SAFE_CSV} (it lives in ../shared/data/safe-db beside "
                    "the repository; set NEURALEQ_SHARED_DATA to its parent folder)")
    return SAFE_CSV
