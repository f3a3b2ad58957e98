#!/bin/sh
# The system packages the SLURM tests start a real two-node cluster with (tests/slurm_cluster.py).
# Installed only where missing, only as root, only through apt-get; anywhere else this says why
# not and exits 0, and those tests skip with the same reason.
set -u
PACKAGES="slurmd slurmctld slurm-client munge"
COMMANDS="slurmd slurmctld sbatch munged"

missing=""
for command in $COMMANDS; do
    PATH="$PATH:/usr/sbin:/sbin" command -v "$command" >/dev/null 2>&1 || missing="$missing $command"
done
if [ -z "$missing" ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "SLURM tests will skip: missing$missing, and installing $PACKAGES needs root" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "SLURM tests will skip: missing$missing, and there is no apt-get to install $PACKAGES" >&2
    exit 0
fi
echo "installing $PACKAGES (missing:$missing)"
export DEBIAN_FRONTEND=noninteractive
# Installing starts no daemon here: tests start their own with their own config.
if apt-get update -qq && apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null; then
    exit 0
fi
echo "SLURM tests will skip: apt-get could not install $PACKAGES" >&2
exit 0
