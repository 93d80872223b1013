"""Annotation rules: normalisation, validation and the messages an SME reads."""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

import pytest

from bridge.mapping import AnnotationSpec
from bridge.records import CellError, Row
from bridge.rules import RowVerdict, evaluate, identifier_for
from tests.builders import SPAN, SPAN2, TRACE


def spec(
    rules: dict[str, Any] | None = None,
    name: str = "correctness",
    id_column: str = "span_id",
    **fields: Any,
) -> AnnotationSpec:
    columns = {
        "label_column": "label",
        "score_column": "score",
        "explanation_column": "explanation",
    }
    columns.update(fields)
    return AnnotationSpec(name=name, id_column=id_column, rules=rules or {}, **columns)


def rows(*values: dict[str, Any]) -> list[Row]:
    """Sheet rows 2, 3, ... with these values; the id defaults to SPAN."""
    return [Row(sheet_row=i + 2, values={"span_id": SPAN, **v}) for i, v in enumerate(values)]


def one(
    values: dict[str, Any], rules: dict[str, Any] | None = None, kind: str = "span", **fields: Any
) -> RowVerdict:
    (verdict,) = evaluate(rows(values), [spec(rules, **fields)], kind)
    return verdict


def problems(
    values: dict[str, Any], rules: dict[str, Any] | None = None, **fields: Any
) -> list[str]:
    verdict = one(values, rules, **fields)
    assert not verdict.annotations, "an invalid row must send nothing"
    return verdict.problems


def sent(values: dict[str, Any], rules: dict[str, Any] | None = None, **fields: Any) -> Any:
    verdict = one(values, rules, **fields)
    assert verdict.problems == []
    (annotation,) = verdict.annotations
    return annotation


LABELS = {"labels": ["correct", "incorrect"]}


# --- labels ---------------------------------------------------------------------------------


def test_allowed_label_is_trimmed_and_case_folded_to_the_listed_spelling() -> None:
    assert sent({"label": "  Correct \t"}, LABELS).label == "correct"
    assert sent({"label": "INCORRECT"}, LABELS).label == "incorrect"
    assert sent({"label": "Straße"}, {"labels": ["STRASSE"]}).label == "STRASSE"  # casefold


def test_case_sensitive_labels_keep_case() -> None:
    rules = {**LABELS, "case_sensitive": True}
    assert problems({"label": "Correct"}, rules) == [
        "label 'Correct' is not one of: correct, incorrect"
    ]
    assert sent({"label": " correct "}, rules).label == "correct"


def test_label_not_allowed_names_value_and_choices() -> None:
    assert problems({"label": "mostly right"}, LABELS) == [
        "label 'mostly right' is not one of: correct, incorrect"
    ]


def test_synonyms_map_to_labels() -> None:
    rules = {**LABELS, "synonyms": {"👍": "correct", " Wrong ": "incorrect", "y": "correct"}}
    assert sent({"label": "👍"}, rules).label == "correct"
    assert sent({"label": "wrong"}, rules).label == "incorrect"
    assert sent({"label": " Y"}, rules).label == "correct"


def test_synonyms_without_a_label_list_are_trimmed_and_case_folded_too() -> None:
    rules = {"synonyms": {"👍": "positive", "Yes": "positive"}}
    assert sent({"label": "👍"}, rules).label == "positive"
    assert sent({"label": " yes "}, rules).label == "positive"
    assert sent({"label": "anything else"}, rules).label == "anything else"


def test_case_sensitive_synonyms() -> None:
    rules = {"synonyms": {"Yes": "positive"}, "case_sensitive": True}
    assert sent({"label": "Yes"}, rules).label == "positive"
    assert sent({"label": "yes"}, rules).label == "yes"


def test_labels_that_are_numbers_booleans_or_dates_become_text() -> None:
    assert sent({"label": 3.0}).label == "3"
    assert sent({"label": 2.5}).label == "2.5"
    assert sent({"label": True}).label == "true"
    assert sent({"label": date(2024, 5, 1)}).label == "2024-05-01"
    assert sent({"label": 3.0}, {"labels": ["1", "2", "3"]}).label == "3"


def test_label_length_limit() -> None:
    assert sent({"label": "x" * 200}).label == "x" * 200
    assert problems({"label": "x" * 201}) == ["label is 201 characters; the limit is 200"]
    assert problems({"label": "x" * 1234}, {"max_label_length": 1000}) == [
        "label is 1,234 characters; the limit is 1,000"
    ]


