from __future__ import annotations

import pytest

from vlm_tui.core.host.hostlist import HostlistError, expand_hostlist


@pytest.mark.parametrize(
    ("text", "hosts"),
    [
        ("gpu-node-0", ["gpu-node-0"]),
        ("gpu-[07-08]", ["gpu-07", "gpu-08"]),
        ("a[01-03,05],b7", ["a01", "a02", "a03", "a05", "b7"]),
        ("n[8-11]", ["n8", "n9", "n10", "n11"]),
        ("n[098-101]", ["n098", "n099", "n100", "n101"]),
        ("r[1-2]n[1-2]", ["r1n1", "r1n2", "r2n1", "r2n2"]),
        ("x1, y[2-3] ,z", ["x1", "y2", "y3", "z"]),
        ("node.cluster.invalid", ["node.cluster.invalid"]),
    ],
)
def test_node_lists_expand_in_order(text: str, hosts: list[str]) -> None:
    assert expand_hostlist(text) == hosts


@pytest.mark.parametrize(
    "text", ["", "gpu-[07-08", "gpu-07]", "gpu-[a-b]", "gpu-[9-2]", "n[1-99999999]", "n[]"]
)
def test_malformed_node_lists_are_refused(text: str) -> None:
    with pytest.raises(HostlistError):
        expand_hostlist(text)
