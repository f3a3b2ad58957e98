"""The graceful-stop plugin's callback on its own: what asks for the stop, and what it does then.

In-process with transformers' real TrainerState/TrainerControl; the race it closes is shown with
a real training in test_stops.py.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from vlm_tui.core.records.folder import RunPaths, armed_marker
from vlm_tui.core.training_plugins import GRACEFUL_STOP_PLUGIN

training = pytest.importorskip("vlm_tui.training.graceful_stop", reason="needs the training stack")
transformers = pytest.importorskip("transformers", reason="needs the training stack")

ARGS = SimpleNamespace(device="cpu")


@pytest.fixture
def keep_sigint() -> Iterator[None]:
    before = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, before)


def _state(step: int) -> object:
    state = transformers.TrainerState()
    state.global_step = step
    return state


def test_the_plugin_path_vlm_tui_writes_names_this_plugin() -> None:
    assert training.PLUGIN_PATH == GRACEFUL_STOP_PLUGIN
    module, name = GRACEFUL_STOP_PLUGIN.rsplit(".", 1)
    assert module == training.__name__ and hasattr(training, name)


def test_the_stop_file_stops_the_loop_at_the_step_with_a_checkpoint(
    tmp_path: Path, keep_sigint: None, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = RunPaths(tmp_path)
    callback = training.GracefulStopCallback(str(paths.stop_request))
    control = transformers.TrainerControl()
    callback.on_train_begin(ARGS, _state(0), control)
    assert paths.stop_armed.read_text() == "armed\n"
    assert armed_marker(paths.stop_request) == paths.stop_armed
    control = callback.on_step_end(ARGS, _state(1), control)
    assert not control.should_training_stop and not control.should_save
    paths.stop_request.write_text("now\n")
    assert not paths.stop_taken.exists()
    control = callback.on_step_end(ARGS, _state(2), control)
    assert control.should_training_stop and control.should_save
    assert f"{training.STOPPING_LINE} 2:" in capsys.readouterr().out
    # The supervisor is told it was taken: a training that is saving is not signalled again.
    assert paths.stop_taken.read_text() == "step 2\n"


def test_sigint_only_sets_the_flag_once_the_loop_runs(keep_sigint: None) -> None:
    callback = training.GracefulStopCallback(None)
    callback.on_train_begin(ARGS, _state(0), transformers.TrainerControl())
    # A handler that raised here could be dropped (inside an at-fork callback); this one cannot.
    signal.raise_signal(signal.SIGINT)
    assert callback.asked
    control = callback.on_step_end(ARGS, _state(5), transformers.TrainerControl())
    assert control.should_training_stop and control.should_save


def test_without_a_request_the_training_goes_on(tmp_path: Path, keep_sigint: None) -> None:
    callback = training.GracefulStopCallback(str(tmp_path / "stop-request"))
    callback.on_train_begin(ARGS, _state(0), transformers.TrainerControl())
    for step in range(1, 20):
        control = callback.on_step_end(ARGS, _state(step), transformers.TrainerControl())
        assert not control.should_training_stop, step


def test_the_data_workers_plugin_path_names_it() -> None:
    from vlm_tui.core.training_plugins import DATA_WORKERS_PLUGIN
    from vlm_tui.training import data_workers

    assert data_workers.PLUGIN_PATH == DATA_WORKERS_PLUGIN
    args = transformers.TrainingArguments(
        output_dir="/nonexistent.invalid", dataloader_num_workers=1
    )
    data_workers.PersistentDataWorkersPlugin().post_trainer_create({}, SimpleNamespace(args=args))
    assert args.dataloader_persistent_workers
