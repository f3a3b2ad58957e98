"""The training stack `make setup` installed: what a family needs loads with its torch."""

from __future__ import annotations

import subprocess
import sys

from vlm_tui.core.request.family_packages import torchvision_mismatch


def test_the_project_installs_a_torchvision_that_loads_with_its_torch() -> None:
    # The real pair `make setup` installed, imported for real in a child (it imports torch).
    assert torchvision_mismatch() is None
    done = subprocess.run(
        [sys.executable, "-c", "import torch, torchvision.ops as o; print(o.nms.__name__)"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.strip() == "nms", done.stderr[-2000:]