def test_explanation_length_limit() -> None:
    assert sent({"label": "a", "explanation": "e" * 10_000}).explanation == "e" * 10_000
    assert problems({"label": "a", "explanation": "e" * 10_001}) == [
        "explanation is 10,001 characters; the limit is 10,000"
    ]
    assert problems({"label": "a", "explanation": "e" * 11}, {"max_explanation_length": 10}) == [
        "explanation is 11 characters; the limit is 10"
    ]


def test_explanation_is_trimmed() -> None:
    assert sent({"label": "a", "explanation": "  because \n"}).explanation == "because"


# --- scores ---------------------------------------------------------------------------------


def test_score_range_messages() -> None:
    rules = {"score_min": 0, "score_max": 1}
    assert problems({"score": 1.4}, rules) == ["score 1.4 is above the maximum 1"]
    assert problems({"score": -0.5}, rules) == ["score -0.5 is below the minimum 0"]
    assert problems({"score": 7}, {"score_min": 0.5, "score_max": 5}) == [
        "score 7 is above the maximum 5"
    ]
    assert problems({"score": 0.25}, {"score_min": 0.5}) == ["score 0.25 is below the minimum 0.5"]
    assert sent({"score": 0}, rules).score == 0.0
    assert sent({"score": 1}, rules).score == 1.0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("0.5", 0.5), (" 0.5 ", 0.5), ("1", 1.0), ("-2", -2.0), ("1e-3", 0.001), (3, 3.0)],
)
def test_score_from_text_or_number(raw: Any, expected: float) -> None:
    score = sent({"score": raw}).score
    assert score == expected
    assert type(score) is float


def test_score_with_a_decimal_comma_gets_the_decimal_point_hint() -> None:
    assert problems({"score": "0,5"}) == ["score '0,5' is not a number; use a decimal point: 0.5"]
    assert problems({"score": " -1,25 "}) == [
        "score '-1,25' is not a number; use a decimal point: -1.25"
    ]


def test_score_that_is_not_a_number() -> None:
    assert problems({"score": "abc"}) == ["score 'abc' is not a number"]
    assert problems({"score": "50%"}) == ["score '50%' is not a number"]


def test_unparsable_score_does_not_also_claim_the_score_is_missing() -> None:
    # the row has a score, a wrong one: one message, about the score
    assert problems({"score": "abc"}, {"require": "score"}) == ["score 'abc' is not a number"]
    assert problems({"score": "abc"}, {"require": "label_and_score"}) == [
        "score 'abc' is not a number",
        "both label and score are required for 'correctness'",
    ]


def test_score_as_custom_column_name_in_messages() -> None:
    assert problems({"rating": "abc"}, score_column="rating") == ["rating 'abc' is not a number"]
    assert problems({"rating": 9}, {"score_max": 5}, score_column="rating") == [
        "rating 9 is above the maximum 5"
    ]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (math.nan, "score nan is not a finite number; enter a number"),
        (math.inf, "score inf is not a finite number; enter a number"),
        (-math.inf, "score -inf is not a finite number; enter a number"),
        ("nan", "score nan is not a finite number; enter a number"),
        (" inf ", "score inf is not a finite number; enter a number"),
    ],
)
def test_score_not_finite(raw: Any, expected: str) -> None:
    assert problems({"score": raw}) == [expected]


@pytest.mark.parametrize("raw", [-0.0, "-0", "-0.0"])
def test_negative_zero_score_becomes_zero(raw: Any) -> None:
    score = sent({"score": raw}).score
    assert score == 0.0
    assert math.copysign(1.0, score) == 1.0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(True, 1.0), (False, 0.0), ("TRUE", 1.0), ("false", 0.0), (" True ", 1.0)],
)
def test_boolean_scores_are_one_and_zero(raw: Any, expected: float) -> None:
    # Excel checkboxes read as booleans; the same sheet saved as CSV has TRUE/FALSE text.
    assert sent({"score": raw}).score == expected


def test_score_that_is_a_date() -> None:
    assert problems({"score": datetime(2024, 1, 2, 3, 4)}) == [
        "score is a date (2024-01-02 03:04:00), not a number; format the column as a number"
    ]


