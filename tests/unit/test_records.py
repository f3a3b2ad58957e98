"""The run folder's records: one reader and one writer each, and nobody else reads them as JSON."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import vlm_tui
from vlm_tui.core.records.command_file import (
    RecordedTopology,
    read_command,
    recorded_topology,
    write_command,
)
from vlm_tui.core.records.folder import RunPaths, telemetry_folder
from vlm_tui.core.records.heartbeat_file import read_heartbeats, write_heartbeat
from vlm_tui.core.records.metrics_file import (
    EVAL,
    TRAIN,
    decode_line,
    encode_line,
    metric_point,
    read_records,
)
from vlm_tui.core.records.status_file import (
    StatusWriter,
    read_status,
    recorded_progress,
    write_status,
)
from vlm_tui.core.records.values import encoded_metric, finite, metric, whole, whole_or

PACKAGE = Path(vlm_tui.__file__).parent
RECORDS = PACKAGE / "core" / "records"
# Modules that parse JSON that is not a run-folder file, and what they parse.
OTHER_JSON = {
    "core/checks/schema_check.py": "the schema check child's one-line answer",
    "core/training_child.py": "a training child's one-line answer",
    "core/data/dataset_rows.py": "the user's dataset",
    "core/request/model_family.py": "a local model's config.json",
    "core/host/topology.py": "SageMaker's host list from the environment",
    "core/output/chunk_reader.py": "the training's printed metric dicts, rewritten to JSON",
    "core/after/child_lines.py": "a training-stack child's answer lines",
    "training/child_protocol.py": "a training-stack child's request, on stdin",
    "training/token_count.py": "the run's dataset rows",
}
JSON_READERS = {"read_json", "write_json_atomic", "load", "loads"}


def _json_calls(path: Path) -> list[str]:
    """Calls of a JSON reader (or of the run folder's raw reader and writer) in a module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module == "vlm_tui.core.records.folder":
            found += [f"imports {a.name}" for a in node.names if a.name in JSON_READERS]
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        json_module = isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
        if json_module and func.attr in ("load", "loads") and func.value.id in ("json", "orjson"):
            found.append(f"calls {func.value.id}.{func.attr} (line {node.lineno})")
        if isinstance(func, ast.Name) and func.id in ("read_json", "write_json_atomic"):
            found.append(f"calls {func.id} (line {node.lineno})")
    return found


def test_no_module_outside_the_records_reads_a_run_folder_file_as_json() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(PACKAGE).as_posix()
        if path.is_relative_to(RECORDS) or name in OTHER_JSON:
            continue
        wrong += [f"{name} {call}" for call in _json_calls(path)]
    assert wrong == [], "\n".join(wrong)


def test_the_modules_let_off_still_read_json_and_nothing_of_a_run_folder() -> None:
    # A module on the list that stopped parsing JSON must leave it; none names a record file.
    for name in OTHER_JSON:
        source = (PACKAGE / name).read_text(encoding="utf-8")
        assert _json_calls(PACKAGE / name), name
        for record in ("status.json", "command.json", "metrics.jsonl", ".status", ".command"):
            assert record not in source, (name, record)


def test_the_scan_sees_each_kind_of_json_read(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text(
        "import json\n"
        "from vlm_tui.core.records.folder import read_json\n"
        "a = json.loads('{}')\n"
        "b = json.load(open('x'))\n"
        "c = read_json(None)\n"
    )
    assert _json_calls(planted) == [
        "imports read_json",
        "calls json.loads (line 3)",
        "calls json.load (line 4)",
        "calls read_json (line 5)",
    ]


def test_values_read_a_wrong_type_as_missing() -> None:
    assert whole(3) == 3 and whole(True) is None and whole(3.0) is None and whole("3") is None
    assert whole_or(None, 7) == 7 and whole_or(0, 7) == 0
    assert finite(2) == 2.0 and finite(math.nan) is None and finite(False) is None
    assert finite("1.5") is None
    assert metric("nan") is not None and math.isnan(metric("nan") or 0.0)
    assert metric("-inf") == -math.inf and metric("x") is None and metric(True) is None
    assert [encoded_metric(v) for v in (math.nan, math.inf, -math.inf, 2)] == [
        "nan",
        "inf",
        "-inf",
        2,
    ]


def test_metrics_lines_round_trip_through_the_one_encoder_and_decoder(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path)
    train = {"kind": TRAIN, "time": 1.5, "step": 3, "loss": 0.5, "grad_norm": "inf"}
    lines = [
        encode_line(train),
        encode_line({"kind": EVAL, "time": 2.0, "step": 4, "eval_loss": 0.7}),
        "not json\n",
        '{"kind": "train", "step": 5, "loss": \n',  # torn: the writer was cut off
        encode_line({"kind": "checkpoint", "time": 3.0, "step": 4, "path": "x"}),
    ]
    paths.metrics.write_text("".join(lines))
    assert decode_line(lines[0]) == train
    assert decode_line(lines[2]) is None and decode_line("[1, 2]") is None
    assert read_records(paths, TRAIN) == [train]
    assert [r["kind"] for r in read_records(paths)] == [TRAIN, EVAL, "checkpoint"]
    point = metric_point(train)
    assert point is not None and point.kind == TRAIN and point.step == 3
    assert point.get("loss") == 0.5 and point.get("grad_norm") == math.inf
    assert point.get("missing") is None
    assert metric_point({"kind": "checkpoint", "step": 4}) is None
    assert metric_point({"kind": TRAIN, "step": True}) is None
    assert read_records(RunPaths(tmp_path / "none")) == []


def test_command_topology_is_typed_once(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path)
    assert read_command(paths) is None
    write_command(
        paths,
        {
            "argv": ["python"],
            "topology": {
                "nodes": 2,
                "node_rank": 1,
                "world_size": 4,
                "global_rank": 2,
                "local_rank": 0,
                "processes_per_node": 2,
                "master_addr": "node0.cluster.invalid",
                "master_port": 29500,
            },
        },
    )
    topology = recorded_topology(read_command(paths) or {})
    assert topology == RecordedTopology(2, 1, 2, 4, 2, 0, "node0.cluster.invalid", 29500)
    node_zero = RecordedTopology(2, 0, 2, 4, 0, 0, "node0.cluster.invalid", 29500)
    assert topology.same_job_as_node_zero(node_zero)
    assert not topology.same_job_as_node_zero(topology)  # node 1 is not node 0
    # A hand-edited record with wrong types reads as the defaults, never as an error.
    odd = recorded_topology({"topology": {"nodes": "2", "node_rank": True, "world_size": 0}})
    assert odd == RecordedTopology()
    assert recorded_topology({}) == RecordedTopology()


def test_status_reader_writer_and_progress(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path)
    assert read_status(paths) == {}
    write_status(paths, {"state": "created"})
    writer = StatusWriter(paths.status)
    writer.update(state="running", progress={"step": 4, "total": 32, "elapsed_s": 2.5})
    status = read_status(paths)
    assert status["state"] == "running"
    progress = recorded_progress(status)
    assert progress is not None and (progress.step, progress.total) == (4, 32)
    assert progress.elapsed_s == 2.5 and progress.steps_per_second is None
    assert recorded_progress({"progress": {"step": "4"}}) is None
    assert recorded_progress({}) is None


def test_heartbeats_skip_nodes_that_moved_and_foreign_files(tmp_path: Path) -> None:
    folder = telemetry_folder(tmp_path)
    folder.mkdir()
    write_heartbeat(folder / "node0-a.json", {"node_rank": 0, "seq": 3})
    write_heartbeat(folder / "node1-b.json", {"node_rank": 1, "moved_to": "other"})
    (folder / "node2-c.jsonl").write_text("{}\n")
    (folder / "notes.json").write_text("{}")
    assert read_heartbeats(tmp_path) == [{"node_rank": 0, "seq": 3}]
    assert read_heartbeats(tmp_path, "node1-*.json") == []
    assert read_heartbeats(tmp_path / "missing") == []
