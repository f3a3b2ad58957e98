"""Count each row's tokens with the model's own processor, image tokens included.

`python -m vlm_tui.training.token_count MODEL DATASET.jsonl [--sample N]` reads a dataset in
axolotl's messages format (the run's checked copy: absolute image paths), renders each row with
the processor's chat template, runs the processor on the text and the row's images, and prints
one JSON line: {"rows": all rows, "lengths": [tokens of each row counted], "failed": [[index,
error] of each row the processor could not take]}. Past N rows an even sample is counted, so
the count takes seconds, whatever the dataset's size.

Runs in a child: it imports transformers and torch, which vlm-tui's own process never does.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import sys
from pathlib import Path
from typing import Any

DEFAULT_SAMPLE = 2000


def _image(part: dict[str, Any]) -> Any:
    from PIL import Image

    if "path" in part:
        return Image.open(part["path"]).convert("RGB")
    if "base64" in part:
        data = part["base64"]
        data = data.split(",", 1)[1] if data.startswith("data:") else data
        return Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")
    return None  # a URL: not fetched here


def row_tokens(processor: Any, messages: list[dict[str, Any]]) -> int:
    text = processor.apply_chat_template(messages, tokenize=False)
    images = [
        image
        for turn in messages
        for part in turn["content"]
        if part.get("type") == "image" and (image := _image(part)) is not None
    ]
    inputs = processor(text=[text], images=images or None)
    return len(inputs["input_ids"][0])


def sampled(count: int, sample: int) -> list[int]:
    """The indices of the rows counted: all of them, or `sample` spread evenly."""
    if count <= sample:
        return list(range(count))
    stride = count / sample
    return [int(index * stride) for index in range(sample)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vlm_tui.training.token_count")
    parser.add_argument("model")
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--sample", type=int, default=DEFAULT_SAMPLE)
    args = parser.parse_args(argv)
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(args.model)  # type: ignore[no-untyped-call]
    rows = [row for row in args.dataset.read_text(encoding="utf-8").splitlines() if row.strip()]
    lengths = []
    # Rows the processor cannot take (an image cut short past its header): their index in the
    # file and the error, for the caller to name; the training would fail on them.
    failed = []
    for index in sampled(len(rows), max(args.sample, 1)):
        try:
            lengths.append(row_tokens(processor, json.loads(rows[index])["messages"]))
        except Exception as error:  # whatever the processor or an image decoder raises
            failed.append([index, f"{type(error).__name__}: {str(error)[:160]}"])
    print(json.dumps({"rows": len(rows), "lengths": lengths, "failed": failed}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