# --- require --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("require", "values", "expected"),
    [
        ("label", {"score": 1}, "label is required for 'correctness'"),
        ("label", {"explanation": "x"}, "label is required for 'correctness'"),
        ("score", {"label": "a"}, "score is required for 'correctness'"),
        ("label_or_score", {"explanation": "x"}, "give a label or a score for 'correctness'"),
        ("label_and_score", {"label": "a"}, "both label and score are required for 'correctness'"),
        ("label_and_score", {"score": 1}, "both label and score are required for 'correctness'"),
    ],
)
def test_require_modes_refuse(require: str, values: dict[str, Any], expected: str) -> None:
    assert problems(values, {"require": require}) == [expected]


@pytest.mark.parametrize(
    ("require", "values"),
    [
        ("label", {"label": "a"}),
        ("score", {"score": 0}),
        ("label_or_score", {"label": "a"}),
        ("label_or_score", {"score": 0}),
        ("label_and_score", {"label": "a", "score": 0}),
    ],
)
def test_require_modes_accept(require: str, values: dict[str, Any]) -> None:
    sent(values, {"require": require})


def test_require_message_uses_the_mapping_column_names() -> None:
    assert problems(
        {"comment": "x"},
        label_column="verdict",
        score_column="rating",
        explanation_column="comment",
    ) == ["give a verdict or a rating for 'correctness'"]


# --- ids ------------------------------------------------------------------------------------


def test_span_and_trace_ids() -> None:
    assert sent({"span_id": f" {SPAN} ", "label": "a"}).target_id == SPAN
    assert sent({"trace_id": TRACE, "label": "a"}, kind="trace", id_column="trace_id").target_id
    (verdict,) = evaluate(
        [Row(2, {"trace_id": SPAN, "label": "a"})], [spec(id_column="trace_id")], "trace"
    )
    assert verdict.problems == [
        f"trace_id '{SPAN}' is not a trace id (32 lowercase hex characters, like "
        "6c4d3e1b8a0f47c2a9e5d1b7c3f0a2e4)"
    ]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "67f6740bbe1ddc3",
            "span_id '67f6740bbe1ddc3' is not a span id (16 lowercase hex "
            "characters, like 67f6740bbe1ddc3f)",
        ),
        (
            "67f6740bbe1ddc3g",
            "span_id '67f6740bbe1ddc3g' is not a span id (16 lowercase hex "
            "characters, like 67f6740bbe1ddc3f)",
        ),
        (
            "67F6740BBE1DDC3F",
            "span_id '67F6740BBE1DDC3F' has capital letters; span ids are "
            "lowercase: '67f6740bbe1ddc3f'",
        ),
        # lowercase would not help: no lowercase suggestion
        (
            "ABC",
            "span_id 'ABC' is not a span id (16 lowercase hex characters, like 67f6740bbe1ddc3f)",
        ),
        (
            "x" * 80,
            f"span_id '{'x' * 57}...' is not a span id (16 lowercase hex characters, "
            "like 67f6740bbe1ddc3f)",
        ),
    ],
)
def test_id_format_messages(raw: str, expected: str) -> None:
    assert problems({"span_id": raw, "label": "a"}) == [expected]


def test_id_that_is_a_number_or_a_date() -> None:
    assert problems({"span_id": 67674, "label": "a"}) == [
        "span_id is a number (67674), not a span id; format the column as text and paste the id "
        "again"
    ]
    assert problems({"span_id": 6.7e15, "label": "a"}) == [
        "span_id is a number (6700000000000000), not a span id; format the column as text and "
        "paste the id again"
    ]
    assert problems({"span_id": datetime(2024, 3, 1), "label": "a"}) == [
        "span_id is a date (2024-03-01 00:00:00), not a span id; format the column as text and "
        "paste the id again"
    ]


@pytest.mark.parametrize("empty", [None, "", "   "])
def test_empty_id_with_a_label(empty: Any) -> None:
    assert problems({"span_id": empty, "label": "a"}) == [
        "span_id is empty; paste the span id this label is about"
    ]


def test_session_ids_are_free_text_without_outer_spaces() -> None:
    annotation = sent({"sid": "Chat 42/ABC", "label": "a"}, kind="session", id_column="sid")
    assert annotation.target_id == "Chat 42/ABC"
    assert annotation.kind == "session"


# --- rows that are skipped, invalid, or duplicated ------------------------------------------


