"""Preflight: what a run will send and what it will cost, computed before the first paid call.

The queries are written locally (cheap and deterministic), so counts and token estimates come
from the real generated text; teacher answers are sized from the local reference teacher's
answers, which have the same shape. Prices come from the one table in pricing.py (plus
overrides). Nothing here calls AWS.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from intent_router.backends.base import Backend
from intent_router.errors import UserInputError
from intent_router.params import DistillParams, MonitorParams
from intent_router.planning import plan_generation
from intent_router.pricing import (
    BATCH_DISCOUNT,
    LabellingPath,
    ModelPrice,
    estimate_tokens,
    price_for,
)
from intent_router.prompts import student_system_prompt, teacher_prompt, teacher_user_message
from intent_router.registry import ChampionRegistry
from intent_router.storage import ObjectStore, check_writable
from intent_router.synthesis import QueryWriter
from intent_router.taxonomy import Taxonomy
from intent_router.teacher import ReferenceTeacher
from intent_router.training_modes import TrainingMode, teacher_response_tokens


class CostLine(BaseModel):
    model_config = ConfigDict(frozen=True)

    item: str
    model_id: str
    calls: int
    input_tokens: int
    output_tokens: int
    usd: float | None  # None: no price known for this item
    recurring: str | None = None  # e.g. "per month": not part of the run's one-off total


class CostEstimate(BaseModel):
    model_config = ConfigDict(frozen=True)

    lines: tuple[CostLine, ...]
    generated_queries: int
    training_tokens: int
    mode: str = "fine-tune-labelled"
    pipeline_training_labels: int = 0  # teacher calls the pipeline makes for training records

    @property
    def known_usd(self) -> float:
        """The run's one-off cost from the priced lines (recurring lines excluded)."""
        return sum(line.usd or 0.0 for line in self.lines if line.recurring is None)

    @property
    def recurring_usd(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for line in self.lines:
            if line.recurring is not None and line.usd is not None:
                out[line.recurring] = out.get(line.recurring, 0.0) + line.usd
        return out

    @property
    def unpriced(self) -> list[str]:
        return [line.item for line in self.lines if line.usd is None]


def table_price(model_id: str) -> ModelPrice | None:
    """The price table's entry, or None for a model it does not list."""
    try:
        return price_for(model_id)
    except KeyError:
        return None


def _line(
    item: str,
    model_id: str,
    calls: int,
    inp: int,
    out: int,
    price: ModelPrice | None,
    *,
    discount: float = 1.0,
    recurring: str | None = None,
) -> CostLine:
    return CostLine(
        item=item,
        model_id=model_id,
        calls=calls,
        input_tokens=inp,
        output_tokens=out,
        usd=price.cost(inp, out) * discount if price else None,
        recurring=recurring,
    )


def estimate_cost(
    params: DistillParams,
    taxonomy: Taxonomy,
    *,
    teacher_model_id: str,
    evaluated_models: Mapping[str, str],
    mode: TrainingMode = TrainingMode.FINE_TUNE_LABELLED,
    price_of: Callable[[str], ModelPrice | None] = table_price,
    training_usd_per_1k_tokens: float | None = None,
    storage_usd_per_model_month: float | None = None,
    epochs: int = 2,
    response_tokens: int | None = None,
    traffic_queries: Sequence[str] = (),
    extra_eval_queries: Sequence[str] = (),
    labelling_path_of: Callable[[int], LabellingPath] | None = None,
    monitor_sample: int | None = None,
) -> CostEstimate:
    """Every paid thing of a run in the chosen training mode, from the real generated queries.

    - pipeline labelling: the holdout always; training queries only in fine-tune-labelled
      (on demand, or batch inference at its discount for the batches that
      `labelling_path_of(n)`, i.e. Backend.labelling_path, sends there); plus new traffic
      (`traffic_queries`, already filtered to what the mode labels and the cache lacks);
    - curated examples (distill-prompts);
    - teacher inference inside the job (distillation modes; invocation logs: `train_count`
      logged prompts assumed, none when the logged responses are used);
    - training (tokens x epochs), custom-model storage (per month);
    - evaluation: each of `evaluated_models` (display name -> model id) once per evaluation
      query; the candidate with the prompt the mode trains it on;
    - the drift monitor's sample (per check), when `monitor_sample` is given.
    """
    plan = plan_generation(params, taxonomy)
    teacher = ReferenceTeacher(taxonomy)
    prompt_tokens = estimate_tokens(teacher_prompt(taxonomy))
    student_prompt_tokens = estimate_tokens(student_system_prompt(taxonomy))
    teacher_price = price_of(teacher_model_id)
    on_demand_in = on_demand_out = on_demand_calls = 0
    batch_in = batch_out = batch_calls = 0
    train_seen = 0
    train_record_tokens = job_in = job_out = 0  # per generated training query, summed
    answer_total = answers = 0
    eval_queries: list[str] = []
    batch_in = batch_out = batch_calls = 0  # batch labelling: part of the sums above
    for batch in plan.all_batches:
        writer = QueryWriter(taxonomy, batch.vocabulary)
        queries = [q for quota in batch.quotas for q in writer.write_cell(quota)]
        is_train = batch.split == "train"
        labelled = not is_train or mode.labels_training
        batched = labelled and (
            labelling_path_of is not None and labelling_path_of(len(queries)) == "batch"
        )
        for query in queries:
            answer = estimate_tokens(teacher.label_json(query))
            answer_total += answer
            answers += 1
            if labelled:
                inp = prompt_tokens + estimate_tokens(teacher_user_message(query))
                if batched:
                    batch_calls, batch_in, batch_out = (
                        batch_calls + 1,
                        batch_in + inp,
                        batch_out + answer,
                    )
                else:
                    on_demand_calls += 1
                    on_demand_in, on_demand_out = on_demand_in + inp, on_demand_out + answer
            if is_train:
                train_seen += 1
                quoted = prompt_tokens + estimate_tokens(teacher_user_message(query))
                if mode is TrainingMode.DISTILL_PROMPTS:
                    train_record_tokens += quoted + answer
                else:
                    train_record_tokens += student_prompt_tokens + estimate_tokens(query) + answer
                job_in, job_out = job_in + quoted, job_out + answer
            else:
                eval_queries.append(query)
    for query in traffic_queries:
        on_demand_calls += 1
        on_demand_in += prompt_tokens + estimate_tokens(teacher_user_message(query))
        on_demand_out += estimate_tokens(teacher.label_json(query))
    mean_answer = round(answer_total / max(1, answers))
    # Oversampled batches are trimmed to train_count: scale per-query sums to train_count.
    scale = params.train_count / max(1, train_seen)
    train_tokens = round(train_record_tokens * scale)
    lines = [
        _line(
            "pipeline labelling (Converse, on demand)"
            + (f", incl. {len(traffic_queries):,} new traffic queries" if traffic_queries else ""),
            teacher_model_id,
            on_demand_calls,
            on_demand_in,
            on_demand_out,
            teacher_price,
        )
    ]
    if batch_calls:
        lines.append(
            _line(
                f"pipeline labelling (batch inference, {BATCH_DISCOUNT:.0%} off)",
                teacher_model_id,
                batch_calls,
                batch_in,
                batch_out,
                teacher_price,
                discount=1 - BATCH_DISCOUNT,
            )
        )
    if mode is TrainingMode.DISTILL_PROMPTS and params.prompt_examples:
        n = min(params.prompt_examples, params.train_count)
        per_in = round(job_in / max(1, train_seen))
        lines.append(
            _line(
                "curated examples (Converse)",
                teacher_model_id,
                n,
                n * per_in,
                n * mean_answer,
                teacher_price,
            )
        )
    if mode.teacher_in_job:
        logged = mode is TrainingMode.DISTILL_INVOCATION_LOGS
        # train_count holds the traffic share too (the merge trims synthetic to fit)
        prompts = 0 if logged and params.invocation_logs_use_responses else params.train_count
        cap = response_tokens or mean_answer
        lines.append(
            _line(
                "teacher inference inside the job"
                + (f" (assumes {prompts:,} logged prompts)" if logged else "")
                + f", answers up to {cap} tokens",
                teacher_model_id,
                prompts,
                round(job_in * scale) if not logged else prompts * prompt_tokens,
                prompts * mean_answer,
                teacher_price,
            )
        )
    lines.append(
        CostLine(
            item=f"student training ({epochs} epochs"
            + (", assumed: the service chooses)" if mode.teacher_in_job else ")"),
            model_id="training",
            calls=1,
            input_tokens=train_tokens * epochs,
            output_tokens=0,
            usd=(
                train_tokens * epochs / 1000 * training_usd_per_1k_tokens
                if training_usd_per_1k_tokens is not None
                else None
            ),
        )
    )
    lines.append(
        CostLine(
            item="custom model storage",
            model_id="storage",
            calls=1,
            input_tokens=0,
            output_tokens=0,
            usd=storage_usd_per_model_month,
            recurring="per month",
        )
    )
    eval_queries += list(extra_eval_queries)
    eval_in = sum(estimate_tokens(q) for q in eval_queries)
    quoted_in = sum(estimate_tokens(teacher_user_message(q)) for q in eval_queries)
    for name, model_id in evaluated_models.items():
        teacher_prompted = name != "candidate" or mode.student_prompt == "teacher"
        inp = (
            quoted_in + len(eval_queries) * prompt_tokens
            if teacher_prompted
            else eval_in + len(eval_queries) * student_prompt_tokens
        )
        out = len(eval_queries) * mean_answer
        lines.append(
            _line(f"evaluation: {name}", model_id, len(eval_queries), inp, out, price_of(model_id))
        )
    if monitor_sample:
        champion_id = evaluated_models.get("candidate", teacher_model_id)
        sample_in = monitor_sample * (prompt_tokens + 30)
        for item, model_id, inp in (
            ("drift monitor: teacher labels the sample", teacher_model_id, sample_in),
            ("drift monitor: champion routes the sample", champion_id, sample_in),
        ):
            lines.append(
                _line(
                    item,
                    model_id,
                    monitor_sample,
                    inp,
                    monitor_sample * mean_answer,
                    price_of(model_id),
                    recurring="per check",
                )
            )
    return CostEstimate(
        lines=tuple(lines),
        generated_queries=on_demand_calls + batch_calls,
        training_tokens=train_tokens,
        mode=mode.value,
        pipeline_training_labels=round(train_seen * scale) if mode.labels_training else 0,
    )


def estimate_monitor_cost(
    queries: Sequence[str],
    taxonomy: Taxonomy,
    *,
    teacher_model_id: str,
    champion_model_id: str,
    price_of: Callable[[str], ModelPrice | None] = table_price,
) -> CostEstimate:
    """A drift check: the teacher labels the sample (full prompt), the champion routes it."""
    teacher = ReferenceTeacher(taxonomy)
    answers = [estimate_tokens(teacher.label_json(q)) for q in queries]
    query_tokens = sum(estimate_tokens(q) for q in queries)
    lines = []
    for item, model_id, prompt in (
        ("teacher labelling (Converse)", teacher_model_id, teacher_prompt(taxonomy)),
        ("champion routing", champion_model_id, student_system_prompt(taxonomy)),
    ):
        inp = query_tokens + len(queries) * estimate_tokens(prompt)
        out = sum(answers)
        price = price_of(model_id)
        lines.append(
            CostLine(
                item=item,
                model_id=model_id,
                calls=len(queries),
                input_tokens=inp,
                output_tokens=out,
                usd=price.cost(inp, out) if price else None,
            )
        )
    return CostEstimate(lines=tuple(lines), generated_queries=len(queries), training_tokens=0)


def check_budget(
    estimate: CostEstimate, budget_usd: float | None, allow_unpriced: bool = False
) -> None:
    """Stop before anything is paid when a budgeted run has unpriced lines (unless allowed) or
    the run's one-off estimate exceeds the budget."""
    if budget_usd is None:
        return
    if estimate.unpriced and not allow_unpriced:
        raise UserInputError(
            f"cannot check the budget of ${budget_usd:,.2f}: no price for "
            f"{', '.join(estimate.unpriced)}; set the prices (training_usd_per_1k_tokens, "
            "storage_usd_per_model_month or price_overrides in the backend's settings) or "
            "allow_unpriced: true"
        )
    if estimate.known_usd > budget_usd:
        raise UserInputError(
            f"estimated cost ${estimate.known_usd:,.2f} exceeds the budget of ${budget_usd:,.2f}"
            + (f" (not priced: {', '.join(estimate.unpriced)})" if estimate.unpriced else "")
        )


def format_estimate(estimate: CostEstimate) -> list[dict[str, Any]]:
    return [
        {
            "item": line.item,
            "model": line.model_id,
            "calls": line.calls,
            "input_tokens": line.input_tokens,
            "output_tokens": line.output_tokens,
            "usd": "not priced" if line.usd is None else round(line.usd, 4),
            "when": line.recurring or "this run",
        }
        for line in estimate.lines
    ]


def check_run_state(store: ObjectStore, router: str, check_model: Callable[[str], None]) -> None:
    """Before any paid call: the store is writable, the router's pointer and ledger are readable
    and consistent (never "no champion" when corrupt), and the champion's model still exists."""
    check_writable(store)
    registry = ChampionRegistry(store, router)
    registry.check()
    champion = registry.current()
    if champion is not None:
        check_model(champion.model_id)


def cost_inputs(backend: Backend, taxonomy: Taxonomy, mode: TrainingMode) -> dict[str, Any]:
    """The backend's side of a cost estimate: models, prices and training settings."""
    targets = backend.baselines(taxonomy)
    teacher = next(t for t in targets if t.role == "teacher")
    candidate = backend.target_for_deployment(
        "preflight", "candidate", "candidate", mode.student_prompt
    )

    def price_of(model_id: str) -> ModelPrice | None:
        try:
            return backend.price_for(model_id)
        except KeyError:
            return None

    return {
        "mode": mode,
        "teacher_model_id": teacher.priced_as,
        "evaluated_models": {t.name: t.priced_as for t in [candidate, *targets]},
        "price_of": price_of,
        "training_usd_per_1k_tokens": backend.training_price_per_1k(),
        "storage_usd_per_model_month": backend.storage_price_per_model_month(),
        "epochs": backend.training_epochs(),
        "response_tokens": teacher_response_tokens(taxonomy),
        "monitor_sample": MONITOR_SAMPLE if backend.paid else None,
        "labelling_path_of": backend.labelling_path,
    }


MONITOR_SAMPLE: int = MonitorParams.model_fields["sample_size"].default
"""The drift monitor's default sample per check (MonitorParams.sample_size)."""
