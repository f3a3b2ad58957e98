"""`vlm-tui try` on the trained demo: the base model and the fine-tuned adapter answer the same
rows side by side, in a child process, and the fine-tuned answers have the dataset's form."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import clean_environ, run_cli

# With the demo's other users: they share the `demo_run` training (tests/conftest.py).
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("demo-run")]

ROWS = 8
# The dataset's answers: "A <colour> <shape>." (the model goes on after them: the demo's
# template puts no end-of-turn token after an answer).
FORM = re.compile(r"A (\w+) (circle|square|triangle)\.")


def _answers(output: str, label: str) -> list[str]:
    return [line.split(label, 1)[1].strip() for line in output.splitlines() if f"  {label}" in line]


def test_try_answers_rows_with_the_base_and_the_fine_tuned_model(
    demo_run: tuple[Path, str, int], demo_cache: Path
) -> None:
    workdir, _, code = demo_run
    assert code == 0
    done = run_cli(
        ["try", "--rows", str(ROWS), "--max_new_tokens", "8"],
        workdir,
        clean_environ({"VLM_TUI_CACHE_DIR": str(demo_cache)}),
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = done.stdout
    assert "models loaded on cpu in " in out and "(final weights)" in out
    references = _answers(out, "reference")
    base, tuned = _answers(out, "base"), _answers(out, "fine-tuned")
    assert len(references) == len(base) == len(tuned) == ROWS
    tuned_form = [FORM.match(answer) for answer in tuned]
    base_form = [FORM.match(answer) for answer in base]
    right_colour = [
        match is not None and FORM.match(reference)[1] == match[1]  # type: ignore[index]
        for match, reference in zip(tuned_form, references, strict=True)
    ]
    print(
        f"fine-tuned in the dataset's form: {sum(map(bool, tuned_form))}/{ROWS}, right colour "
        f"{sum(right_colour)}/{ROWS}; base in the form: {sum(map(bool, base_form))}/{ROWS}"
    )
    # Measured on 2 cores, 16 rows: 12/16 in the form (the others "A square.", colour left out),
    # the colour right on 7; the base model 0/16 (random weights: it spells random tokens).
    assert sum(map(bool, tuned_form)) >= ROWS // 2
    assert not any(base_form)
    assert "answers that begin with the dataset's answer: fine-tuned " in out


def test_try_a_checkpoint_and_an_own_image(
    demo_run: tuple[Path, str, int], demo_cache: Path
) -> None:
    workdir, _, _ = demo_run
    image = next((demo_cache / "demo").glob("v*/data/images/010_*.png"))
    done = run_cli(
        [
            "try",
            "--rows",
            "0",
            "--checkpoint",
            "16",
            "--image",
            str(image),
            "--max_new_tokens",
            "4",
        ],
        workdir,
        clean_environ({"VLM_TUI_CACHE_DIR": str(demo_cache)}),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "(checkpoint at step 16)" in done.stdout and "checkpoint-16" in done.stdout
    assert f"your image 1  {image}" in done.stdout
    assert len(_answers(done.stdout, "fine-tuned")) == 1
    assert "prompts answered" in done.stdout