@pytest.mark.parametrize(
    "values",
    [{}, {"label": None, "score": None, "explanation": None}, {"label": " ", "explanation": ""}],
)
def test_rows_without_label_score_or_explanation_are_skipped_not_invalid(
    values: dict[str, Any],
) -> None:
    verdict = one(values, {"require": "label_and_score"})
    assert verdict.skipped
    assert verdict.problems == [] and verdict.annotations == []
    # even with no id at all
    assert one({**values, "span_id": None}).skipped


def test_a_nan_score_is_not_a_blank_cell() -> None:
    assert not one({"score": math.nan}).skipped


def test_every_problem_of_a_row_is_reported_once() -> None:
    assert problems(
        {"span_id": "bad", "label": "maybe", "score": 3}, {**LABELS, "score_max": 1}
    ) == [
        "span_id 'bad' is not a span id (16 lowercase hex characters, like 67f6740bbe1ddc3f)",
        "label 'maybe' is not one of: correct, incorrect",
        "score 3 is above the maximum 1",
    ]


def test_duplicate_rows_are_flagged_on_both_rows() -> None:
    verdicts = evaluate(
        rows({"label": "a"}, {"span_id": SPAN2, "label": "b"}, {"label": "c"}), [spec()], "span"
    )
    assert verdicts[0].problems == [
        f"row 4 labels the same span {SPAN} for 'correctness' by the same annotator (none given);"
        " keep one of these rows"
    ]
    assert verdicts[2].problems == [
        f"row 2 labels the same span {SPAN} for 'correctness' by the same annotator (none given);"
        " keep one of these rows"
    ]
    assert verdicts[0].annotations == [] and verdicts[2].annotations == []
    assert verdicts[1].problems == [] and len(verdicts[1].annotations) == 1


def test_three_duplicates_name_the_other_two() -> None:
    verdicts = evaluate(
        rows(*({"label": "a", "who": "ann"} for _ in range(3))),
        [spec(annotator_column="who")],
        "span",
    )
    assert verdicts[1].problems == [
        f"rows 2, 4 label the same span {SPAN} for 'correctness' by the same annotator (ann); "
        "keep one of these rows"
    ]


def test_two_annotators_of_one_span_are_not_duplicates() -> None:
    verdicts = evaluate(
        rows({"label": "a", "who": "ann"}, {"label": "b", "who": "bob"}),
        [spec(annotator_column="who")],
        "span",
    )
    assert [v.problems for v in verdicts] == [[], []]
    first, second = (v.annotations[0] for v in verdicts)
    assert (first.annotator, first.identifier) == ("ann", "annobridge:ann")
    assert (second.annotator, second.identifier) == ("bob", "annobridge:bob")


def test_same_span_in_two_annotation_names_is_not_a_duplicate() -> None:
    verdicts = evaluate(
        rows({"label": "a", "tone": "warm"}, {"span_id": SPAN2, "label": "b"}),
        [
            spec(),
            spec(name="tone", label_column="tone", score_column=None, explanation_column=None),
        ],
        "span",
    )
    assert [a.name for a in verdicts[0].annotations] == ["correctness", "tone"]
    assert [a.name for a in verdicts[1].annotations] == ["correctness"]


def test_a_row_invalid_in_one_entry_sends_nothing_at_all() -> None:
    specs = [
        spec(),
        spec(
            {"score_max": 1},
            name="helpfulness",
            label_column=None,
            score_column="helpful",
            explanation_column=None,
        ),
    ]
    verdicts = evaluate(
        rows({"label": "a", "helpful": 5}, {"span_id": SPAN2, "label": "b"}), specs, "span"
    )
    assert verdicts[0].annotations == []
    assert verdicts[0].problems == ["helpful 5 is above the maximum 1"]
    assert [a.name for a in verdicts[1].annotations] == ["correctness"]  # helpful left empty


def test_no_rows() -> None:
    assert evaluate([], [spec()], "span") == []


# --- annotators, identifiers, what is sent --------------------------------------------------


def test_annotator_from_a_column_or_a_constant() -> None:
    both: dict[str, Any] = {"annotator_column": "who", "annotator": "team-qa"}
    assert sent({"label": "a", "who": " ann "}, **both).annotator == "ann"
    assert sent({"label": "a", "who": ""}, **both).annotator == "team-qa"  # blank cell
    assert sent({"label": "a"}, annotator="team-qa").annotator == "team-qa"
    assert sent({"label": "a"}).annotator is None


