"""Google credentials the way gspread users keep them, real sign-in against the stand-in,
messages that say what to fix and never carry a secret; the mapping keys; `init --source gsheet`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.oauth2.credentials import Credentials as UserCredentials
from google.oauth2.service_account import Credentials as ServiceAccountCredentials

from bridge.errors import EXIT_UNAVAILABLE, EXIT_USAGE, AuthRefused, ConfigError, MappingError
from bridge.mapping import load_mapping, parse_mapping
from bridge.records import StatusColumns
from bridge.scaffold import init_gsheet_project
from bridge.sources.base import ReadSpec
from bridge.sources.gsheets.auth import load_auth, scrub
from bridge.sources.gsheets.config import GSheetConfig
from bridge.sources.gsheets.source import GSheetsSource
from tests.sheets_standin import SheetsStandIn

KEY = "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms"
EMAIL = "annobridge@annobridge-test.iam.gserviceaccount.com"
SPEC = ReadSpec(columns=["span_id", "label"], key_columns=["span_id"], status=StatusColumns())


@pytest.fixture(scope="module")
def private_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def service_account(
    private_key: str, token_uri: str = "https://oauth2.googleapis.com/token"
) -> dict[str, Any]:
    return {
        "type": "service_account",
        "project_id": "annobridge-test",
        "private_key_id": "0123456789abcdef",
        "private_key": private_key,
        "client_email": EMAIL,
        "client_id": "100000000000000000001",
        "token_uri": token_uri,
    }


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home folder of our own: gspread's config dir is ~/.config/gspread."""
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("HOME", str(path))
    return path


def gspread_dir(home: Path) -> Path:
    path = home / ".config" / "gspread"
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


# --- where credentials are found ---------------------------------------------------------------


