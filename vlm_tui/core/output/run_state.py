"""What a run's output says so far: progress, losses, saved model, the error that ended it.

The supervisor folds events into a RunState to write status.json; a front-end that follows
train.log folds the same events into its own RunState, so both see the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from vlm_tui.core.output.output_parser import (
    CheckpointSaved,
    EvalMetrics,
    Event,
    LogLine,
    Metrics,
    ModelSaved,
    OutputParser,
    Progress,
    Summary,
    TracebackEvent,
)
from vlm_tui.core.records.metrics_file import (
    CHECKPOINT,
    ERROR,
    EVAL,
    MODEL_SAVED,
    SUMMARY,
    TRAIN,
    encode_line,
)
from vlm_tui.core.records.values import encoded_metric, finite

if TYPE_CHECKING:
    from vlm_tui.core.output.failure_hints import FailureScanner

TOKENS_PER_SECOND_KEY = "tokens/train_per_sec_per_gpu"
# Logged with each step's metrics: the tokens that carry a label, and the gradient's norm.
TRAINABLE_TOKENS_KEY = "tokens/trainable"
GRAD_NORM_KEY = "grad_norm"
EVAL_LOSS_KEY = "eval_loss"

NOTHING_TRAINED_NO_LABELS = (
    "no token carried a label: tokens/trainable was 0 at every logged step, so the loss was 0"
    " and no weight was updated; the model learned nothing",
    "check that every row has an assistant turn with text, that chat_template matches the model"
    " family (it decides which tokens are the answer), and that sequence_len is not shorter than"
    " the prompt with its image tokens",
)
NOTHING_TRAINED_ZERO_GRADIENT = (
    "the gradient norm was 0 at every logged step: no weight was updated; the model learned"
    " nothing",
    "check that lora_target_modules names layers of this model and that the rows' answers are"
    " not all masked (tokens/trainable in the log)",
)


def _failure_scanner() -> FailureScanner:
    # Imported on first use: its hundred-odd patterns cost ~30 ms to compile, which a dry run
    # or `--help` never needs.
    from vlm_tui.core.output.failure_hints import FailureScanner

    return FailureScanner()


def parser_for_run(command: dict[str, Any]) -> OutputParser:
    """The parser command.json describes; supervisor and followers must number steps alike."""
    return OutputParser(
        logging_steps=int(command.get("logging_steps", 1)),
        start_step=int(command.get("start_step", 0)),
    )


def _json_values(values: Mapping[str, float | int]) -> Mapping[str, float | int | str]:
    """Values as JSON can hold them (see records.values.encoded_metric)."""
    try:
        # One C-level sum: finite only if every value is (an overflow just takes the long way).
        if math.isfinite(sum(values.values())):
            return values
    except OverflowError:
        pass
    return {key: encoded_metric(value) for key, value in values.items()}


def metric_record(event: Event, time: float) -> dict[str, Any] | None:
    """The metrics.jsonl line for an event, or None for events that are not recorded."""
    if isinstance(event, Metrics | EvalMetrics):
        kind = TRAIN if isinstance(event, Metrics) else EVAL
        values = _json_values(event.values)
        return {"kind": kind, "time": round(time, 3), "step": event.step, **values}
    if isinstance(event, Summary):
        return {"kind": SUMMARY, "time": round(time, 3), **_json_values(event.values)}
    if isinstance(event, CheckpointSaved):
        return {
            "kind": CHECKPOINT,
            "time": round(time, 3),
            "step": event.step,
            "path": event.path,
        }
    if isinstance(event, ModelSaved):
        return {"kind": MODEL_SAVED, "time": round(time, 3), "path": event.path}
    if isinstance(event, TracebackEvent):
        return {"kind": ERROR, "time": round(time, 3), "error": event.error, "rank": event.rank}
    return None


_RECORDED = (Metrics, EvalMetrics, Summary, CheckpointSaved, ModelSaved, TracebackEvent)


def metric_line(event: Event, time: float) -> str | None:
    """metric_record as the line metrics.jsonl holds (JSON and a newline), or None."""
    record = metric_record(event, time)
    return None if record is None else encode_line(record)


@dataclass
class RunState:
    progress: Progress | None = None
    step: int = 0
    first_loss: float | None = None
    last_loss: float | None = None
    learning_rate: float | None = None
    summary: dict[str, float | int] = field(default_factory=dict)
    checkpoints: list[str] = field(default_factory=list)
    model_saved_to: str | None = None
    last_error: str | None = None
    losses: list[tuple[int, float]] = field(default_factory=list)
    learning_rates: list[tuple[int, float]] = field(default_factory=list)
    # axolotl logs tokens per second per GPU with each step's metrics.
    tokens_per_second_per_gpu: float | None = None
    # The most labelled tokens and the largest gradient norm of any logged step (None: not
    # logged): both 0 over a whole run mean nothing was trained.
    most_trainable_tokens: float | None = None
    largest_grad_norm: float | None = None
    # Evaluation losses by step, and the lowest with its step.
    eval_losses: list[tuple[int, float]] = field(default_factory=list)
    best_eval: tuple[int, float] | None = None
    # Known distributed failures seen in the output; shown only if the run fails, since some
    # (a retried connection) also appear in runs that go on to succeed.
    failures: FailureScanner = field(default_factory=_failure_scanner)

    def apply(self, event: Event) -> None:
        if type(event) is LogLine:
            # A metric dict is the trainer's numbers, not a message: nothing to scan for.
            if not event.metrics:
                self.failures.feed(event.text)
        else:
            self._apply(event)

    def absorb(self, events: Iterable[Event]) -> None:
        """apply() each event, with one failure scan over all the lines (cheaper, same result)."""
        lines = []
        for event in events:
            if type(event) is LogLine:
                if not event.metrics:
                    lines.append(event.text)
            else:
                self._apply(event)
        self.failures.feed_lines(lines)

    def absorb_training_dicts(self, steps: list[int], dicts: list[dict[str, float | int]]) -> None:
        """apply() of Metrics(step, values) for each pair, at once: a bulk reader's dicts, whose
        values are all numbers (bools excluded) and each with a 'loss'."""
        if not steps:
            return
        self.step = steps[-1]
        losses = [float(values["loss"]) for values in dicts]
        if self.first_loss is None:
            self.first_loss = losses[0]
        self.last_loss = losses[-1]
        self.losses += zip(steps, losses, strict=True)
        rates = [
            (step, float(rate))
            for step, values in zip(steps, dicts, strict=True)
            if (rate := values.get("learning_rate")) is not None
        ]
        if rates:
            self.learning_rate = rates[-1][1]
            self.learning_rates += rates
        for values in reversed(dicts):
            tokens = values.get(TOKENS_PER_SECOND_KEY)
            if tokens is not None and math.isfinite(tokens):
                self.tokens_per_second_per_gpu = float(tokens)
                break
        self.most_trainable_tokens = _largest(
            self.most_trainable_tokens, [values.get(TRAINABLE_TOKENS_KEY) for values in dicts]
        )
        self.largest_grad_norm = _largest(
            self.largest_grad_norm, [values.get(GRAD_NORM_KEY) for values in dicts]
        )

    def _apply(self, event: Event) -> None:
        if isinstance(event, Progress):
            # Dataset "Map" bars have a description; evaluation bars have none either, but
            # another total than the trainer's bar, which is the first one without a description.
            if (
                not event.description
                and event.total is not None
                and (self.progress is None or event.total == self.progress.total)
            ):
                self.progress = event
        elif isinstance(event, Metrics):
            self.step = event.step
            loss = event.values.get("loss")
            if isinstance(loss, int | float):
                loss = float(loss)
                if self.first_loss is None:
                    self.first_loss = loss
                self.last_loss = loss
                self.losses.append((event.step, loss))
            rate = event.values.get("learning_rate")
            if isinstance(rate, int | float):
                self.learning_rate = float(rate)
                self.learning_rates.append((event.step, float(rate)))
            tokens = event.values.get(TOKENS_PER_SECOND_KEY)
            if isinstance(tokens, int | float) and math.isfinite(tokens):
                self.tokens_per_second_per_gpu = float(tokens)
            self.most_trainable_tokens = _larger(
                self.most_trainable_tokens, event.values.get(TRAINABLE_TOKENS_KEY)
            )
            self.largest_grad_norm = _larger(
                self.largest_grad_norm, event.values.get(GRAD_NORM_KEY)
            )
        elif isinstance(event, EvalMetrics):
            loss = event.values.get(EVAL_LOSS_KEY)
            if isinstance(loss, int | float) and math.isfinite(loss):
                self.eval_losses.append((event.step, float(loss)))
                if self.best_eval is None or loss < self.best_eval[1]:
                    self.best_eval = (event.step, float(loss))
        elif isinstance(event, Summary):
            self.summary = dict(event.values)
        elif isinstance(event, CheckpointSaved):
            if event.step is not None:
                # A save without a step number is the final model going into output_dir.
                self.checkpoints.append(event.path)
        elif isinstance(event, ModelSaved):
            self.model_saved_to = event.path
        elif isinstance(event, TracebackEvent):
            self.last_error = event.error

    def status_fields(self) -> dict[str, Any]:
        """The part of status.json that comes from the output."""
        progress = self.progress
        return {
            "progress": None
            if progress is None
            else {
                "step": progress.step,
                "total": progress.total,
                "steps_per_second": finite(progress.steps_per_second),
                "elapsed_s": finite(progress.elapsed_s),
                "remaining_s": finite(progress.remaining_s),
            },
            "steps": self.step,
            "first_loss": finite(self.first_loss),
            "final_loss": finite(self.last_loss),
            "summary": {key: encoded_metric(value) for key, value in self.summary.items()},
            "checkpoints": list(self.checkpoints),
            "model_saved_to": self.model_saved_to,
            "last_error": self.last_error,
            **self.eval_fields(),
        }

    def eval_fields(self) -> dict[str, Any]:
        """The evaluation part of status.json: empty for a run that evaluates nothing."""
        if self.best_eval is None:
            return {}
        return {
            "last_eval_loss": self.eval_losses[-1][1],
            "best_eval_loss": self.best_eval[1],
            "best_eval_step": self.best_eval[0],
        }

    def nothing_trained(self) -> tuple[str, str] | None:
        """Cause and fix when the logged steps show that no weight was updated, else None.

        A NaN gradient norm is a failure of its own kind, not "nothing": it counts as moved.
        """
        if self.step == 0:
            return None
        if self.most_trainable_tokens == 0:
            return NOTHING_TRAINED_NO_LABELS
        if self.largest_grad_norm == 0:
            return NOTHING_TRAINED_ZERO_GRADIENT
        return None

    def failure_fields(self) -> dict[str, Any]:
        """The cause and fix of a failed run, for status.json (empty when nothing matched)."""
        hint = self.failures.best
        if hint is None:
            return {}
        return {"hint": hint.key, "cause": hint.cause, "fix": hint.fix}


def _larger(so_far: float | None, value: object) -> float | None:
    """The larger of `so_far` and a logged number; NaN wins, so it never reads as zero."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return so_far
    if math.isnan(value):
        return math.inf
    return float(value) if so_far is None else max(so_far, float(value))


