"""This machine and its cluster: accelerators, the topology from the environment, live readings."""
