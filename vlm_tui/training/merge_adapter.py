"""Merge a run's LoRA adapter into its base model: a folder that loads alone, checked.

Runs in a child with the training stack (`vlm-tui merge`): it reads one JSON request on stdin
(core/after/merge_request.py:MergeRequest.child_request) and prints JSON lines:

    {"loaded": {"device": "cpu", "seconds": 2.1}}
    {"saved": "/out/model-merged", "seconds": 4.0}
    {"verified": {"max_abs_diff": 3.1e-06, "tolerance": 0.001, "logits": 4352}}
    {"done": true}

or {"error": "..."} and exit 1. The merged weights, the processor (tokenizer, image processor),
the chat template the training used and the generation config are written into a staging
folder beside the target, which is renamed to the target only once all is written and the
reloaded model's logits on a sample row match the base model with the adapter. Nothing is
written over an existing folder, and the run's own output is only read.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from vlm_tui.training.child_protocol import emit, serve
from vlm_tui.training.try_model import chat_template, model_inputs


def _reloaded_logits(folder: Path, inputs: Any) -> Any:
    import torch
    from transformers import AutoModelForImageTextToText

    model: Any = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32)
    with torch.inference_mode():
        return model.eval()(**inputs).logits


def merge(request: dict[str, Any]) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    started = time.monotonic()
    target = Path(request["target"])
    if target.exists():
        raise FileExistsError(f"{target} exists")
    # float32 for the merge: the sum of the base weight and the adapter's product is exact
    # enough to compare; saved in that precision (a bf16 copy is a later choice).
    model: Any = AutoModelForImageTextToText.from_pretrained(
        request["base_model"], dtype=torch.float32
    )
    model = PeftModel.from_pretrained(model, request["adapter"]).eval()
    processor = AutoProcessor.from_pretrained(request["base_model"])  # type: ignore[no-untyped-call]
    template = chat_template(request, processor)
    if template is not None:
        processor.chat_template = template
    emit({"loaded": {"device": "cpu", "seconds": round(time.monotonic() - started, 2)}})
    sample = request.get("sample")
    inputs = model_inputs(processor, template, sample) if sample else None
    if inputs is not None:
        with torch.inference_mode():
            expected = model(**inputs).logits
    merged = model.merge_and_unload()
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        merged.save_pretrained(staging)
        processor.save_pretrained(staging)
        if inputs is not None:
            got = _reloaded_logits(staging, inputs)
            difference = float((got - expected).abs().max())
            tolerance = float(request["tolerance"]) * max(1.0, float(expected.abs().max()))
            verdict = {"max_abs_diff": difference, "tolerance": tolerance}
            emit({"verified": {**verdict, "logits": int(expected.numel())}})
            if not difference <= tolerance:
                raise ValueError(
                    f"the merged logits differ by {difference:.3g} (allowed {tolerance:.3g})"
                )
        if target.exists():  # made while this merged: left as it is
            raise FileExistsError(f"{target} appeared while merging")
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    emit({"saved": str(target), "seconds": round(time.monotonic() - started, 2)})


if __name__ == "__main__":
    sys.exit(serve(merge))
