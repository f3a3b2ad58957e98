"""`vlm-tui merge` on the trained demo: a new folder that loads alone in a fresh process, whose
logits match the base model with the adapter, and the run's own output left as it was."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import clean_environ, run_cli

# With the demo's other users: they share the `demo_run` training (tests/conftest.py).
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("demo-run")]

# A fresh interpreter loads the merged folder by itself and answers the demo's prompt with the
# template saved in it.
LOAD_ALONE = """
import json, sys
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor
folder, image = sys.argv[1], sys.argv[2]
processor = AutoProcessor.from_pretrained(folder)
model = AutoModelForImageTextToText.from_pretrained(folder).eval()
parts = [{"type": "image"}, {"type": "text", "text": "What is this?"}]
turns = [{"role": "user", "content": parts}]
text = processor.apply_chat_template(turns, add_generation_prompt=True, tokenize=False)
inputs = processor(text=[text], images=[Image.open(image).convert("RGB")], return_tensors="pt")
out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
print(json.dumps({"answer": processor.decode(out[0, inputs["input_ids"].shape[1]:],
                                                skip_special_tokens=True)}))
"""


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_merge_writes_a_model_that_loads_alone_and_matches_base_plus_adapter(
    demo_run: tuple[Path, str, int], demo_cache: Path
) -> None:
    workdir, _, code = demo_run
    assert code == 0
    output = workdir / "outputs" / "vlm-tui-demo"
    before = _digest(output)
    env = clean_environ({"VLM_TUI_CACHE_DIR": str(demo_cache)})
    done = run_cli(["merge"], workdir, env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    merged = workdir / "outputs" / "vlm-tui-demo-merged"
    assert f"merged model saved to {merged}" in done.stdout
    checked = next(line for line in done.stdout.splitlines() if "] checked: logits" in line)
    difference = float(checked.split("differ by at most ")[1].split()[0])
    print(checked)
    assert difference < 1e-3  # measured: about 1e-5 on the demo (float32, CPU)
    assert _digest(output) == before  # the run's own output: read, never written
    names = {path.name for path in merged.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json"} <= names
    assert {"processor_config.json", "tokenizer.json", "chat_template.jinja"} <= names
    assert not any(name.startswith(".") for name in names)
    assert not list(merged.parent.glob(".*partial*"))
    # The merged model answers alone, as the fine-tuned model does: in the dataset's form.
    image = next((demo_cache / "demo").glob("v*/data/images/000_red_circle.png"))
    alone = subprocess.run(
        [sys.executable, "-c", LOAD_ALONE, str(merged), str(image)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert alone.returncode == 0, alone.stderr[-2000:]
    answer = json.loads(alone.stdout.strip().splitlines()[-1])["answer"]
    assert answer.strip().startswith("A "), answer
    # A second merge to the same place is refused: nothing is written over.
    again = run_cli(["merge"], workdir, env)
    assert again.returncode == 2 and "exists; vlm-tui never writes over a folder" in again.stderr
