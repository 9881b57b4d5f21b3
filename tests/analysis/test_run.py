"""The pure analysis core: run specs from templates, measurement verdicts, metric and run
verdicts with Argo Rollouts' limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shoal.analysis.run import (
    MissingArgumentsError,
    Observation,
    assess,
    build_run_spec,
    next_due,
    record,
    run_verdict,
)
from shoal.api.analysis import AnalysisRun, AnalysisTemplate, Metric
from shoal.api.rollout import AnalysisRef

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def metric(**fields: Any) -> Metric:
    doc = {"name": "m", "interval": "2s", "provider": {"web": {"url": "http://x/"}}, **fields}
    return Metric.from_json(doc)


def measure_all(m: Metric, values: list[Any]) -> Any:
    result = None
    for index, value in enumerate(values):
        when = T0 + timedelta(seconds=index * m.interval_seconds)
        observation = value if isinstance(value, Observation) else Observation(value)
        result = record(m, result, observation, when, when)
    return result


def test_conditions_decide_the_measurement() -> None:
    both = metric(successCondition="result >= 0.99", failureCondition="result < 0.9")
    assert assess(both, Observation(0.995))[0] == "Successful"
    assert assess(both, Observation(0.5))[0] == "Failed"
    assert assess(both, Observation(0.95))[0] == "Inconclusive"
    only_success = metric(successCondition="result >= 0.99")
    assert assess(only_success, Observation(0.95)) == ("Failed", "result >= 0.99 is false")
    only_failure = metric(failureCondition="result > 100")
    assert assess(only_failure, Observation(5))[0] == "Successful"
    assert assess(only_success, Observation(inconclusive="no requests"))[0] == "Inconclusive"
    assert assess(only_success, Observation(error="down")) == ("Error", "down")
    assert assess(only_success, Observation({"a": 1}))[0] == "Error"


def test_exec_without_condition_succeeds_on_exit_code_zero() -> None:
    m = Metric.from_json({"name": "smoke", "provider": {"exec": {"command": ["true"]}}})
    assert assess(m, Observation({"exitCode": 0}))[0] == "Successful"
    assert assess(m, Observation({"exitCode": 3}))[0] == "Failed"


def test_failure_limit_counts_failures_and_names_values() -> None:
    m = metric(successCondition="result >= 0.99", failureLimit=1, count=5)
    result = measure_all(m, [0.71])
    assert result.phase == "Running"
    result = measure_all(m, [0.71, 0.995, 0.69])
    assert result.phase == "Failed"
    assert "0.71" in result.message and "0.69" in result.message
    assert "result >= 0.99" in result.message


def test_a_verdict_quotes_long_values_cut() -> None:
    """A web metric's value can be a whole document; the verdict (and a Degraded reason built
    from it) quotes at most 60 characters of each."""
    m = metric(successCondition="len(result) > 99", count=1)
    document = {"products": ["x" * 20] * 10}
    result = measure_all(m, [document])
    assert result.phase == "Failed" and '{"products": ["xxxx' in result.message
    assert len(result.message) < 200


def test_count_measurements_succeed() -> None:
    m = metric(successCondition="result >= 0.99", count=3)
    assert measure_all(m, [1.0, 1.0]).phase == "Running"
    assert measure_all(m, [1.0, 1.0, 1.0]).phase == "Successful"


def test_errors_in_a_row_beyond_the_limit_are_an_error() -> None:
    m = metric(successCondition="result > 0", consecutiveErrorLimit=1, count=5)
    down = Observation(error="connection refused")
    assert measure_all(m, [down, 1, down]).phase == "Running"  # reset by a success
    result = measure_all(m, [down, down])
    assert result.phase == "Error"
    assert "connection refused" in result.message


def test_inconclusive_beyond_the_limit() -> None:
    m = metric(successCondition="result > 0", inconclusiveLimit=1, count=5)
    none = Observation(inconclusive="0 requests in the window")
    assert measure_all(m, [none]).phase == "Running"
    assert measure_all(m, [none, none]).phase == "Inconclusive"


def test_measurements_are_due_on_the_interval_after_the_delay() -> None:
    m = metric(initialDelay="5s", count=3)
    assert next_due(m, None, T0) == T0 + timedelta(seconds=5)
    result = measure_all(m, [1])
    assert next_due(m, result, T0) == T0 + timedelta(seconds=7)
    assert next_due(m, measure_all(m, [1, 1, 1]), T0) is None


def test_the_provider_snapshot_is_kept_for_the_next_window() -> None:
    m = metric(count=3)
    result = measure_all(m, [Observation(1, snapshot={"a": 1})])
    assert result.snapshot == {"a": 1}
    assert measure_all(m, [Observation(1, snapshot={"a": 1}), Observation(2)]).snapshot == {"a": 1}


def template(name: str, metric_name: str, args: list[dict[str, Any]]) -> AnalysisTemplate:
    return AnalysisTemplate.from_json(
        {
            "kind": "AnalysisTemplate",
            "metadata": {"name": name},
            "spec": {
                "args": args,
                "metrics": [
                    {
                        "name": metric_name,
                        "successCondition": "result >= {{args.threshold}}",
                        "provider": {"web": {"url": "http://h/{{args.canary-hash}}/{{args.x}}"}},
                    }
                ],
            },
        }
    )


def test_run_spec_substitutes_args_with_defaults_given_and_builtin() -> None:
    templates = {
        "a": template("a", "one", [{"name": "threshold", "value": "0.9"}, {"name": "x"}]),
        "b": template("b", "two", [{"name": "threshold"}, {"name": "x", "value": "dflt"}]),
    }
    ref = AnalysisRef.model_validate(
        {
            "templates": [{"templateName": "a"}, {"templateName": "b"}],
            "args": [{"name": "x", "value": "given"}],
        }
    )
    spec = build_run_spec(ref, templates, {"canary-hash": "abc"})
    one, two = spec.metrics
    assert one.success_condition == "result >= 0.9"
    assert two.success_condition == "result >= 0.9"  # the first template's default
    assert one.provider.web is not None and one.provider.web.url == "http://h/abc/given"
    assert spec.arg_values()["canary-hash"] == "abc"


def test_run_spec_refuses_missing_args_and_templates() -> None:
    templates = {"a": template("a", "one", [{"name": "threshold"}, {"name": "x"}])}
    ref = AnalysisRef.model_validate({"templates": [{"templateName": "a"}]})
    with pytest.raises(MissingArgumentsError, match="threshold, x"):
        build_run_spec(ref, templates, {})
    with pytest.raises(KeyError):
        build_run_spec(
            AnalysisRef.model_validate({"templates": [{"templateName": "z"}]}), templates, {}
        )


def test_run_verdict_fails_fast_and_waits_for_every_metric() -> None:
    ok = metric(name="ok", count=2)
    bad = metric(name="bad", successCondition="result > 1")
    run = AnalysisRun.from_json(
        {
            "kind": "AnalysisRun",
            "metadata": {"name": "r"},
            "spec": {"metrics": [ok.to_json(), bad.to_json()]},
        }
    )
    assert run_verdict(run)[0] == "Pending"
    run.status.metric_results = [measure_all(ok, [1])]
    assert run_verdict(run)[0] == "Running"
    run.status.metric_results.append(measure_all(bad, [0]))
    phase, message = run_verdict(run)
    assert phase == "Failed" and message is not None and "bad" in message
    run.status.metric_results = [measure_all(ok, [1, 1]), measure_all(bad, [5])]
    assert run_verdict(run)[0] == "Successful"
    run.spec.terminate = True
    assert run_verdict(run)[0] == "Terminated"