def test_nothing_found_says_where_it_looked_and_whom_to_share_with(home: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_auth(None, {})
    text = str(err.value)
    for name in ("service_account.json", "authorized_user.json", "credentials.json"):
        assert str(home / ".config" / "gspread" / name) in text
    assert "GOOGLE_APPLICATION_CREDENTIALS (not set)" in text
    assert "source.credentials in the mapping (not set)" in text
    assert "share the sheet with the service account's e-mail (client_email" in text
    assert err.value.exit_code == EXIT_USAGE


def test_gspread_default_service_account(home: Path, private_key: str) -> None:
    write_json(gspread_dir(home) / "service_account.json", service_account(private_key))
    auth = load_auth(None, {})
    assert isinstance(auth.credentials, ServiceAccountCredentials)
    assert auth.email == EMAIL and EMAIL in auth.who
    assert auth.credentials.scopes == ["https://www.googleapis.com/auth/spreadsheets"]


def test_environment_variable_then_mapping_win(
    home: Path, tmp_path: Path, private_key: str
) -> None:
    write_json(gspread_dir(home) / "authorized_user.json", {"type": "authorized_user"})
    env_key = write_json(
        tmp_path / "env.json",
        {**service_account(private_key), "client_email": "env@x.iam.gserviceaccount.com"},
    )
    mapped = write_json(tmp_path / "mapped.json", service_account(private_key))
    environ = {"GOOGLE_APPLICATION_CREDENTIALS": str(env_key)}
    assert load_auth(None, environ).email == "env@x.iam.gserviceaccount.com"
    assert load_auth(mapped, environ).email == EMAIL


def test_a_named_file_that_is_missing_is_an_error(home: Path, tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"source.credentials in the mapping names .*nope.json, which does not exist",
    ):
        load_auth(tmp_path / "nope.json", {})
    with pytest.raises(ConfigError, match="a folder; name the JSON key file in it"):
        load_auth(tmp_path, {})
    with pytest.raises(ConfigError, match="GOOGLE_APPLICATION_CREDENTIALS names"):
        load_auth(None, {"GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "gone.json")})


def test_cached_oauth_login(home: Path) -> None:
    write_json(
        gspread_dir(home) / "authorized_user.json",
        {
            "type": "authorized_user",
            "client_id": "c",
            "client_secret": "s",
            "refresh_token": "1//r",
        },
    )
    auth = load_auth(None, {})
    assert isinstance(auth.credentials, UserCredentials) and "OAuth" in auth.who
    assert auth.email is None


CLIENT = {
    "installed": {
        "client_id": "123.apps.googleusercontent.com",
        "client_secret": "GOCSPX-secret",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
        "redirect_uris": ["http://localhost"],
    }
}


def test_oauth_client_needs_a_terminal_the_first_time(home: Path) -> None:
    write_json(gspread_dir(home) / "credentials.json", CLIENT)
    with pytest.raises(ConfigError) as err:
        load_auth(None, {}, interactive=False)
    assert "first login happens in a browser" in str(err.value)
    assert str(home / ".config" / "gspread" / "authorized_user.json") in str(err.value)
    assert "GOCSPX" not in str(err.value)


def test_oauth_login_is_gspreads_flow_and_is_cached(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_json(gspread_dir(home) / "credentials.json", CLIENT)
    calls: list[Any] = []

    def flow(client_config: Any, scopes: Any, port: int = 0) -> UserCredentials:
        calls.append((client_config, list(scopes)))
        return UserCredentials(
            token="ya29.fresh",
            refresh_token="1//refresh",
            client_id="123.apps.googleusercontent.com",
            client_secret="GOCSPX-secret",
            token_uri="https://oauth2.googleapis.com/token",
        )

    monkeypatch.setattr("gspread.auth.local_server_flow", flow)
    auth = load_auth(None, {}, interactive=True)
    assert calls and calls[0][0] == CLIENT
    cached = home / ".config" / "gspread" / "authorized_user.json"
    assert "ya29.fresh" not in cached.read_text()  # gspread stores the refresh token only
    assert json.loads(cached.read_text())["refresh_token"] == "1//refresh"
    assert isinstance(auth.credentials, UserCredentials)
    load_auth(None, {}, interactive=False)  # next time: no browser
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (
            "not json -----BEGIN PRIVATE KEY-----\nMIIEvQIBADAN\n-----END PRIVATE KEY-----",
            "not a JSON credentials file",
        ),
        ('["a list"]', "expected a JSON object"),
        ('{"type": "something_else"}', "not a Google credentials file"),
    ],
)
def test_unusable_files(home: Path, tmp_path: Path, content: str, says: str) -> None:
    path = tmp_path / "key.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_auth(path, {})
    assert says in str(err.value) and "MIIEvQ" not in str(err.value)
    # a traceback shows no chained error (a JSONDecodeError would print the whole file)
    assert err.value.__cause__ is None
    assert err.value.__context__ is None or err.value.__suppress_context__


def test_a_broken_key_never_shows_the_private_key(tmp_path: Path, private_key: str) -> None:
    broken = {**service_account(private_key), "private_key": private_key[:200] + "garbage"}
    missing = {k: v for k, v in service_account(private_key).items() if k != "client_email"}
    for n, data in enumerate((broken, missing)):
        path = write_json(tmp_path / f"key{n}.json", data)
        with pytest.raises(ConfigError) as err:
            load_auth(path, {})
        assert "not usable Google credentials" in str(err.value)
        assert "PRIVATE KEY" not in str(err.value) and private_key[40:80] not in str(err.value)
        assert err.value.__cause__ is None and err.value.__suppress_context__


def test_scrub_removes_keys_and_tokens() -> None:
    text = (
        "bad -----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY----- ya29.a0AfB_byC token "
        "1//0gABCDEFGHIJKLMNOPQRSTUV"
    )
    assert scrub(text) == "bad <private key> <token> token <token>"


# --- real sign-in against the stand-in ---------------------------------------------------------


@pytest.fixture
def secured(private_key: str, tmp_path: Path) -> Iterator[tuple[SheetsStandIn, Path]]:
    with SheetsStandIn(require_auth=True) as server:
        server.add_spreadsheet(KEY, "SME labels", sheets=[("Labels", 0)])
        server.put(KEY, "Labels", [["span_id", "label"], ["0000000000000001", "correct"]])
        key = write_json(tmp_path / "sa.json", service_account(private_key, f"{server.url}/token"))
        yield server, key


def test_service_account_signs_in_and_reads(secured: tuple[SheetsStandIn, Path]) -> None:
    server, key = secured
    with GSheetsSource(KEY, "Labels", credentials=key, api_base=server.url) as src:
        [row] = src.read(SPEC)
    assert row.values["span_id"] == "0000000000000001"
    assert [r.kind for r in server.log] == ["token", "read"]
    assert len(server.tokens) == 1


def test_not_shared_names_the_service_accounts_email(secured: tuple[SheetsStandIn, Path]) -> None:
    server, key = secured
    server.spreadsheets[KEY].access = "none"
    with GSheetsSource(KEY, "Labels", credentials=key, api_base=server.url) as src:
        with pytest.raises(AuthRefused) as err:
            src.read(SPEC)
    text = str(err.value)
    assert f"the sheet is not shared with the service account {EMAIL} (403" in text
    assert f"click Share, add {EMAIL} as Editor" in text
    assert err.value.exit_code == EXIT_UNAVAILABLE
    assert "ya29." not in text and "PRIVATE" not in text


def test_a_revoked_key_is_auth_refused_without_secrets(
    secured: tuple[SheetsStandIn, Path], private_key: str
) -> None:
    server, key = secured
    server.refuse_tokens = True
    with GSheetsSource(KEY, "Labels", credentials=key, api_base=server.url) as src:
        with pytest.raises(AuthRefused) as err:
            src.read(SPEC)
    text = str(err.value)
    assert "Google refused to sign in the service account" in text and "invalid_grant" in text
    assert "create a new key" in text and "Nothing was sent" in text
    assert private_key[40:80] not in text and "BEGIN" not in text
    assert server.count() == 0  # no Sheets request without a token


def test_an_expired_token_is_renewed_on_401(secured: tuple[SheetsStandIn, Path]) -> None:
    server, key = secured
    with GSheetsSource(KEY, "Labels", credentials=key, api_base=server.url) as src:
        src.read(SPEC)
        server.tokens.clear()  # Google no longer accepts the token: google-auth renews it
        src.read(SPEC)
    assert [(r.kind, r.status) for r in server.log] == [
        ("token", 200),
        ("read", 200),
        ("read", 401),
        ("token", 200),
        ("read", 200),
    ]


def test_401_that_cannot_be_fixed_by_renewing(secured: tuple[SheetsStandIn, Path]) -> None:
    server, key = secured
    with GSheetsSource(KEY, "Labels", credentials=key, api_base=server.url) as src:
        src.read(SPEC)
        server.tokens.clear()
        server.refuse_tokens = True  # the key was deleted meanwhile
        with pytest.raises(AuthRefused) as err:
            src.read(SPEC)
    assert "refused to sign in the service account" in str(err.value)
    assert "ya29." not in str(err.value)


def test_401_without_a_way_to_renew(secured: tuple[SheetsStandIn, Path]) -> None:
    server, _ = secured
    with GSheetsSource(KEY, "Labels", api_base=server.url, session=requests.Session()) as src:
        with pytest.raises(AuthRefused, match=r"Google refused the credentials .*\(401"):
            src.read(SPEC)


# --- the mapping ---------------------------------------------------------------------------------


def source_doc(**source: Any) -> dict[str, Any]:
    return {
        "source": {"type": "gsheet", **source},
        "target": {"type": "phoenix"},
        "annotations": [{"name": "c", "id_column": "span_id", "label_column": "label"}],
    }


def test_mapping_keys(tmp_path: Path) -> None:
    m = parse_mapping(
        source_doc(
            spreadsheet=f"https://docs.google.com/spreadsheets/d/{KEY}/edit#gid=3",
            worksheet=2024,
            credentials="keys/sa.json",
        ),
        tmp_path / "m.yaml",
    )
    assert isinstance(m.source, GSheetConfig)
    assert m.source.worksheet == "2024"  # YAML's number, meant as the tab's title
    assert m.source.credentials == tmp_path / "keys" / "sa.json"
    assert (m.source.gid, m.source.timeout) == (None, 60.0)


def test_mapping_refuses_title_and_gid_together(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match="give worksheet .* or gid .*not both"):
        parse_mapping(source_doc(spreadsheet=KEY, worksheet="Labels", gid=3), tmp_path / "m.yaml")


def test_mapping_refuses_what_is_not_a_sheet(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match="address bar") as err:
        parse_mapping(source_doc(spreadsheet="my labels sheet"), tmp_path / "m.yaml")
    assert err.value.exit_code == EXIT_USAGE


# --- annobridge init --source gsheet ------------------------------------------------------------


def test_init_gsheet_writes_a_mapping_and_prints_the_steps(home: Path, tmp_path: Path) -> None:
    written, steps = init_gsheet_project(tmp_path / "proj")
    [mapping_path] = written
    for must in (
        "https://console.cloud.google.com/apis/library/sheets.googleapis.com",
        "https://console.cloud.google.com/iam-admin/serviceaccounts",
        "Create new key -> JSON",
        str(home / ".config" / "gspread" / "service_account.json"),
        "GOOGLE_APPLICATION_CREDENTIALS",
        "Share -> paste the e-mail -> Editor",
        "span_id,input,output,label,score,explanation,annotator,sync_status",
        f"annobridge validate {mapping_path}",
    ):
        assert must in steps, must
    # the placeholder fails with the fix until the URL is pasted
    with pytest.raises(MappingError, match="address bar"):
        load_mapping(mapping_path)
    text = mapping_path.read_text().replace(
        "<paste the sheet's URL here>", f"https://docs.google.com/spreadsheets/d/{KEY}/edit#gid=0"
    )
    mapping_path.write_text(text)
    source = load_mapping(mapping_path).source
    assert isinstance(source, GSheetConfig) and source.worksheet == "Labels"
    with pytest.raises(ConfigError, match="already exists"):
        init_gsheet_project(tmp_path / "proj")


def test_init_gsheet_names_the_key_already_in_place(
    home: Path, tmp_path: Path, private_key: str
) -> None:
    key = write_json(gspread_dir(home) / "service_account.json", service_account(private_key))
    _, steps = init_gsheet_project(tmp_path / "proj")
    assert f"A key is already in place: {key} (service account {EMAIL})" in steps
    assert f"Share the sheet with the service account's e-mail ({EMAIL})" in steps
    assert private_key[40:80] not in steps
