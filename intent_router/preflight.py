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

from intent_router.errors import UserInputError
from intent_router.params import DistillParams
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


class CostLine(BaseModel):
    model_config = ConfigDict(frozen=True)

    item: str
    model_id: str
    calls: int
    input_tokens: int
    output_tokens: int
    usd: float | None  # None: no price known for this item


class CostEstimate(BaseModel):
    model_config = ConfigDict(frozen=True)

    lines: tuple[CostLine, ...]
    generated_queries: int
    training_tokens: int

    @property
    def known_usd(self) -> float:
        return sum(line.usd or 0.0 for line in self.lines)

    @property
    def unpriced(self) -> list[str]:
        return [line.item for line in self.lines if line.usd is None]


def table_price(model_id: str) -> ModelPrice | None:
    """The price table's entry, or None for a model it does not list."""
    try:
        return price_for(model_id)
    except KeyError:
        return None


def estimate_cost(
    params: DistillParams,
    taxonomy: Taxonomy,
    *,
    teacher_model_id: str,
    evaluated_models: Mapping[str, str],
    price_of: Callable[[str], ModelPrice | None] = table_price,
    training_usd_per_1k_tokens: float | None = None,
    epochs: int = 2,
    traffic_queries: Sequence[str] = (),
    extra_eval_queries: Sequence[str] = (),
    labelling_path_of: Callable[[int], LabellingPath] | None = None,
) -> CostEstimate:
    """Teacher labelling + student training + evaluation, from the real generated queries.

    labelling_path_of: how a labelling batch of n queries is sent (Backend.labelling_path);
    batches sent to batch inference are priced at (1 - BATCH_DISCOUNT) in their own line.

    evaluated_models: display name -> model id, each invoked once per evaluation query.
    traffic_queries: traffic the teacher has not labelled yet (not in the label cache);
    extra_eval_queries: the traffic slice and the golden set, evaluated by every model.
    """
    plan = plan_generation(params, taxonomy)
    teacher = ReferenceTeacher(taxonomy)
    prompt_tokens = estimate_tokens(teacher_prompt(taxonomy))
    student_prompt_tokens = estimate_tokens(student_system_prompt(taxonomy))
    label_in = label_out = calls = 0
    train_tokens = 0
    eval_queries: list[str] = []
    batch_in = batch_out = batch_calls = 0  # batch labelling: part of the sums above
    for batch in plan.all_batches:
        writer = QueryWriter(taxonomy, batch.vocabulary)
        before = (label_in, label_out, calls)
        for quota in batch.quotas:
            for query in writer.write_cell(quota):
                answer = estimate_tokens(teacher.label_json(query))
                calls += 1
                label_in += prompt_tokens + estimate_tokens(teacher_user_message(query))
                label_out += answer
                if batch.split == "train":
                    train_tokens += student_prompt_tokens + estimate_tokens(query) + answer
                else:
                    eval_queries.append(query)
        if labelling_path_of is not None and labelling_path_of(calls - before[2]) == "batch":
            batch_in += label_in - before[0]
            batch_out += label_out - before[1]
            batch_calls += calls - before[2]
    synthetic_calls = calls
    for query in traffic_queries:
        calls += 1
        label_in += prompt_tokens + estimate_tokens(query)
        label_out += estimate_tokens(teacher.label_json(query))
    eval_queries += list(extra_eval_queries)
    train_tokens = round(train_tokens * min(1.0, params.train_count / max(1, synthetic_calls)))
    lines: list[CostLine] = []
    teacher_price = price_of(teacher_model_id)
    on_demand_in, on_demand_out = label_in - batch_in, label_out - batch_out
    lines.append(
        CostLine(
            item="teacher labelling (Converse)"
            + (f", incl. {len(traffic_queries):,} new traffic queries" if traffic_queries else ""),
            model_id=teacher_model_id,
            calls=calls - batch_calls,
            input_tokens=on_demand_in,
            output_tokens=on_demand_out,
            usd=teacher_price.cost(on_demand_in, on_demand_out) if teacher_price else None,
        )
    )
    if batch_calls:
        lines.append(
            CostLine(
                item=f"teacher labelling (batch inference, {BATCH_DISCOUNT:.0%} off)",
                model_id=teacher_model_id,
                calls=batch_calls,
                input_tokens=batch_in,
                output_tokens=batch_out,
                usd=(
                    teacher_price.cost(batch_in, batch_out) * (1 - BATCH_DISCOUNT)
                    if teacher_price
                    else None
                ),
            )
        )
    lines.append(
        CostLine(
            item=f"student training ({epochs} epochs)",
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
    eval_in = sum(estimate_tokens(q) for q in eval_queries)
    quoted_in = sum(estimate_tokens(teacher_user_message(q)) for q in eval_queries)
    for name, model_id in evaluated_models.items():
        price = price_of(model_id)
        uses_teacher_prompt = name != "candidate"
        inp = (
            quoted_in + len(eval_queries) * prompt_tokens
            if uses_teacher_prompt
            else eval_in + len(eval_queries) * student_prompt_tokens
        )
        out = len(eval_queries) * round(label_out / max(1, calls))
        lines.append(
            CostLine(
                item=f"evaluation: {name}",
                model_id=model_id,
                calls=len(eval_queries),
                input_tokens=inp,
                output_tokens=out,
                usd=price.cost(inp, out) if price else None,
            )
        )
    return CostEstimate(lines=tuple(lines), generated_queries=calls, training_tokens=train_tokens)


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


def check_budget(estimate: CostEstimate, budget_usd: float | None) -> None:
    """Stop before anything is paid when the known estimate exceeds the budget."""
    if budget_usd is not None and estimate.known_usd > budget_usd:
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