@pytest.mark.parametrize("blank", [None, "", "   ", 0.0])
def test_a_blank_annotator_in_an_annotator_column_is_refused_naming_the_column(blank: Any) -> None:
    # sent as the made-up "annobridge", then typed in: two annotations from one row (issue 16.7)
    values = {"label": "a", "who": blank} if blank != 0.0 else {"label": 1.0, "who": None}
    found = problems(values, annotator_column="who")
    assert found == [
        "who is empty: type the annotator's name in column 'who' (or set `annotator:` in the "
        "mapping as the name for rows that leave it blank)"
    ]


def test_a_blank_annotator_is_reported_with_the_other_problems_of_the_row() -> None:
    found = problems({"label": "a", "who": "", "score": "high"}, annotator_column="who")
    assert len(found) == 2 and found[1].startswith("who is empty")
    assert problems({"label": "", "span_id": "", "who": ""}, annotator_column="who") == []


def test_identifier_format() -> None:
    assert identifier_for("ann@example.com") == "annobridge:ann@example.com"
    assert identifier_for(None) == "annobridge"
    assert identifier_for("") == "annobridge"
    assert sent({"label": "a", "who": "ann"}, annotator_column="who").identifier == (
        "annobridge:ann"
    )
    assert sent({"label": "a"}).identifier == "annobridge"


def test_the_annotation_sent_for_a_valid_row() -> None:
    (verdict,) = evaluate(
        [
            Row(
                7,
                {
                    "span_id": SPAN,
                    "label": "Correct",
                    "score": "0.5",
                    "explanation": " ok ",
                    "who": "ann",
                },
            )
        ],
        [spec(LABELS, annotator_column="who", annotator_kind="LLM")],
        "span",
        sheet_label="labels.xlsx/Labels",
    )
    (a,) = verdict.annotations
    assert a.content() == {
        "name": "correctness",
        "kind": "span",
        "id": SPAN,
        "label": "correct",
        "score": 0.5,
        "explanation": "ok",
        "annotator": "ann",
        "annotator_kind": "LLM",
        "identifier": "annobridge:ann",
    }
    assert a.row_index == 0
    assert a.metadata == {
        "source": "annobridge",
        "sheet": "labels.xlsx/Labels",
        "row": 7,
        "annotator": "ann",
    }


def test_verdicts_are_in_row_order() -> None:
    values = [{"span_id": f"{i:016x}", "score": i / 10} for i in range(12)]
    values[5]["score"] = "x"
    verdicts = evaluate([Row(i + 2, v) for i, v in enumerate(values)], [spec()], "span")
    assert [bool(v.problems) for v in verdicts] == [i == 5 for i in range(12)]
    assert [v.annotations[0].score for v in verdicts if v.annotations] == [
        i / 10 for i in range(12) if i != 5
    ]


# --- hostile cells -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        ("span_id", "span_id is the error #REF! in the sheet, not a value"),
        ("label", "label is the error #REF! in the sheet, not a value"),
        ("score", "score is the error #REF! in the sheet, not a value"),
        ("explanation", "explanation is the error #REF! in the sheet, not a value"),
    ],
)
def test_an_error_cell_is_named_once(column: str, expected: str) -> None:
    values: dict[str, Any] = {"label": "correct", column: CellError("#REF!")}
    assert problems(values, LABELS) == [
        f"{expected}: fix the formula (or the cells it refers to) or type the value in"
    ]


def test_a_row_holding_only_an_error_is_not_skipped() -> None:
    (verdict,) = evaluate(rows({"label": CellError("#N/A")}), [spec(LABELS)], "span")
    assert verdict.problems and not verdict.skipped


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            {"label": "cor\x00rect"},
            "label holds an invisible control character (\\x00 at character 4)",
        ),
        (
            {"label": "correct", "explanation": "ok\x1b[31m"},
            "explanation holds an invisible control character (\\x1b at character 3)",
        ),
        ({"label": "correct", "span_id": SPAN + "\x7f"}, "span_id holds"),
    ],
)
def test_control_characters_make_a_row_invalid(values: dict[str, Any], expected: str) -> None:
    assert any(p.startswith(expected) for p in problems(values, LABELS)), problems(values, LABELS)


def test_tabs_and_line_breaks_in_an_explanation_are_fine() -> None:
    assert sent({"label": "correct", "explanation": "a\tb\r\nc"}, LABELS).explanation == "a\tb\r\nc"


def test_quoted_values_are_cut_and_made_visible() -> None:
    found = problems({"label": "x" * 1000 + "\x00"}, {"labels": ["a"], "max_label_length": 5000})
    assert f"label '{'x' * 57}...' is not one of: a" in found
    assert "label '\\x01' is not one of: a" in problems({"label": "\x01"}, {"labels": ["a"]})


