"""The Sheets stand-in answers like Google: replay real recorded traffic against it.

The cassettes in ../shared/reference/sheets-api-recorded/ are real Google Sheets API v4
responses recorded by the gspread project. Each Sheets request is replayed, in order, against
a fresh stand-in; its answer must have the recorded status, the recorded fields (nothing
invented, nothing we rely on missing) and, for values and update answers, the recorded
values exactly: trailing cells trimmed, blank rows as [], typed UNFORMATTED_VALUE, serial
dates, formula text. Drive API calls (create, delete a file) are not stood in: creating a
file becomes creating an empty spreadsheet (Sheet1, 1000x26, as Google makes it).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.sheets_standin import SheetsStandIn

RECORDED = Path(__file__).resolve().parents[2] / "shared" / "reference" / "sheets-api-recorded"
CASSETTES = sorted(RECORDED.glob("*.json")) if RECORDED.is_dir() else []
SHEETS = "https://sheets.googleapis.com"
DRIVE_FILES = "https://www.googleapis.com/drive/v3/files"
# Formatting and theme of a new spreadsheet: cosmetic, and nothing annobridge reads.
COSMETIC = {"defaultFormat", "spreadsheetTheme"}
# Ids Google picks at random (addSheet): compared by type only.
RANDOM_IDS = {"sheetId"}

MISSING = f"recorded Google traffic not found at {RECORDED}"


def in_ci(environ: dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return env.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture(autouse=True)
def recordings() -> None:
    """Locally a missing checkout of ../shared skips; in CI it fails: the stand-in must not
    silently lose its only link to real Google traffic."""
    if not CASSETTES:
        if in_ci():
            pytest.fail(f"{MISSING}; CI must check out ../shared (CI=true)", pytrace=False)
        pytest.skip(MISSING)


def test_missing_recordings_fail_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    assert in_ci({"CI": "true"}) and in_ci({"CI": "1"})
    assert not in_ci({}) and not in_ci({"CI": "false"})
    monkeypatch.setattr(sys.modules[__name__], "CASSETTES", [])
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must check out"):
        recordings.__wrapped__()  # type: ignore[attr-defined]
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        recordings.__wrapped__()  # type: ignore[attr-defined]


def _conform(recorded: Any, ours: Any, where: str) -> Iterator[str]:
    """Differences between a recorded answer and the stand-in's, one line each."""
    if isinstance(recorded, dict) and isinstance(ours, dict):
        for key in ours.keys() - recorded.keys():
            yield f"{where}.{key}: not in Google's answer"
        for key in recorded.keys() - ours.keys() - COSMETIC:
            yield f"{where}.{key}: missing"
        for key in recorded.keys() & ours.keys():
            if key in RANDOM_IDS:
                if type(recorded[key]) is not type(ours[key]):
                    yield f"{where}.{key}: {ours[key]!r} is not a {type(recorded[key]).__name__}"
                continue
            yield from _conform(recorded[key], ours[key], f"{where}.{key}")
    elif isinstance(recorded, list) and isinstance(ours, list):
        if len(recorded) != len(ours):
            yield f"{where}: {len(ours)} items, Google gave {len(recorded)}: {ours!r}"
        for i, (a, b) in enumerate(zip(recorded, ours, strict=False)):
            yield from _conform(a, b, f"{where}[{i}]")
    elif type(recorded) is not type(ours) or recorded != ours:
        yield f"{where}: {ours!r} ({type(ours).__name__}), Google gave {recorded!r}"


def _adopt_sheet_ids(standin: SheetsStandIn, recorded: Any, ours: Any) -> None:
    """Give a tab the stand-in added the id Google gave it, so later requests find it."""
    for mine, google in zip(ours.get("replies", []), recorded.get("replies", []), strict=False):
        if "addSheet" in mine and "addSheet" in google:
            props = mine["addSheet"]["properties"]
            sheet = standin.spreadsheets[ours["spreadsheetId"]].by_id(props["sheetId"])
            assert sheet is not None
            sheet.sheet_id = google["addSheet"]["properties"]["sheetId"]


def _replay(cassette: Path) -> tuple[int, list[str]]:
    interactions = json.loads(cassette.read_text(encoding="utf-8"))["interactions"]
    problems: list[str] = []
    replayed = 0
    with SheetsStandIn() as standin, requests.Session() as session:
        for n, interaction in enumerate(interactions):
            request, response = interaction["request"], interaction["response"]
            uri: str = request["uri"]
            recorded_body = response["body"]["string"]
            if uri.startswith(DRIVE_FILES):
                if request["method"] == "POST":  # create a spreadsheet
                    created = json.loads(recorded_body)
                    standin.add_spreadsheet(created["id"], created["name"])
                continue
            assert uri.startswith(SHEETS), uri
            body = request.get("body")
            answer = session.request(
                request["method"],
                standin.url + uri[len(SHEETS) :],
                data=body.encode() if body else None,
                headers={"Content-Type": "application/json"} if body else {},
                timeout=10,
            )
            replayed += 1
            where = f"{cassette.name}#{n} {request['method']} {uri[len(SHEETS) :][:90]}"
            if answer.status_code != response["status"]["code"]:
                problems.append(
                    f"{where}: status {answer.status_code}, Google gave "
                    f"{response['status']['code']}: {answer.text[:200]}"
                )
                continue
            content_type = response["headers"].get("Content-Type", [""])[0]
            if answer.headers.get("Content-Type") != content_type:
                problems.append(f"{where}: Content-Type {answer.headers.get('Content-Type')!r}")
            recorded = json.loads(recorded_body)
            ours = answer.json()
            _adopt_sheet_ids(standin, recorded, ours)
            if "error" in recorded:
                for key in ("code", "message", "status"):
                    if ours["error"].get(key) != recorded["error"][key]:
                        problems.append(f"{where}: error.{key} {ours['error'].get(key)!r}")
                continue
            problems.extend(_conform(recorded, ours, where))
    return replayed, problems


@pytest.mark.parametrize("cassette", CASSETTES, ids=[c.stem for c in CASSETTES])
def test_standin_answers_like_google(cassette: Path) -> None:
    replayed, problems = _replay(cassette)
    assert replayed > 0, "no Sheets API request in this recording"
    assert not problems, "\n".join(problems)


def test_the_recordings_cover_every_endpoint_annobridge_uses() -> None:
    """The replay is only evidence for the endpoints it exercises: check they are all there."""
    seen: set[str] = set()
    for cassette in CASSETTES:
        for interaction in json.loads(cassette.read_text(encoding="utf-8"))["interactions"]:
            uri, method = interaction["request"]["uri"], interaction["request"]["method"]
            if not uri.startswith(SHEETS):
                continue
            if "values:batchGet" in uri:
                seen.add("values:batchGet")
            elif "values:batchUpdate" in uri:
                seen.add("values:batchUpdate")
            elif "/values/" in uri and method == "GET" and "UNFORMATTED_VALUE" in uri:
                seen.add("values.get UNFORMATTED_VALUE")
            elif "/values/" not in uri and method == "GET":
                seen.add("spreadsheets.get")
    assert seen == {
        "values:batchGet",
        "values:batchUpdate",
        "values.get UNFORMATTED_VALUE",
        "spreadsheets.get",
    }
