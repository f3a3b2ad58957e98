"""Find the language model's decoder layers in the model itself, for LoRA's target.

`python -m vlm_tui.training.model_layers MODEL` builds the model's skeleton on the meta device
from its config (no weights read, no memory taken), finds its language model (transformers'
`get_decoder()`), and prints one JSON line: {"prefix": where that model lives at run time,
"linear": the attention and MLP projections of one decoder layer, "adapted": how many modules the
target matches} or {"error": why not}. The prefix differs by family (`model.language_model`,
Idefics3's `model.text_model`), which is why it is read here and not assumed.

Runs in a child: it imports transformers and torch, which vlm-tui's own process never does.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from vlm_tui.core.request.model_family import LAYER_LINEAR, layers_regex


def _skeleton(model: str) -> Any:
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    config = AutoConfig.from_pretrained(model)
    with torch.device("meta"):
        return AutoModelForImageTextToText.from_config(config)  # type: ignore[no-untyped-call]


def language_layers(model: Any) -> dict[str, Any]:
    import torch

    decoder = model.get_decoder()
    where = next(name for name, module in model.named_modules() if module is decoder)
    # The decoder layers' list: `layers` of the text model itself, or one level down when
    # get_decoder() gives a causal LM (Llama 4's `language_model.model.layers`).
    lists = [
        name
        for name, module in decoder.named_modules()
        if name.rsplit(".", 1)[-1] == "layers" and isinstance(module, torch.nn.ModuleList)
    ]
    if not lists:
        return {"error": "no decoder layers found in its language model"}
    layers = min(lists, key=len)
    prefix = ".".join(part for part in (where, layers.removesuffix("layers").rstrip(".")) if part)
    linear = sorted(
        {
            found.group(1)
            for name, module in decoder.named_modules()
            if isinstance(module, torch.nn.Linear)
            and (found := re.fullmatch(rf"{re.escape(layers)}\.\d+\.({LAYER_LINEAR})", name))
        }
    )
    if not prefix or not linear:
        return {"error": "no attention or MLP projections found in its language model"}
    target = layers_regex(prefix, "(" + "|".join(re.escape(name) for name in linear) + ")")
    adapted = sum(re.fullmatch(target, name) is not None for name, _ in model.named_modules())
    return {"prefix": prefix, "linear": linear, "target": target, "adapted": adapted}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m vlm_tui.training.model_layers MODEL", file=sys.stderr)
        return 2
    try:
        found = language_layers(_skeleton(args[0]))
    except Exception as error:  # a config transformers cannot read, a model class it lacks
        found = {"error": f"{type(error).__name__}: {' '.join(str(error).split())[:200]}"}
    print(json.dumps(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
