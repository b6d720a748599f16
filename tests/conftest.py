from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests must not re-exec or spawn worker processes unless they ask to.
os.environ.setdefault("DEPTHFORGE_NO_MALLOC_TUNING", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DEPTHFORGE_SHARED", REPO.parent / "shared"))
FIXTURES = SHARED / "fixtures"
REALDATA = SHARED / "realdata"


def need(path: Path) -> Path:
    """Skip the calling test when a file from ../shared is absent."""
    if not path.exists():
        pytest.skip(f"{path} not present (../shared is absent)")
    return path


@pytest.fixture
def fixtures() -> Path:
    return need(FIXTURES)


@pytest.fixture
def realdata() -> Path:
    return need(REALDATA)
