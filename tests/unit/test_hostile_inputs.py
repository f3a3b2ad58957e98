"""Hostile input: every flag, form field and environment value is checked before anything runs.

Each row is a value a user, a script or a cluster could hand us by mistake (or on purpose):
wrong types, out-of-range numbers, NaN and infinity, blanks, unicode tricks, shell
metacharacters, YAML specials, path traversal, over-long names, bad ports and ranks. Every one
must end as exit code 2 with exactly one line on stderr naming the flag or variable, no
traceback, and nothing created. These rows add to `BAD_FLAGS` in test_cli_errors.py.

Launches never go through a shell, and configs are serialised, never templated: both are
checked here too. Host names end in `.invalid`: nothing is resolved or contacted.
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import pytest
import yaml

from tests.helpers import clean_environ, refused, run_cli
from tests.unit.test_cli_errors import BAD_FLAGS
from vlm_tui.core.errors import UserError
from vlm_tui.core.host.hardware import CPU_ONLY
from vlm_tui.core.host.topology import resolve_topology
from vlm_tui.core.request.axolotl_config import build_axolotl_config, dump_axolotl_yaml
from vlm_tui.core.request.settings import FIELDS_BY_NAME, Settings, settings_from_values
from vlm_tui.core.request.topology_choice import choice_from_values, environ_for
from vlm_tui.core.training_plugins import (
    DATA_WORKERS_PLUGIN,
    GRACEFUL_STOP_PLUGIN,
    ROLE_BOUNDARIES_PLUGIN,
)
from vlm_tui.tui.setup_values import FormStart, field_errors

PACKAGE = Path(__file__).resolve().parents[2] / "vlm_tui"

# Valid values for the required fields, so that an environment row fails on its variable only.
# A hub id is not looked up in a dry run.
REQUIRED = ["--dataset_name", "owner/data", "--output_model_name", "model"]

DISTRIBUTED_PREFIXES = ("SLURM_", "PET_", "OMPI_", "PMI_", "MV2_", "MPI_", "SM_", "TORCHELASTIC_")
DISTRIBUTED_NAMES = (
    "MASTER_ADDR",
    "MASTER_PORT",
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "NODE_RANK",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "GROUP_WORLD_SIZE",
    "NPROC_PER_NODE",
)

RTL_OVERRIDE = "\u202e"
ZERO_WIDTH = "\u200b"
LONG_NAME = "a" * 256  # more bytes than any file system allows in one name
LONG_UNICODE_NAME = "\u00e9" * 128  # 128 characters, 256 bytes in UTF-8

# (flags, field named, part of the allowed-values wording)
Row = tuple[list[str], str, str]

# Numbers: types, ranges, NaN/infinity, blanks, spellings Python accepts but a user never means.
NUMBERS: list[Row] = [
    (["--batch_size", "2.5"], "--batch_size", "whole number from 1 to 4096"),
    (["--batch_size", "1_000"], "--batch_size", "whole number from 1 to 4096"),
    (["--batch_size", "9" * 5000], "--batch_size", "whole number from 1 to 4096"),
    (["--lora_r", "0x10"], "--lora_r", "whole number from 1 to 1024"),
    (["--lora_r", "1e3"], "--lora_r", "whole number from 1 to 1024"),
    (["--num_epochs", "  "], "--num_epochs", "whole number from 1 to 10000"),
    (["--num_epochs", "true"], "--num_epochs", "whole number from 1 to 10000"),
    (["--num_epochs", "1 2"], "--num_epochs", "whole number from 1 to 10000"),
    (["--max_steps", "-0"], "--max_steps", "whole number from 1 to 10000000"),
    (["--seed", "-1"], "--seed", "whole number from 0 to 4294967295"),
    (["--seed", "4294967296"], "--seed", "whole number from 0 to 4294967295"),
    # Arabic-Indic and full-width digits: int() reads them, a YAML reader would not.
    (["--gradient_accumulation_steps", "\u0663"], "--gradient_accumulation_steps", "whole"),
    (["--sequence_len", "\uff11\uff10\uff12\uff14"], "--sequence_len", "whole number"),
    (["--image_size", "4"], "--image_size", "whole number from 8 to 8192"),
    (["--rendezvous_timeout", "86401"], "--rendezvous_timeout", "whole number from 5 to 86400"),
    (["--gpus_per_node", "0"], "--gpus_per_node", "whole number from 1 to 1024"),
    (["--logging_steps", "+inf"], "--logging_steps", "whole number from 1 to 100000"),
    (["--learning_rate", "0"], "--learning_rate", "finite number in (0, 1]"),
    (["--learning_rate", "-0"], "--learning_rate", "finite number in (0, 1]"),
    (["--learning_rate", "+inf"], "--learning_rate", "finite number in (0, 1]"),
    (["--learning_rate", "1e3"], "--learning_rate", "finite number in (0, 1]"),
    (["--learning_rate", "1e999"], "--learning_rate", "finite number in (0, 1]"),
    (["--learning_rate", "1_0e-4"], "--learning_rate", "finite number in (0, 1]"),
    (["--learning_rate", "0x1p-3"], "--learning_rate", "finite number in (0, 1]"),
    (["--learning_rate", "\u0660.\u0665"], "--learning_rate", "finite number in (0, 1]"),
    (["--lora_dropout", "-0.1"], "--lora_dropout", "finite number in [0, 1)"),
    (["--lora_dropout", "NaN"], "--lora_dropout", "finite number in [0, 1)"),
    (["--warmup_ratio", "1"], "--warmup_ratio", "finite number in [0, 1)"),
    (["--warmup_ratio", "0,5"], "--warmup_ratio", "finite number in [0, 1)"),
]

# Choices and switches.
CHOICES: list[Row] = [
    (["--lr_scheduler", "cosine; rm -rf ~"], "--lr_scheduler", "one of: cosine, linear"),
    (["--save_strategy", ""], "--save_strategy", "must not be empty"),
    (["--precision", "\uff42\uff46\uff11\uff16"], "--precision", "one of: auto, bf16"),
    (["--chat_template", "llava" + ZERO_WIDTH], "--chat_template", "one of: llava"),
    (["--full_finetune=yes"], "--full_finetune", "ignored explicit argument"),
]

# Output names: one plain folder name; nothing a shell, YAML or the file system reads specially.
FOLDER = "one folder name of 1-100 characters"
OUTPUT_NAMES: list[Row] = [
    # YAML specials
    (["--output_model_name", "a: b"], "--output_model_name", FOLDER),
    (["--output_model_name", "- x"], "--output_model_name", FOLDER),
    (["--output_model_name", "&anchor"], "--output_model_name", FOLDER),
    (["--output_model_name", "*alias"], "--output_model_name", FOLDER),
    (["--output_model_name", "!!python/object:os.system"], "--output_model_name", FOLDER),
    (["--output_model_name", "{x}"], "--output_model_name", FOLDER),
    (["--output_model_name", "#comment"], "--output_model_name", FOLDER),
    (["--output_model_name", "x\n- injected: true"], "--output_model_name", FOLDER),
    # shell metacharacters
    (["--output_model_name", "`id`"], "--output_model_name", FOLDER),
    (["--output_model_name", "x;reboot"], "--output_model_name", FOLDER),
    (["--output_model_name", "x|tee y"], "--output_model_name", FOLDER),
    (["--output_model_name", "${HOME}"], "--output_model_name", FOLDER),
    (["--output_model_name", "'quoted'"], "--output_model_name", FOLDER),
    (["--output_model_name=-rf"], "--output_model_name", FOLDER),
    # unicode
    (["--output_model_name", f"model{RTL_OVERRIDE}txt.exe"], "--output_model_name", FOLDER),
    (["--output_model_name", "mo\x00del"], "--output_model_name", "NUL"),
    (["--output_model_name", f"mo{ZERO_WIDTH}del"], "--output_model_name", FOLDER),
    (["--output_model_name", "model\U0001f680"], "--output_model_name", FOLDER),
    (["--output_model_name", "mo\x1b[2Jdel"], "--output_model_name", FOLDER),
    # path traversal and over-long names
    (["--output_model_name", ".."], "--output_model_name", FOLDER),
    (["--output_model_name", "."], "--output_model_name", FOLDER),
    (["--output_model_name", "a/b"], "--output_model_name", FOLDER),
    (["--output_model_name", "/tmp/x"], "--output_model_name", FOLDER),
    (["--output_model_name", "..\\..\\x"], "--output_model_name", FOLDER),
    (["--output_model_name", "~root"], "--output_model_name", FOLDER),
    (["--output_model_name", LONG_NAME], "--output_model_name", FOLDER),
    (["--output_model_name", LONG_UNICODE_NAME], "--output_model_name", FOLDER),
]

# Models, datasets and configs: hub ids or things that exist; nothing else is guessed at.
REFERENCES: list[Row] = [
    (["--base_model", "owner/name; rm -rf ~"], "--base_model", "hub model id"),
    (["--base_model", "../outside"], "--base_model", "does not exist"),
    (["--base_model", "a" * 5000], "--base_model", "File name too long"),
    (["--base_model", "/" + "a" * 5000], "--base_model", "File name too long"),
    (["--base_model", "~nosuchuser.invalid/model"], "--base_model", "home folder"),
    (["--base_model", f"owner/name{RTL_OVERRIDE}"], "--base_model", "hub model id"),
    (["--base_model", "*alias"], "--base_model", "hub model id"),
    (["--base_model", "owner/name: {x: 1}"], "--base_model", "hub model id"),
    (["--dataset_name", "!!binary aGk="], "--dataset_name", "hub dataset id"),
    (["--dataset_name", "owner/data #comment"], "--dataset_name", "hub dataset id"),
    (["--dataset_name", "$(whoami)/data"], "--dataset_name", "hub dataset id"),
    (["--dataset_name", "a/b/../../../etc"], "--dataset_name", "does not exist"),
    (["--dataset_name", "x" * 300 + ".jsonl"], "--dataset_name", "File name too long"),
    (["--dataset_name", "~nosuchuser.invalid/d.jsonl"], "--dataset_name", "home folder"),
    (["--dataset_name", "owner/da\x00ta"], "--dataset_name", "NUL"),
    (["--config", ""], "--config", "must not be empty"),
    (["--config", "."], "--config", "does not exist"),
    (["--config", "c" * 5000 + ".yml"], "--config", "File name too long"),
]

FLAG_ROWS = NUMBERS + CHOICES + OUTPUT_NAMES + REFERENCES

# --config files with hostile YAML: (file name, bytes, part of the message).
CONFIG_FILES: list[tuple[str, bytes, str]] = [
    ("object.yml", b'base_model: !!python/object/apply:os.system ["id"]\n', "not valid YAML"),
    ("list.yml", b"- base_model: x\n- y\n", "must hold a mapping"),
    ("int-key.yml", b"1: x\n", "must hold a mapping"),
    ("tab.yml", b"a:\n\tb: 1\n", "not valid YAML"),
    ("nul.yml", b"a: \x00\n", "not valid YAML"),
    ("latin1.yml", b"base_model: \xe9\n", "cannot read"),
    ("unhashable.yml", b"? [a, b]\n: c\n", "not valid YAML"),
]

# (environment, variable named, part of the message)
EnvRow = tuple[dict[str, str], str, str]
MULTI = {"MASTER_ADDR": "node-0.example.invalid", "WORLD_SIZE": "2", "RANK": "0"}

ENV_PORTS: list[EnvRow] = [
    ({"MASTER_PORT": "0"}, "MASTER_PORT", "whole number from 1 to 65535"),
    ({"MASTER_PORT": "65536"}, "MASTER_PORT", "whole number from 1 to 65535"),
    ({"MASTER_PORT": "70000"}, "MASTER_PORT", "whole number from 1 to 65535"),
    ({"MASTER_PORT": "-1"}, "MASTER_PORT", "whole number from 1 to 65535"),
    ({"MASTER_PORT": "abc"}, "MASTER_PORT", "whole number from 1 to 65535"),
    ({"MASTER_PORT": "29500.0"}, "MASTER_PORT", "whole number from 1 to 65535"),
    ({"MASTER_PORT": "0x7530"}, "MASTER_PORT", "whole number from 1 to 65535"),
    ({"MASTER_PORT": "2_9500"}, "MASTER_PORT", "whole number from 1 to 65535"),
    ({"MASTER_PORT": "\u0662\u0669\u0665\u0660\u0660"}, "MASTER_PORT", "whole number"),
    ({"MASTER_PORT": "9" * 5000}, "MASTER_PORT", "whole number from 1 to 65535"),
    ({**MULTI, "MASTER_PORT": "29500; id"}, "MASTER_PORT", "whole number from 1 to 65535"),
    (
        {"PET_NNODES": "1", "PET_NODE_RANK": "0", "PET_MASTER_PORT": "65536"},
        "PET_MASTER_PORT",
        "whole number from 1 to 65535",
    ),
]

ENV_SIZES_AND_RANKS: list[EnvRow] = [
    ({**MULTI, "WORLD_SIZE": "nan"}, "WORLD_SIZE", "whole number"),
    ({**MULTI, "WORLD_SIZE": "inf"}, "WORLD_SIZE", "whole number"),
    ({**MULTI, "WORLD_SIZE": "-1"}, "WORLD_SIZE", "whole number"),
    ({**MULTI, "WORLD_SIZE": "0"}, "WORLD_SIZE", "whole number"),
    ({**MULTI, "WORLD_SIZE": "2.5"}, "WORLD_SIZE", "whole number"),
    ({**MULTI, "WORLD_SIZE": "9" * 40}, "WORLD_SIZE", "whole number"),
    ({**MULTI, "WORLD_SIZE": "9" * 5000}, "WORLD_SIZE", "whole number"),
    ({**MULTI, "RANK": "2"}, "RANK", "WORLD_SIZE is 2"),
    ({**MULTI, "RANK": "-1"}, "RANK", "whole number"),
    ({**MULTI, "RANK": "1e0"}, "RANK", "whole number"),
    ({**MULTI, "NODE_RANK": "2"}, "NODE_RANK", "node ranks run 0..1"),
    ({**MULTI, "LOCAL_RANK": " 1"}, "LOCAL_RANK", "LOCAL_RANK=0 or unset"),
    ({**MULTI, "LOCAL_RANK": "abc"}, "LOCAL_RANK", "whole number"),
    ({**MULTI, "NPROC_PER_NODE": "0"}, "NPROC_PER_NODE", "whole number from 1 to 4096"),
    ({**MULTI, "NPROC_PER_NODE": "all"}, "NPROC_PER_NODE", "whole number from 1 to 4096"),
]

ENV_ADDRESSES: list[EnvRow] = [
    ({"MASTER_ADDR": "node-0.invalid; rm -rf ~"}, "MASTER_ADDR", "host name or IP address"),
    ({"MASTER_ADDR": "node 0.invalid"}, "MASTER_ADDR", "host name or IP address"),
    ({"MASTER_ADDR": "$(hostname)"}, "MASTER_ADDR", "host name or IP address"),
    ({"MASTER_ADDR": "`hostname`"}, "MASTER_ADDR", "host name or IP address"),
    ({"MASTER_ADDR": "n\u00f6de.invalid"}, "MASTER_ADDR", "host name or IP address"),
    ({"MASTER_ADDR": f"node{RTL_OVERRIDE}.invalid"}, "MASTER_ADDR", "host name or IP address"),
    ({"MASTER_ADDR": "-oProxyCommand=x"}, "MASTER_ADDR", "host name or IP address"),
    ({"MASTER_ADDR": "node-0.invalid:29500"}, "MASTER_ADDR", "host name or IP address"),
    ({"MASTER_ADDR": "tcp://node-0.invalid"}, "MASTER_ADDR", "host name or IP address"),
    ({"MASTER_ADDR": "999.1.1.1"}, "MASTER_ADDR", "host name or IP address"),
    ({"MASTER_ADDR": "a" * 64 + ".invalid"}, "MASTER_ADDR", "host name or IP address"),
    ({"MASTER_ADDR": "a." * 130 + "invalid"}, "MASTER_ADDR", "host name or IP address"),
    ({"MASTER_ADDR": "node..invalid"}, "MASTER_ADDR", "host name or IP address"),
    ({**MULTI, "MASTER_ADDR": "node-0\n.invalid"}, "MASTER_ADDR", "host name or IP address"),
    ({**MULTI, "MASTER_ADDR": "fe80::1%eth0;id"}, "MASTER_ADDR", "host name or IP address"),
    (
        {"PET_NNODES": "2", "PET_NODE_RANK": "0", "PET_MASTER_ADDR": "a b.invalid"},
        "PET_MASTER_ADDR",
        "host name or IP address",
    ),
    (
        {"SM_HOSTS": '["algo 1", "algo-2"]', "SM_CURRENT_HOST": "algo 1"},
        "SM_HOSTS",
        "host names",
    ),
]

SLURM_STEP = {"SLURM_JOB_ID": "42", "SLURM_STEP_ID": "0", "SLURM_PROCID": "0"}
ENV_CLUSTERS: list[EnvRow] = [
    ({**SLURM_STEP, "SLURM_NNODES": "abc"}, "SLURM_NNODES", "whole number"),
    (
        {**SLURM_STEP, "SLURM_NNODES": "2", "SLURM_JOB_NODELIST": "gpu-[07-08"},
        "SLURM_JOB_NODELIST",
        "SLURM node list",
    ),
    (
        {**SLURM_STEP, "SLURM_NNODES": "2", "SLURM_JOB_NODELIST": "g[1-" + "9" * 5000 + "]"},
        "SLURM_JOB_NODELIST",
        "SLURM node list",
    ),
    (
        {**SLURM_STEP, "SLURM_NNODES": "2", "SLURM_JOB_NODELIST": "g[1]" * 5000},
        "SLURM_JOB_NODELIST",
        "SLURM node list",
    ),
    (
        {**SLURM_STEP, "SLURM_NNODES": "2", "SLURM_JOB_NODELIST": "gpu;id,gpu-2"},
        "SLURM_JOB_NODELIST",
        "host name or IP address",
    ),
    (
        {**SLURM_STEP, "SLURM_NNODES": "2", "SLURM_NODEID": "2", "MASTER_ADDR": "n.invalid"},
        "SLURM_NODEID",
        "the step has 2 nodes",
    ),
    ({"PET_NNODES": "1:4", "PET_NODE_RANK": "0"}, "PET_NNODES", "node count"),
    ({"PET_NNODES": "\uff12", "PET_NODE_RANK": "0"}, "PET_NNODES", "node count from 1"),
    (
        {**SLURM_STEP, "SLURM_NNODES": "2", "SLURM_NTASKS_PER_NODE": "2(x99999999999)"},
        "SLURM_NTASKS_PER_NODE",
        "SLURM task count",
    ),
    ({"PET_NNODES": "2", "PET_NODE_RANK": "2"}, "PET_NODE_RANK", "PET_NNODES is 2"),
    ({"SM_HOSTS": "algo-1", "SM_CURRENT_HOST": "algo-1"}, "SM_HOSTS", "JSON list"),
    ({"SM_HOSTS": "[" * 100_000, "SM_CURRENT_HOST": "algo-1"}, "SM_HOSTS", "JSON list"),
    ({"SM_HOSTS": "9" * 5000, "SM_CURRENT_HOST": "algo-1"}, "SM_HOSTS", "JSON list"),
    ({"TORCHELASTIC_RUN_ID": "x", "WORLD_SIZE": "2", "RANK": "5"}, "RANK", "ranks run 0..1"),
    ({"OMPI_COMM_WORLD_SIZE": "2"}, "OMPI_COMM_WORLD_RANK", "is not set"),
]

ENV_ROWS = ENV_PORTS + ENV_SIZES_AND_RANKS + ENV_ADDRESSES + ENV_CLUSTERS


@pytest.fixture(autouse=True)
def no_cluster(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No distributed variable from the machine running the tests; caches in tmp_path."""
    for name in list(os.environ):
        if name in DISTRIBUTED_NAMES or name.startswith(DISTRIBUTED_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("VLM_TUI_CACHE_DIR", str(tmp_path / "cache"))


def _row_id(args: list[str]) -> str:
    return ascii(" ".join(args))[:60]


def test_the_table_is_big_and_new() -> None:
    assert len(FLAG_ROWS) + len(ENV_ROWS) >= 40
    known = {tuple(args) for args, _, _ in BAD_FLAGS}
    assert not [args for args, _, _ in FLAG_ROWS if tuple(args) in known]
    assert len({tuple(args) for args, _, _ in FLAG_ROWS}) == len(FLAG_ROWS)


@pytest.mark.parametrize(
    ("args", "field", "allowed"), FLAG_ROWS, ids=[_row_id(row[0]) for row in FLAG_ROWS]
)
def test_hostile_flags(
    args: list[str],
    field: str,
    allowed: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    line = refused(args, tmp_path, monkeypatch, capsys)
    # Our validators name the flag; argparse's own refusals name every spelling of it.
    assert line.startswith((f"vlm-tui: error: {field}: ", f"vlm-tui: error: argument {field}/")), (
        line
    )
    assert allowed in line, line


@pytest.mark.parametrize(
    ("env", "variable", "allowed"),
    ENV_ROWS,
    ids=[_row_id([f"{k}={v}" for k, v in row[0].items()]) for row in ENV_ROWS],
)
def test_hostile_environment(
    env: dict[str, str],
    variable: str,
    allowed: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    line = refused(REQUIRED, tmp_path, monkeypatch, capsys)
    assert line.startswith(f"vlm-tui: error: {variable}: "), line
    assert allowed in line, line


@pytest.mark.parametrize(
    ("name", "content", "allowed"), CONFIG_FILES, ids=[row[0] for row in CONFIG_FILES]
)
def test_hostile_config_files(
    name: str,
    content: bytes,
    allowed: str,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path_factory.mktemp("configs") / name
    config.write_bytes(content)
    line = refused(["--config", str(config)], tmp_path, monkeypatch, capsys)
    assert line.startswith("vlm-tui: error: --config: "), line
    assert allowed in line, line


# Values in a loaded YAML that vlm-tui itself reads (not axolotl): checked before any run folder.
UNCHECKED_CONFIG_VALUES = [
    ("logging-steps-text.yml", b"output_dir: out\nlogging_steps: abc\n"),
    ("logging-steps-nan.yml", b"output_dir: out\nlogging_steps: .nan\n"),
    ("logging-steps-bool.yml", b"output_dir: out\nlogging_steps: true\n"),
    ("logging-steps-zero.yml", b"output_dir: out\nlogging_steps: 0\n"),
]


@pytest.mark.parametrize(
    ("name", "content"), UNCHECKED_CONFIG_VALUES, ids=[r[0] for r in UNCHECKED_CONFIG_VALUES]
)
def test_hostile_values_inside_a_config(
    name: str, content: bytes, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    config = tmp_path_factory.mktemp("configs") / name
    config.write_bytes(content)
    done = run_cli(
        ["--no-ui", "--dry-run", "--config", str(config)], tmp_path, _clean_env(tmp_path)
    )
    assert "Traceback" not in done.stderr
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "logging_steps" in done.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("learning_rate", "1e-4", 1e-4),
        ("learning_rate", "2E-05", 2e-5),
        ("learning_rate", ".5", 0.5),
        ("learning_rate", "+0.1", 0.1),
        ("warmup_ratio", "5.e-1", 0.5),
        ("lora_dropout", " 0 ", 0.0),
        ("batch_size", "+8", 8),
        ("batch_size", " 16\t", 16),
        ("seed", "0", 0),
        ("seed", "4294967295", 4294967295),
    ],
)
def test_plain_spellings_are_still_accepted(name: str, text: str, value: object) -> None:
    assert settings_from_values({name: text}, require_data=False).__dict__[name] == value


def test_minus_zero_is_written_as_zero() -> None:
    settings = settings_from_values(
        {"lora_dropout": "-0", "warmup_ratio": "-0.0"}, require_data=False
    )
    assert str(settings.lora_dropout) == str(settings.warmup_ratio) == "0.0"


def test_required_flags_alone_are_accepted(tmp_path: Path) -> None:
    """The environment rows fail on their variable, not on the flags they run with."""
    done = run_cli(["--no-ui", "--dry-run", *REQUIRED], tmp_path, _clean_env(tmp_path))
    assert (done.returncode, done.stderr) == (0, "")


def _clean_env(tmp_path: Path) -> dict[str, str]:
    env = clean_environ({"VLM_TUI_CACHE_DIR": str(tmp_path / "cache")})
    return {
        name: value
        for name, value in env.items()
        if name not in DISTRIBUTED_NAMES and not name.startswith(DISTRIBUTED_PREFIXES)
    }


# ---------------------------------------------------------------------------------------------
# The form: the same validators, the same words


def _single_value_rows() -> list[Row]:
    """Flag rows that give one value to one setting, refused by that setting's validator."""
    rows = []
    for args, field, allowed in FLAG_ROWS:
        name = field.removeprefix("--")
        if len(args) == 2 and name in FIELDS_BY_NAME and args[0] in (field, f"--{name}"):
            rows.append((args, field, allowed))
    return rows


FORM_ROWS = _single_value_rows()


def test_most_flag_rows_are_form_rows() -> None:
    assert len(FORM_ROWS) >= 60


@pytest.mark.parametrize(
    ("args", "field", "allowed"), FORM_ROWS, ids=[_row_id(row[0]) for row in FORM_ROWS]
)
def test_the_form_refuses_the_same_values_in_the_same_words(
    args: list[str],
    field: str,
    allowed: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = field.removeprefix("--")
    start = FormStart(settings=Settings())
    texts = {**start.texts(), name: args[1]}
    errors = field_errors(start, texts)
    assert name in errors
    assert allowed in errors[name]
    cli_line = refused(args, tmp_path, monkeypatch, capsys)
    assert cli_line == f"vlm-tui: error: {field}: {errors[name]}"


# The form's topology fields become the guide's variables, which resolve_topology checks: an
# address the form's own check lets through is still refused before anything starts.
FORM_ADDRESSES = [
    "node-0.invalid:29500",
    "node..invalid",
    "999.1.1.1",
    "a" * 64 + ".invalid",
    "node-0.invalid;id",
    "n\u00f6de.invalid",
    "node-0.invalid -x",
]


@pytest.mark.parametrize("address", FORM_ADDRESSES, ids=ascii)
def test_the_form_refuses_hostile_master_addresses(address: str) -> None:
    values = {"topology": "several_nodes", "nodes": "2", "node_rank": "0", "master_addr": address}
    with pytest.raises(UserError) as caught:
        choice = choice_from_values(values)
        resolve_topology(environ_for(choice, {}, 1), 0)
    assert caught.value.field in ("master_addr", "MASTER_ADDR")
    assert "host name or IP address" in caught.value.message


@pytest.mark.parametrize(
    ("field", "value"),
    [("master_port", "0"), ("master_port", "65536"), ("master_port", "-1"), ("nodes", "2.5")],
)
def test_the_form_refuses_hostile_topology_numbers(field: str, value: str) -> None:
    values = {"topology": "several_nodes", "nodes": "2", "node_rank": "0"}
    values.update(master_addr="node-0.invalid", **{field: value})
    with pytest.raises(UserError) as caught:
        choice_from_values(values)
    assert caught.value.field == field
    assert "whole number" in caught.value.message


def test_the_form_accepts_its_own_defaults_for_the_fields_rows_touch() -> None:
    start = FormStart(settings=Settings(dataset_name="owner/data", output_model_name="model"))
    assert field_errors(start, start.texts()) == {}


# ---------------------------------------------------------------------------------------------
# No shell, ever

_SHELL_CALLS = {
    ("os", "system"),
    ("os", "popen"),
    ("subprocess", "getoutput"),
    ("subprocess", "getstatusoutput"),
    ("pty", "spawn"),
}
_SHELLS = {"sh", "bash", "zsh", "dash", "/bin/sh", "/bin/bash"}


def shell_uses(source: str, filename: str = "<source>") -> list[str]:
    """Every way `source` could hand a command to a shell, as "file:line what"."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename)):
        if (
            isinstance(node, ast.keyword)
            and node.arg == "shell"
            and not (isinstance(node.value, ast.Constant) and node.value.value is False)
        ):
            found.append(f"{filename}:{node.value.lineno} shell=")
        if isinstance(node, ast.Call):
            func = node.func
            if (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and (func.value.id, func.attr) in _SHELL_CALLS
            ):
                found.append(f"{filename}:{node.lineno} {func.value.id}.{func.attr}")
            if isinstance(func, ast.Name) and func.id in ("system", "popen", "getoutput"):
                found.append(f"{filename}:{node.lineno} {func.id}")
        if isinstance(node, ast.List | ast.Tuple) and len(node.elts) >= 2:
            first, second = node.elts[0], node.elts[1]
            if (
                isinstance(first, ast.Constant)
                and first.value in _SHELLS
                and isinstance(second, ast.Constant)
                and second.value in ("-c", "-lc", "-ic")
            ):
                found.append(f"{filename}:{node.lineno} {first.value} -c")
    return found


def test_the_shell_check_finds_every_spelling() -> None:
    hostile = (
        "import os, subprocess\n"
        "from os import system\n"
        "subprocess.run('x', shell=True)\n"
        "subprocess.Popen(['x'], shell=flag)\n"
        "os.system('x')\n"
        "os.popen('x')\n"
        "subprocess.getoutput('x')\n"
        "system('x')\n"
        "subprocess.run(['/bin/sh', '-c', 'x'])\n"
    )
    assert len(shell_uses(hostile)) == 7
    assert shell_uses("subprocess.run(['x'], shell=False)\n") == []


def test_nothing_in_the_package_uses_a_shell() -> None:
    found: list[str] = []
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) > 20
    for path in sources:
        text = path.read_text(encoding="utf-8")
        found += shell_uses(text, str(path.relative_to(PACKAGE.parent)))
        # Plain text as well, should a call hide from the syntax tree (getattr, exec).
        for needle in ("shell=True", "os.system", "os.popen"):
            if needle in text:
                found.append(f"{path.name}: {needle}")
    assert found == []


# ---------------------------------------------------------------------------------------------
# Configs are serialised, never templated

HOSTILE_DATASET_NAME = (
    "train: #&*! 'q' \"d\" {x} [y] %s ${HOME} $(id) |> \u00e9\n- injected: true.jsonl"
)


def _hostile_dataset(root: Path) -> Path:
    folder = root / "data: #&*!'\"" / "- ~!!python/object"
    folder.mkdir(parents=True)
    path = folder / HOSTILE_DATASET_NAME
    row = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    return path


def test_hostile_but_valid_path_round_trips_through_the_yaml(tmp_path: Path) -> None:
    dataset = _hostile_dataset(tmp_path)
    settings = settings_from_values({"dataset_name": str(dataset), "output_model_name": "m"})
    config = build_axolotl_config(settings, CPU_ONLY, tmp_path)
    loaded = yaml.safe_load(dump_axolotl_yaml(config))
    assert loaded == config
    assert loaded["datasets"] == [
        {
            "path": str(dataset.resolve()),
            "type": "chat_template",
            "field_messages": "messages",
            "ds_type": "json",
        }
    ]
    assert "injected" not in loaded


def test_the_written_config_holds_the_hostile_path_exactly(tmp_path: Path) -> None:
    dataset = _hostile_dataset(tmp_path / "in")
    work = tmp_path / "work"
    work.mkdir()
    args = ["--no-ui", "--dry-run", "--dataset_name", str(dataset), "--output_model_name", "m"]
    done = run_cli(args, work, _clean_env(tmp_path))
    assert done.returncode == 0, done.stderr
    (written,) = (work / "runs").glob("*/config.yml")
    loaded = yaml.safe_load(written.read_text(encoding="utf-8"))
    # The training reads the run's checked copy; the record names the source exactly.
    assert loaded["datasets"][0]["path"] == str(written.parent / "dataset.jsonl")
    status = json.loads((written.parent / "status.json").read_text(encoding="utf-8"))
    assert status["datasets"][0]["source"] == str(dataset.resolve())
    assert "injected" not in loaded
    # What the settings build, and vlm-tui's own plugins that every launch adds (and, for a
    # LLaVA's role markers, the one that hands them to axolotl).
    assert loaded["plugins"] == [GRACEFUL_STOP_PLUGIN, DATA_WORKERS_PLUGIN, ROLE_BOUNDARIES_PLUGIN]
    assert set(loaded) == {
        "plugins",
        *build_axolotl_config(
            settings_from_values({"dataset_name": str(dataset), "output_model_name": "m"}),
            CPU_ONLY,
            work,
        ),
    }
