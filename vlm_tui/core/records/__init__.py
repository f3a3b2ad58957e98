"""The run folder's files, each with its one typed reader and its one writer, side by side.

Nothing outside this package opens a run-folder file as JSON (a test scans the source).
"""
