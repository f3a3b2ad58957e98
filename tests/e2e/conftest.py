from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.slurm_cluster import SlurmCluster, start_cluster, stop_cluster, why_unavailable


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A real two-node SLURM on 127.0.0.1 (tests/slurm_cluster.py), started once a worker;
    skipped, with the reason printed, only where its packages cannot be installed."""
    reason = why_unavailable()
    if reason is not None:
        print(f"skipping SLURM tests: {reason}")
        pytest.skip(reason)
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        stop_cluster(cluster)
