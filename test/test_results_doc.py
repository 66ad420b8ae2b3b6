"""docs/results.md is generated: it must be what bench/results.py makes from the committed summaries."""
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _results_module():
    spec = importlib.util.spec_from_file_location("bench_results", ROOT / "bench" / "results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_results_doc_is_regenerated_from_the_committed_summaries():
    assert _results_module().render() == (ROOT / "docs" / "results.md").read_text(), \
        "docs/results.md is stale: run python bench/results.py"


def test_every_method_table_cell_names_a_committed_summary_of_its_task_and_method():
    results = _results_module()
    variants = {key for key, _ in results.METHODS}
    cells = [(row, variant, rel) for (row, variant), rel in results.METHOD_CELLS.items()]
    cells += [(*p.stem.split("_", 1), p.relative_to(ROOT / "results"))
              for p in sorted((ROOT / "results" / "methods").glob("*.json"))]
    for row, variant, rel in cells:
        assert row in results.METHOD_ROWS, f"{rel}: no row label in METHOD_ROWS"
        assert variant in variants, f"{rel}: {variant} is not a column of the table"
        summary = json.loads((ROOT / "results" / rel).read_text())
        assert summary["task"] == row.split("-")[0], rel
        assert summary["method"] == ("flow_matching" if variant.startswith("flow_matching") else "meanflow"), rel
        assert summary["sampling_steps"] == int(variant.rsplit("_", 1)[1].removesuffix("step")), rel


def test_every_one_vs_five_row_pairs_the_same_task_and_execution_with_one_and_five_steps():
    results = _results_module()
    for five_paths, one_paths, _ in results.ONE_VS_FIVE:
        fives = [json.loads((ROOT / "results" / path).read_text()) for path in five_paths]
        assert {five["sampling_steps"] for five in fives} == {5}, five_paths
        for rel in one_paths:
            one = json.loads((ROOT / "results" / rel).read_text())
            assert (one["sampling_steps"], one["task"], one["execute"]) == (1, fives[0]["task"], fives[0]["execute"]), rel


def test_execution_pairs_set_chunks_against_re_planning_of_one_model_and_refuse_two_models():
    results = _results_module()
    rows = [(p.stem, json.loads(p.read_text())) for p in sorted((ROOT / "results").glob("*.json"))]
    pairs = results.execution_pairs(rows)
    assert any(label.startswith("lift, MeanFlow + dispersive, 1 step") for label, _, _ in pairs)
    # a second seed range pairs within itself, never with the first range's chunks
    assert (["lift_meanflow_dispersive_1step_seeds300000_chunk.json"],
            ["lift_meanflow_dispersive_1step_seeds300000_replan.json"]) in [(a, b) for _, a, b in pairs]
    for label, (chunk,), (replan,) in pairs:
        a, b = (json.loads((ROOT / "results" / rel).read_text()) for rel in (chunk, replan))
        assert (a["execute"], b["execute"]) == ("chunk", "first"), label
        assert a["model_id"] == b["model_id"] and a["seeds"] == b["seeds"], label
    summary = dict(rows)["lift_meanflow_dispersive_1step"]
    other = {**summary, "execute": "first", "model_id": "another-model"}
    with pytest.raises(ValueError, match="different models"):
        results.execution_pairs([("lift_meanflow_dispersive_1step", summary), ("lift_meanflow_dispersive_1step_replan", other)])