def test_ids_with_spaces_inside_and_yes_no_cells() -> None:
    assert problems({"span_id": "67f6740b be1ddc3f", "label": "a"}) == [
        "span_id '67f6740b be1ddc3f' has spaces inside; remove them: '67f6740bbe1ddc3f'"
    ]
    assert problems({"span_id": True, "label": "a"}) == [
        "span_id is TRUE (a yes/no cell), not a span id; paste the id"
    ]


def test_huge_numbers_are_shown_short() -> None:
    assert problems({"score": 1e308}, {"score_max": 1}) == ["score 1e+308 is above the maximum 1"]


# --- the fast paths give the verdicts of the plain ones ---------------------------------------


class _Text(str):
    """Text that is not exactly ``str``: the normaliser takes its general path for it."""


class _Number(float):
    """A number that is not exactly ``float``: the general path too."""


def _general(value: Any) -> Any:
    if type(value) is str:
        return _Text(value)
    if type(value) is float:
        return _Number(value)
    return value


# Rows of every kind the fast paths could get wrong. The id defaults to one of its own, so
# that only the rows meant to be duplicates are.
TRICKY: list[dict[str, Any]] = [
    {"label": "correct", "score": 0.5, "explanation": "fine", "who": "ann@example.com"},
    {"label": "  Correct \t", "score": None, "explanation": None, "who": None},
    {"label": "", "score": None, "explanation": "", "who": ""},  # blank: skipped
    {"label": "   ", "score": None, "explanation": " \t", "who": "bob"},  # blank too
    {"label": "right", "who": "  "},  # a synonym; a blank annotator
    {"span_id": "", "label": "correct"},
    {"span_id": "   ", "label": "correct"},
    {"span_id": None, "score": 0.3},
    {"span_id": SPAN.upper(), "label": "correct"},
    {"span_id": " 67f6 740bbe1ddc3f ", "label": "correct"},
    {"span_id": "not-an-id", "score": 0.1},
    {"span_id": 12345.0, "label": "correct"},
    {"span_id": True, "label": "correct"},
    {"span_id": datetime(2026, 5, 1, 9, 30), "label": "correct"},
    {"span_id": CellError("#N/A"), "label": "correct"},
    {"label": CellError("#REF!")},
    {"label": "correct", "score": CellError("#DIV/0!"), "who": CellError("#NAME?")},
    {"label": "nope", "score": 0.2},
    {"label": "x" * 300},
    {"label": 3.0},
    {"label": True, "score": 0.9},
    {"score": math.nan},
    {"score": math.inf},
    {"score": -0.0},
    {"score": 1.4},
    {"score": -1.0},
    {"score": 1},
    {"score": True},
    {"score": "0,5"},
    {"score": " 0.75 "},
    {"score": "TRUE"},
    {"score": "lots"},
    {"score": date(2026, 1, 2)},
    {"label": "corr\x07ect"},
    {"label": "correct", "explanation": "line\nbreak\ttab"},
    {"label": "correct", "explanation": "bad\x00byte"},
    {"label": "correct", "explanation": "a lone \ud800 surrogate"},
    {"label": "correct", "explanation": "zero\u200bwidth"},
    {"label": "correct", "who": "sme\x1b[0m"},
    {"span_id": "0a1b2c3d\x014e5f6071", "label": "correct"},
    {"label": "correct", "explanation": "e" * 51},
    {"label": "incorrect", "explanation": "é" * 50},
    # duplicates: the same span by the same annotator (twice in the sheet and once more),
    # and the same span by another annotator (not a duplicate)
    {"span_id": SPAN2, "label": "correct", "who": "ann"},
    {"span_id": SPAN2, "label": "incorrect", "who": "ann"},
    {"span_id": f" {SPAN2} ", "score": 0.4, "who": " ann "},
    {"span_id": SPAN2, "label": "correct", "who": "bob"},
    {"span_id": SPAN2, "label": "nope", "who": "ann"},  # invalid: not a duplicate then
]


def _tricky_specs() -> list[AnnotationSpec]:
    return [
        spec(
            {
                **LABELS,
                "synonyms": {"right": "correct"},
                "score_min": 0,
                "score_max": 1,
                "max_explanation_length": 50,
            },
            annotator_column="who",
            annotator="lead@example.com",
        ),
        AnnotationSpec(
            name="helpfulness",
            id_column="span_id",
            score_column="score",
            annotator_column="who",
            rules={"require": "score", "score_min": 0},
        ),
    ]


