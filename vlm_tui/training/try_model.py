"""Answer prompts with a run's base model and its fine-tuned weights, side by side.

Runs in a child with the training stack (`vlm-tui try`, the TUI's Try screen): it reads one JSON
request on stdin (see core/after/try_request.py:TryRequest.child_request) and prints one JSON
line per answer as it comes, so a front-end shows each as soon as it is there. With "session"
in the request it then reads more requests ({"items": [...]}) line by line until stdin closes,
the models still loaded, and answers them with the indices going on:

    {"loaded": {"device": "cpu", "seconds": 1.9}}
    {"index": 0, "model": "base", "answer": "..."}
    {"index": 0, "model": "tuned", "answer": "A red circle."}
    {"done": true}

or {"error": "..."} and exit 1. A LoRA adapter is loaded once over the base model and switched
off for the base model's answers; full weights are a second model, loaded after the base one
is freed (both stay loaded in a session). Greedy decoding; the chat template is the one the
training used.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from vlm_tui.training.child_protocol import emit, more_requests, serve


def chat_template(request: dict[str, Any], processor: Any) -> str | None:
    """The template the training rendered rows with: axolotl's named one (or the config's own
    jinja), else the processor's."""
    name = request.get("chat_template")
    if isinstance(name, str) and name and not name.startswith("tokenizer_default"):
        try:
            from axolotl.utils.chat_templates import get_chat_template

            found: str = get_chat_template(name, jinja_template=request.get("chat_template_jinja"))
            return found
        except Exception:  # an unknown name: the processor's own template is the best guess
            pass
    own = getattr(processor, "chat_template", None)
    return own if isinstance(own, str) else None


def model_inputs(processor: Any, template: str | None, messages: list[dict[str, Any]]) -> Any:
    """The processor's tensors for a conversation that ends where the answer starts."""
    from PIL import Image

    images = []
    turns = []
    for turn in messages:
        content = turn.get("content")
        if isinstance(content, list):
            parts = []
            for part in content:
                if isinstance(part, dict) and part.get("type") == "image":
                    source = part["path"]
                    with Image.open(source) as image:
                        images.append(image.convert("RGB"))
                    parts.append({"type": "image"})
                else:
                    parts.append(part)
            content = parts
        turns.append({**turn, "content": content})
    text = processor.apply_chat_template(
        turns, add_generation_prompt=True, tokenize=False, chat_template=template
    )
    return processor(text=[text], images=images or None, return_tensors="pt")


def answer(model: Any, processor: Any, inputs: Any, max_new_tokens: int) -> str:
    import torch

    tokenizer = getattr(processor, "tokenizer", processor)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    with torch.inference_mode():
        out = model.generate(
            **inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad
        )
    new_tokens = out[0, inputs["input_ids"].shape[1] :]
    text: str = tokenizer.decode(new_tokens, skip_special_tokens=True)
    return text.strip()


def _load(path: str, dtype: Any, device: str) -> Any:
    from transformers import AutoModelForImageTextToText

    model: Any = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype)
    return model.to(device).eval()


def _on(inputs: Any, device: str, dtype: Any) -> Any:
    inputs = inputs.to(device)
    for key, value in inputs.items():
        if value.is_floating_point():
            inputs[key] = value.to(dtype)
    return inputs


def _said(index: int, model: str, text: str) -> None:
    emit({"index": index, "model": model, "answer": text})


def run(request: dict[str, Any]) -> None:
    import torch
    from transformers import AutoProcessor

    started = time.monotonic()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" and request.get("bf16") else torch.float32
    processor = AutoProcessor.from_pretrained(request["processor"])  # type: ignore[no-untyped-call]
    template = chat_template(request, processor)
    limit = int(request["max_new_tokens"])

    def prepared(items: list[dict[str, Any]]) -> list[Any]:
        return [
            _on(model_inputs(processor, template, item["messages"]), device, dtype)
            for item in items
        ]

    first = prepared(request["items"])
    model = _load(request["base_model"], dtype, device)
    tuned: Any = None
    if request.get("adapter"):
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, request["weights"]).to(device).eval()
    elif not request.get("session"):
        # Asked once (`vlm-tui try`): one model in memory at a time.
        emit({"loaded": {"device": device, "seconds": round(time.monotonic() - started, 2)}})
        for index, inputs in enumerate(first):
            _said(index, "base", answer(model, processor, inputs, limit))
        del model
        model = _load(request["weights"], dtype, device)
        for index, inputs in enumerate(first):
            _said(index, "tuned", answer(model, processor, inputs, limit))
        return
    else:
        # A session answers later prompts too: both models stay loaded.
        tuned = _load(request["weights"], dtype, device)
    emit({"loaded": {"device": device, "seconds": round(time.monotonic() - started, 2)}})

    def both(index: int, inputs: Any) -> None:
        if tuned is None:
            with model.disable_adapter():
                _said(index, "base", answer(model, processor, inputs, limit))
            _said(index, "tuned", answer(model, processor, inputs, limit))
        else:
            _said(index, "base", answer(model, processor, inputs, limit))
            _said(index, "tuned", answer(tuned, processor, inputs, limit))

    for index, inputs in enumerate(first):
        both(index, inputs)
    count = len(first)
    for more in more_requests():
        for item in more.get("items", []):
            try:
                both(count, prepared([item])[0])
            except Exception as error:  # one bad image of the user's: the others still answer
                emit(
                    {
                        "unanswered": {
                            "index": count,
                            "why": f"{type(error).__name__}: {error}"[:300],
                        }
                    }
                )
            count += 1


if __name__ == "__main__":
    sys.exit(serve(run))
