"""What a family needs beyond the training stack is checked before launch, without importing it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from importlib.machinery import ModuleSpec
from pathlib import Path

import pytest

from vlm_tui.cli import main
from vlm_tui.core.errors import UserError
from vlm_tui.core.request import family_packages
from vlm_tui.core.request.family_packages import (
    install_command,
    needed_packages,
    require_family_packages,
    torchvision_mismatch,
)


def model_folder(root: Path, model_type: str) -> Path:
    root.mkdir(parents=True)
    (root / "config.json").write_text(json.dumps({"model_type": model_type}))
    return root


class HiddenModules:
    """A meta path finder that makes named modules look absent, as on a host without them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.names: set[str] = set()
        self.monkeypatch = monkeypatch

    def hide(self, name: str) -> None:
        self.names.add(name)
        # A module another test imported in this process is found in sys.modules first.
        for loaded in [module for module in sys.modules if module.split(".")[0] == name]:
            self.monkeypatch.delitem(sys.modules, loaded)

    def find_spec(self, name: str, path: object = None, target: object = None) -> ModuleSpec:
        if name.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None  # type: ignore[return-value]  # the next finder decides


@pytest.fixture
def hidden(monkeypatch: pytest.MonkeyPatch) -> Iterator[HiddenModules]:
    finder = HiddenModules(monkeypatch)
    monkeypatch.setattr(sys, "meta_path", [finder, *sys.meta_path])
    yield finder


def stub_package(root: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An importable stand-in package: present, as far as a spec lookup can tell."""
    (root / name).mkdir(parents=True)
    (root / name / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(root))


@pytest.mark.parametrize(
    ("model_type", "modules"),
    [
        ("qwen2_vl", ["torchvision"]),
        ("qwen2_5_vl", ["torchvision"]),
        ("qwen3_vl", ["torchvision"]),
        ("mistral3", ["torchvision"]),
        ("idefics3", ["torchvision"]),
        ("smolvlm", ["torchvision", "num2words"]),
        ("llama4", ["torchvision"]),
        ("gemma3n", ["timm"]),
        ("llava", []),
        ("llava_next", []),
        ("gemma3", []),
        ("mllama", []),
    ],
)
def test_a_local_model_s_family_names_what_it_needs(
    model_type: str, modules: list[str], tmp_path: Path
) -> None:
    folder = model_folder(tmp_path / "model", model_type)
    family, needed = needed_packages(str(folder), chat_template="llava")
    assert family == model_type
    assert [package.module for package in needed] == modules


def test_a_hub_model_s_family_comes_from_its_chat_template() -> None:
    family, needed = needed_packages("org/some-vl-model.invalid", "qwen2_vl")
    assert (family, [package.module for package in needed]) == ("qwen2_vl", ["torchvision"])
    assert needed_packages("org/other.invalid", "llava")[1] == ()


def installed_versions(monkeypatch: pytest.MonkeyPatch, versions: dict[str, str]) -> None:
    """Distribution versions as another host would report them (torch builds cannot be swapped)."""
    monkeypatch.setattr(family_packages, "_version", versions.get)


@pytest.mark.parametrize(
    ("torch", "line"),
    [
        ("2.13.0", "pip install 'torchvision==0.28.*'"),
        ("2.13.0+cu130", "pip install 'torchvision==0.28.*'"),
        ("2.5.1", "pip install 'torchvision==0.20.*'"),
        (
            "2.13.0+cpu",
            "pip install --index-url https://download.pytorch.org/whl/cpu 'torchvision==0.28.*'",
        ),
    ],
)
def test_torchvision_is_pinned_to_the_build_of_the_torch_here(
    torch: str, line: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed_versions(monkeypatch, {"torch": torch})
    (torchvision,) = needed_packages("x.invalid", "qwen2_vl")[1]
    assert install_command(torchvision) == line


@pytest.mark.parametrize(
    ("torch", "vision", "pairs"),
    [
        ("2.13.0", "0.28.0", True),
        ("2.13.0+cu130", "0.28.0+cu130", True),
        ("2.13.0+cpu", "0.28.0+cpu", True),
        # Measured: the index's torchvision does not import with a local +cpu torch.
        ("2.13.0+cpu", "0.28.0", False),
        ("2.13.0", "0.28.0+cpu", False),
        ("2.13.0", "0.27.1", False),
        ("2.12.1", "0.28.0", False),
    ],
)
def test_a_torchvision_not_built_for_the_torch_here_is_named(
    torch: str, vision: str, pairs: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed_versions(monkeypatch, {"torch": torch, "torchvision": vision})
    found = torchvision_mismatch()
    assert (found is None) == pairs, found
    if not pairs:
        assert found is not None and f"torchvision {vision} is not built for torch {torch}" in found


def test_a_missing_package_is_refused_with_its_install_line(
    tmp_path: Path, hidden: HiddenModules
) -> None:
    hidden.hide("timm")
    folder = model_folder(tmp_path / "model", "gemma3n")
    with pytest.raises(UserError) as refused:
        require_family_packages(str(folder), None)
    assert refused.value.field == "base_model"
    assert "gemma3n models need timm" in str(refused.value)
    assert str(refused.value).endswith("install it with: pip install timm")


def test_a_present_package_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stub_package(tmp_path / "site", "timm", monkeypatch)
    require_family_packages(str(model_folder(tmp_path / "model", "gemma3n")), None)


def test_a_launch_without_torchvision_is_refused_before_anything_exists(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    hidden: HiddenModules,
) -> None:
    hidden.hide("torchvision")
    model = model_folder(tmp_path / "in" / "tiny-qwen2-vl", "qwen2_vl")
    dataset = tmp_path / "in" / "data.jsonl"
    dataset.write_text("{}\n")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)

    def no_process(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a process was started: {args!r}")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    monkeypatch.setattr(subprocess, "run", no_process)
    args = ["--base_model", str(model), "--dataset_name", str(dataset), "--output_model_name", "m"]
    code = main(["--no-ui", *args])
    captured = capsys.readouterr()
    assert code == 2, captured.out + captured.err
    (line,) = captured.err.strip().splitlines()
    assert "base_model" in line and "qwen2_vl models need torchvision" in line, line
    assert "install it with: pip install " in line and "'torchvision==0." in line, line
    assert "Traceback" not in captured.out + captured.err
    assert list(work.iterdir()) == []


def test_a_launch_with_a_mismatched_torchvision_is_refused_with_the_matching_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed_versions(monkeypatch, {"torch": "2.13.0+cpu", "torchvision": "0.28.0"})
    stub_package(tmp_path / "site", "torchvision", monkeypatch)
    folder = model_folder(tmp_path / "model", "qwen2_5_vl")
    with pytest.raises(UserError) as refused:
        require_family_packages(str(folder), None)
    assert refused.value.field == "base_model"
    assert str(refused.value).endswith(
        "install the matching one with: pip install --index-url"
        " https://download.pytorch.org/whl/cpu 'torchvision==0.28.*'"
    )
