"""What a planned launch puts in the training's environment (nothing is started here)."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import clean_environ
from vlm_tui.core.launch import demo
from vlm_tui.core.launch.steps import LaunchRequest, plan_run, preview
from vlm_tui.core.request.settings import settings_from_values


def _planned_env(tmp_path: Path, base_model: str) -> dict[str, str]:
    environ = clean_environ({"VLM_TUI_CACHE_DIR": str(tmp_path / "cache")})
    environ.pop("OMP_NUM_THREADS", None)
    loaded = {
        "base_model": base_model,
        "datasets": [{"path": "/data.invalid/captions.jsonl", "type": "chat_template"}],
        "output_dir": "outputs/resumed",
    }
    request = LaunchRequest(
        settings=settings_from_values({}, require_data=False), loaded_config=loaded
    )
    plan = plan_run(request, environ, tmp_path)
    return dict(preview(plan, environ, tmp_path).env)


def test_a_config_that_trains_the_demo_model_gets_the_demos_one_thread_setting(
    tmp_path: Path,
) -> None:
    # A demo run resumed from its config.yml (the TUI's `r`) is planned without --demo.
    cache = demo.demo_cache_root({"VLM_TUI_CACHE_DIR": str(tmp_path / "cache")})
    model = demo.demo_asset_paths(cache).model_dir
    assert _planned_env(tmp_path, str(model))["OMP_NUM_THREADS"] == "1"


def test_any_other_model_keeps_the_thread_count_the_user_has(tmp_path: Path) -> None:
    assert "OMP_NUM_THREADS" not in _planned_env(tmp_path, "/models.invalid/llava-tiny")
