"""The checks between a plan and a launch, shared by both front-ends.

`--no-ui` prints each step's message; the TUI shows it in its log from a worker thread. The
first failure raises UserError (the user's to fix, exit 2) or SetupError, and nothing has been
created or launched by then.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

from vlm_tui.core.checks import doctor
from vlm_tui.core.data.run_dataset import PreparedData
from vlm_tui.core.data.token_lengths import TokenLengths, finish_count, start_count
from vlm_tui.core.errors import UserError
from vlm_tui.core.launch import steps
from vlm_tui.core.launch.command import require_training_stack
from vlm_tui.core.request.family_packages import require_family_packages
from vlm_tui.core.request.lora_target import apply_found, finish_probe, start_probe, target_is_ours
from vlm_tui.core.request.trackers import require_tracker_packages

Report = Callable[[str], None]


def prepare(
    plan: steps.RunPlan,
    environ: Mapping[str, str],
    workdir: Path,
    report: Report,
    *,
    skip_check: bool,
) -> PreparedData:
    """The training stack and what the model family needs, the demo assets, the datasets (their
    converted rows, for `record_run`), axolotl's schema check beside the count of tokens per
    row and the read of the model's layers (LoRA's target), then the pre-flight."""
    require_training_stack()
    template = plan.config.get("chat_template")
    require_family_packages(
        str(plan.config.get("base_model") or ""), template if isinstance(template, str) else None
    )
    require_tracker_packages(plan.config)
    if plan.demo_assets is not None:
        report("preparing the demo model and dataset")
        steps.build_demo_in_child(plan.demo_assets, environ)
    # Before the slower checks: a dataset's problems are the most common ones.
    data = steps.prepare_data(plan, workdir, report)
    counting = _start_token_count(plan, data, environ, report)
    layers = None
    if target_is_ours(plan.config):
        report("reading the language model's layers from the model")
        layers = start_probe(str(plan.config.get("base_model") or ""), environ)
    try:
        if not skip_check:
            report("checking the config with axolotl's schema")
            errors = steps.schema_errors(plan, dict(environ, HF_HUB_OFFLINE="1"))
            if errors:
                first = errors[0]
                more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
                raise UserError(f"config key {first['field']!r}", f"{first['message']}{more}")
        preflight(plan, environ, report)
        if layers is not None:
            report(apply_found(plan.config, finish_probe(layers)))
        if counting is not None:
            _report_token_count(plan, data, finish_count(counting), report)
    except BaseException:
        for child in (counting, layers):
            if child is not None and child.poll() is None:
                child.kill()
                child.wait()
        data.discard()
        raise
    return data


def _start_token_count(
    plan: steps.RunPlan, data: PreparedData, environ: Mapping[str, str], report: Report
) -> subprocess.Popen[str] | None:
    """The token count of the training rows, in a child beside the schema check."""
    training = data.training_rows()
    if training is None:
        return None
    report("counting tokens per row with the model's processor")
    return start_count(str(plan.config.get("base_model") or ""), training, environ)


def _report_token_count(
    plan: steps.RunPlan, data: PreparedData, counted: TokenLengths | str, report: Report
) -> None:
    if isinstance(counted, str):
        report(counted)
        return
    sequence_len = int(plan.config.get("sequence_len") or 0)
    report(counted.line())
    training = data.training_report()
    for warning in (
        counted.warning(sequence_len),
        counted.failure(training.good_where if training else []),
    ):
        if warning is not None:
            report(warning)
    data.token_lengths = counted.record(sequence_len)


def preflight(plan: steps.RunPlan, environ: Mapping[str, str], report: Report) -> None:
    """Local checks, then the network ones; the first failure stops the launch (exit 2)."""
    topology = plan.topology
    checks = doctor.local_checks(topology, plan.hardware, plan.output_dir, environ)
    if doctor.waits_for_master(topology):
        report(
            f"waiting up to {plan.settings.rendezvous_timeout} s for the master at"
            f" {topology.master_addr}:{topology.master_port}"
        )
    checks += doctor.network_checks(topology, wait_s=plan.settings.rendezvous_timeout)
    for check in checks:
        if check.outcome != "pass":
            report(f"pre-flight: {doctor.check_line(check)}")
    passed = sum(check.outcome == "pass" for check in checks)
    report(f"pre-flight: {passed}/{len(checks)} checks passed")
    failure = doctor.first_failure(checks)
    if failure is not None:
        raise UserError(failure.name, f"{failure.detail}; {failure.fix}".rstrip("; "))