def _largest(so_far: float | None, logged: list[float | int | None]) -> float | None:
    """_larger over numbers in turn (None: not logged)."""
    numbers = [value for value in logged if value is not None]
    if not numbers:
        return so_far
    if any(math.isnan(value) for value in numbers):
        return math.inf
    most = float(max(numbers))
    return most if so_far is None else max(so_far, most)


class OutputRecorder:
    """The supervisor's work on each chunk of a training's output: parse it, fold the events
    into the run's state, append their records to metrics.jsonl."""

    def __init__(self, parser: OutputParser, state: RunState, metrics: IO[str]) -> None:
        self.parser = parser
        self.state = state
        self.metrics = metrics

    def feed(self, chunk: bytes, time: float) -> list[Event]:
        """Record a chunk read at `time` (epoch seconds); its events, for whoever wants them."""
        events = self.parser.feed(chunk)
        self.record(events, time)
        return events

    def finish(self, time: float) -> list[Event]:
        """Record what the end of the output completes (a last line, an open traceback)."""
        events = self.parser.finish()
        self.record(events, time)
        return events

    def record(self, events: list[Event], time: float) -> None:
        self.state.absorb(events)
        lines = [metric_line(event, time) for event in events if type(event) in _RECORDED]
        self.metrics.write("".join(line for line in lines if line is not None))
        self.metrics.flush()
