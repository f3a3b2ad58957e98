"""Checks before a launch that are not about the dataset: pre-flight, doctor, axolotl's schema."""
