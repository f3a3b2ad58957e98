from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def demo_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One demo model cache for the whole session, never the user's own cache folder."""
    return tmp_path_factory.mktemp("demo-cache")