def _tricky_rows(general: bool, duplicates: bool = True) -> list[Row]:
    out = []
    for i, values in enumerate(TRICKY):
        row = {"span_id": f"{i:016x}", **values}
        if not duplicates and values.get("span_id") in (SPAN2, f" {SPAN2} "):
            row["span_id"] = f"{i:016x}"
        if general:
            row = {k: _general(v) for k, v in row.items()}
        out.append(Row(sheet_row=i + 2, values=row))
    return out


def _plain_evaluate(
    monkeypatch: pytest.MonkeyPatch, rows: list[Row], specs: list[AnnotationSpec]
) -> list[RowVerdict]:
    """``evaluate`` without its fast paths: each annotation made by Annotation(...), and
    duplicates looked for even when the keys are all different."""
    from bridge import rules

    flag = rules._flag_duplicates
    with monkeypatch.context() as m:
        m.setattr(rules, "_FILL_ANNOTATION", False)
        m.setattr(rules, "_flag_duplicates", lambda r, v, made: flag(r, v, None))
        return evaluate(rows, specs, "span", "labels.xlsx/Sheet1")


def _same_verdicts(fast: list[RowVerdict], plain: list[RowVerdict]) -> None:
    assert [v.problems for v in fast] == [v.problems for v in plain]
    assert [v.annotations for v in fast] == [v.annotations for v in plain]
    for f, p in zip(fast, plain, strict=True):
        for a, b in zip(f.annotations, p.annotations, strict=True):
            assert vars(a) == vars(b)
            assert list(vars(a)) == list(vars(b))  # the same fields, in the same order
            assert [type(x) for x in vars(a).values()] == [type(x) for x in vars(b).values()]
            assert hash(a) == hash(b) and a.content() == b.content()


@pytest.mark.parametrize("duplicates", [True, False])
def test_fast_paths_give_the_verdicts_of_the_general_ones(
    monkeypatch: pytest.MonkeyPatch, duplicates: bool
) -> None:
    specs = _tricky_specs()
    fast = evaluate(_tricky_rows(False, duplicates), specs, "span", "labels.xlsx/Sheet1")
    plain = _plain_evaluate(monkeypatch, _tricky_rows(True, duplicates), specs)
    _same_verdicts(fast, plain)
    # the rows are tricky enough: some sent, some invalid, some skipped, duplicates flagged
    assert sum(1 for v in fast if v.annotations) >= 7
    assert sum(1 for v in fast if v.problems) >= 25
    # helpfulness has an annotator column and no default: its blank names are refused
    assert sum(1 for v in fast for p in v.problems if p.startswith("who is empty")) >= 3
    assert sum(1 for v in fast if v.skipped) == 2
    flagged = sum(1 for v in fast for p in v.problems if "keep one of these rows" in p)
    assert flagged == (3 if duplicates else 0)


def test_annotations_are_made_as_the_dataclass_makes_them() -> None:
    import dataclasses
    import pickle

    from bridge import rules
    from bridge.records import Annotation

    # the fast path is in use: a new field of Annotation needs _ANNOTATION_FIELDS updated
    assert rules._FILL_ANNOTATION
    assert tuple(f.name for f in dataclasses.fields(Annotation)) == rules._ANNOTATION_FIELDS
    verdicts = evaluate(
        rows(
            {"label": "correct", "score": 0.5, "who": "ann"},
            {"span_id": SPAN2, "label": "a", "who": "bob"},
        ),
        [spec(annotator_column="who")],
        "span",
    )
    made, other = (v.annotations[0] for v in verdicts)
    given = {f: getattr(made, f) for f in rules._ANNOTATION_FIELDS[:-2]}  # all but the defaults
    plain = Annotation(**given)
    assert made == plain and vars(made) == vars(plain) and hash(made) == hash(plain)
    assert made.extra == {} and made.is_update is False
    assert made.extra is not other.extra  # a dict of its own, as default_factory gives
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.label = "incorrect"  # type: ignore[misc]
    updated = dataclasses.replace(made, is_update=True, extra={"k": 1})
    assert updated.is_update and updated.extra == {"k": 1} and made.extra == {}
    assert pickle.loads(pickle.dumps(made)) == made
