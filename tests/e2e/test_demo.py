"""The embedded demo: a real offline build of the tiny LLaVA model and its dataset."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO, clean_environ
from vlm_tui.core.launch import demo
from vlm_tui.core.request.lora_target import LanguageLayers, finish_probe, start_probe
from vlm_tui.training import demo_builder

# One worker runs this module: its tests share one build of the demo.
pytestmark = pytest.mark.xdist_group("demo-build")

CAPTION = re.compile(r"^A (\w+) (circle|square|triangle)\.$")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> demo.DemoAssets:
    """One build shared by the module (a few seconds, mostly importing torch)."""
    return demo_builder.build_demo(tmp_path_factory.mktemp("demo") / "cache")


def _rows(assets: demo.DemoAssets) -> list[dict[str, Any]]:
    lines = assets.dataset_path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _leftover_staging(root: Path) -> list[str]:
    return [p.name for p in root.iterdir() if p.name.startswith(".building-")]


def test_build_produces_ready_assets(built: demo.DemoAssets) -> None:
    assert demo.demo_assets_ready(built)
    assert built == demo.demo_asset_paths(built.root)
    assert (built.model_dir / "config.json").is_file()
    assert (built.model_dir / "model.safetensors").is_file()
    assert built.dataset_path.is_file()
    assert _leftover_staging(built.root) == []


def test_processor_and_model_load_offline(
    built: demo.DemoAssets, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(built.model_dir)  # type: ignore[no-untyped-call]
    model = AutoModelForImageTextToText.from_pretrained(built.model_dir)
    assert type(processor).__name__ == "LlavaProcessor"
    assert type(model).__name__ == "LlavaForConditionalGeneration"
    assert 100_000 <= sum(p.numel() for p in model.parameters()) <= 250_000
    tokenizer = processor.tokenizer
    assert tokenizer.pad_token == demo_builder.PAD_TOKEN
    assert 350 <= len(tokenizer) <= 400

    # The way axolotl's multimodal collator calls it: images load from the rows' paths.
    rows = [row["messages"] for row in _rows(built)[:2]]
    batch = processor.apply_chat_template(
        rows,
        add_generation_prompt=False,
        tokenize=True,
        return_tensors="pt",
        return_dict=True,
        processor_kwargs={"padding": True},
    )
    image_id = tokenizer.convert_tokens_to_ids(demo_builder.IMAGE_TOKEN)
    assert int((batch["input_ids"][0] == image_id).sum()) == (32 // 8) ** 2
    assert tuple(batch["pixel_values"].shape) == (2, 3, 32, 32)
    with torch.no_grad():
        loss = model(**batch, labels=batch["input_ids"]).loss
    assert torch.isfinite(loss)


def test_dataset_rows_are_chat_template_rows_with_absolute_images(
    built: demo.DemoAssets,
) -> None:
    rows = _rows(built)
    assert len(rows) == demo.NUM_IMAGES
    captions = set()
    for row in rows:
        user, assistant = row["messages"]
        assert user["role"] == "user" and assistant["role"] == "assistant"
        image, prompt = user["content"]
        assert image["type"] == "image" and prompt == {"type": "text", "text": demo.DEMO_PROMPT}
        path = Path(image["path"])
        assert path.is_absolute() and path.is_file()
        assert built.root in path.parents
        [answer] = assistant["content"]
        assert answer["type"] == "text" and CAPTION.match(answer["text"])
        captions.add(answer["text"])
    assert len(captions) == 24  # every colour x shape appears


def test_second_build_is_a_no_op(built: demo.DemoAssets) -> None:
    marker = built.model_dir.parent / "READY.json"
    before = marker.stat().st_mtime_ns
    started = time.monotonic()
    again = demo_builder.build_demo(built.root)
    assert time.monotonic() - started < 1.0
    assert again == built
    assert marker.stat().st_mtime_ns == before


def test_builds_are_deterministic(built: demo.DemoAssets, tmp_path: Path) -> None:
    other = demo_builder.build_demo(tmp_path / "other")
    for name in ("model.safetensors", "tokenizer.json", "config.json", "processor_config.json"):
        assert (other.model_dir / name).read_bytes() == (built.model_dir / name).read_bytes()
    images = sorted((built.dataset_path.parent / "images").iterdir())
    assert [p.name for p in images] == sorted(
        p.name for p in (other.dataset_path.parent / "images").iterdir()
    )
    for image in images:
        twin = other.dataset_path.parent / "images" / image.name
        assert twin.read_bytes() == image.read_bytes()
    ours = built.dataset_path.read_text().replace(str(built.root), "ROOT")
    theirs = other.dataset_path.read_text().replace(str(other.root), "ROOT")
    assert ours == theirs


def test_a_foreign_folder_in_the_way_is_kept_and_reported(tmp_path: Path) -> None:
    assets = demo.demo_asset_paths(tmp_path)
    version_dir = assets.model_dir.parent
    version_dir.mkdir()
    keep = version_dir / "user-file.txt"
    keep.write_text("mine")
    with pytest.raises(RuntimeError, match="not a complete demo build"):
        demo_builder.build_demo(tmp_path)
    assert keep.read_text() == "mine"
    assert not demo.demo_assets_ready(assets)
    assert _leftover_staging(tmp_path) == []


def test_concurrent_builders_agree(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    command = [sys.executable, "-m", "vlm_tui.training.demo_builder", "build", str(root)]
    children = [
        subprocess.Popen(
            command,
            cwd=REPO,
            env=clean_environ(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [child.communicate(timeout=300) for child in children]
    assert [child.returncode for child in children] == [0, 0], results
    printed = [json.loads(out) for out, _ in results]
    assets = demo.demo_asset_paths(root)
    expected = {"model_dir": str(assets.model_dir), "dataset_path": str(assets.dataset_path)}
    assert printed == [expected, expected]
    assert demo.demo_assets_ready(assets)
    assert sorted(p.name for p in root.iterdir()) == [assets.model_dir.parent.name]


@pytest.fixture(autouse=True)
def _keep_environ() -> Iterator[None]:
    """main() quietens libraries through os.environ; keep that out of later tests."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_main_prints_one_json_line(
    built: demo.DemoAssets, capsys: pytest.CaptureFixture[str]
) -> None:
    assert demo_builder.main(["build", str(built.root)]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {
        "model_dir": str(built.model_dir),
        "dataset_path": str(built.dataset_path),
    }
    assert out.count("\n") == 1 and err == ""


@pytest.mark.parametrize("argv", [[], ["train"], ["build", "a", "b"]])
def test_main_rejects_bad_arguments(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert demo_builder.main(argv) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "usage" in err


def test_main_reports_a_failed_build_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert demo_builder.main(["build", str(blocker / "cache")]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("demo build failed:")


def test_asset_paths_touch_nothing(tmp_path: Path) -> None:
    root = tmp_path / "not-there"
    assets = demo.demo_asset_paths(root)
    assert assets.root == root
    assert root in assets.model_dir.parents and root in assets.dataset_path.parents
    assert not root.exists()
    assert not demo.demo_assets_ready(assets)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (
            {"VLM_TUI_CACHE_DIR": "/c", "XDG_CACHE_HOME": "/x", "HOME": "/h"},
            "/c/demo",
        ),
        ({"XDG_CACHE_HOME": "/x", "HOME": "/h"}, "/x/vlm-tui/demo"),
        ({"HOME": "/h"}, "/h/.cache/vlm-tui/demo"),
        ({"VLM_TUI_CACHE_DIR": "", "XDG_CACHE_HOME": "", "HOME": "/h"}, "/h/.cache/vlm-tui/demo"),
    ],
)
def test_demo_cache_root_precedence(environ: dict[str, str], expected: str) -> None:
    assert demo.demo_cache_root(environ) == Path(expected)


def test_demo_cache_root_without_home_uses_the_user_home() -> None:
    assert demo.demo_cache_root({}) == Path.home() / ".cache" / "vlm-tui" / "demo"


def test_demo_cache_root_is_absolute() -> None:
    root = demo.demo_cache_root({"VLM_TUI_CACHE_DIR": "relative"})
    assert root == Path(os.getcwd()) / "relative" / "demo"


def test_training_settings_are_a_short_visible_run() -> None:
    steps_per_epoch = demo.NUM_IMAGES // int(demo.DEMO_TRAINING["batch_size"])
    steps = steps_per_epoch * int(demo.DEMO_TRAINING["num_epochs"])
    assert 24 <= steps <= 48
    assert demo.DEMO_TRAINING["image_size"] == demo.IMAGE_SIZE


def test_the_language_layers_are_read_from_the_model_itself(built: demo.DemoAssets) -> None:
    found = finish_probe(start_probe(str(built.model_dir), clean_environ()))
    assert isinstance(found, LanguageLayers), found
    assert found.prefix == "model.language_model"
    assert found.linear == (
        "mlp.down_proj",
        "mlp.gate_proj",
        "mlp.up_proj",
        "self_attn.k_proj",
        "self_attn.o_proj",
        "self_attn.q_proj",
        "self_attn.v_proj",
    )
    # 2 decoder layers x 7 projections; the CLIP tower's q/k/v/out_proj are not among them.
    assert found.adapted == 14
    assert not re.fullmatch(
        found.target, "model.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj"
    )
