"""Google credentials the way gspread users keep them, and messages scrubbed of secrets.

``load_auth`` looks in the mapping's ``source.credentials``, ``GOOGLE_APPLICATION_CREDENTIALS``
and gspread's own files, in that order; nothing here talks to the Sheets API.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import google.auth
import google.auth.exceptions
import gspread.auth
from google.auth.credentials import Credentials
from google.oauth2.credentials import Credentials as UserCredentials
from google.oauth2.service_account import Credentials as ServiceAccountCredentials

from bridge.errors import ConfigError

# Reading and writing cell values is all annobridge does: no Drive scope for service accounts.
SCOPES = ["https://www.googleapis.com/auth/spreadsheets"]

_PEM = re.compile(r"-----BEGIN [A-Z ]+-----.*?(-----END [A-Z ]+-----|$)", re.S)
_TOKEN = re.compile(r"\bya29\.[\w.-]+|\b1//[\w.-]{20,}")


def scrub(text: str, limit: int = 300) -> str:
    """A message without private keys or OAuth tokens in it, cut to ``limit`` characters."""
    text = _PEM.sub("<private key>", text)
    text = _TOKEN.sub("<token>", text)
    return text[:limit]


# --- credentials -----------------------------------------------------------------------------


@dataclass(frozen=True)
class GoogleAuth:
    """Credentials and who they are, for messages (never the secret itself)."""

    credentials: Credentials
    who: str
    email: str | None = None  # a service account's e-mail: the address to share the sheet with


def credential_files(
    configured: Path | None, environ: Mapping[str, str] | None = None
) -> tuple[list[tuple[Path, str]], bool]:
    """Where credentials are looked for, in order, and whether the first was named explicitly."""
    env = os.environ if environ is None else environ
    if configured is not None:
        return [(configured, "source.credentials in the mapping")], True
    if env.get("GOOGLE_APPLICATION_CREDENTIALS"):
        path = Path(env["GOOGLE_APPLICATION_CREDENTIALS"]).expanduser()
        return [(path, "GOOGLE_APPLICATION_CREDENTIALS")], True
    home = gspread.auth.get_config_dir()
    return [
        (home / "service_account.json", "gspread's default service-account key"),
        (home / "authorized_user.json", "gspread's cached OAuth login"),
        (home / "credentials.json", "gspread's OAuth client file"),
    ], False


def load_auth(
    configured: Path | None = None,
    environ: Mapping[str, str] | None = None,
    interactive: bool | None = None,
) -> GoogleAuth:
    """Find credentials the way gspread users keep them.

    Order: ``source.credentials`` of the mapping; ``GOOGLE_APPLICATION_CREDENTIALS``;
    gspread's ``service_account.json``, ``authorized_user.json`` (a cached OAuth login) and
    ``credentials.json`` (an OAuth client: logs in through the browser once, then caches).

    :raises ConfigError: nothing found (listing where it looked), or an unusable file.
    """
    files, explicit = credential_files(configured, environ)
    for path, origin in files:
        if path.is_file():
            return _load_file(path, origin, interactive)
        if explicit and path.is_dir():
            raise ConfigError(f"{origin} names {path}, a folder; name the JSON key file in it")
        if explicit:
            raise ConfigError(
                f"{origin} names {path}, which does not exist; put the service account's JSON "
                "key there, or fix the path"
            )
    looked = ", ".join(str(p) for p, _ in files)
    raise ConfigError(
        "no Google credentials found. Looked for: source.credentials in the mapping (not set), "
        f"GOOGLE_APPLICATION_CREDENTIALS (not set), {looked}. Create a service account and a "
        "JSON key for it ('annobridge init --source gsheet' prints the steps), save the key as "
        f"{files[0][0]} or set source.credentials in the mapping, and share the sheet with the "
        "service account's e-mail (client_email in the key file) as Editor"
    )


def _load_file(path: Path, origin: str, interactive: bool | None) -> GoogleAuth:
    where = f"{path} ({origin})"
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read the credentials ({exc.strerror})") from None
    try:
        info = json.loads(raw)
    except ValueError:
        # never chain: a JSONDecodeError carries the whole file, private key included
        raise ConfigError(
            f"{where}: not a JSON credentials file; download the service account's key again, "
            "as JSON"
        ) from None
    if not isinstance(info, dict):
        raise ConfigError(f"{where}: not a Google credentials file (expected a JSON object)")
    kind = info.get("type")
    try:
        if kind == "service_account":
            sa = ServiceAccountCredentials.from_service_account_info(  # type: ignore[no-untyped-call]
                info, scopes=SCOPES
            )
            email = sa.service_account_email
            return GoogleAuth(sa, f"the service account {email}", email)
        # gspread caches OAuth logins without a "type" (google-auth's Credentials.to_json)
        if kind == "authorized_user" or (kind is None and "refresh_token" in info):
            user = UserCredentials.from_authorized_user_info(info)  # type: ignore[no-untyped-call]
            return GoogleAuth(user, f"the Google account logged in with OAuth (token {path})")
        if isinstance(info.get("installed") or info.get("web"), dict):
            return _oauth_login(info, path, interactive)
        if kind in ("external_account", "impersonated_service_account"):
            creds, _ = google.auth.load_credentials_from_file(  # type: ignore[no-untyped-call]
                str(path), scopes=SCOPES
            )
            return GoogleAuth(creds, f"the {kind.replace('_', ' ')} of {path}")
    except (ValueError, google.auth.exceptions.GoogleAuthError) as exc:
        raise ConfigError(
            f"{where}: not usable Google credentials ({scrub(str(exc), 200)}); create a new JSON "
            "key for the service account and use that"
        ) from None
    raise ConfigError(
        f"{where}: not a Google credentials file; expected a service-account key "
        '("type": "service_account") or an OAuth client file ("installed")'
    )


def _oauth_login(client: dict[str, Any], path: Path, interactive: bool | None) -> GoogleAuth:
    """gspread's OAuth flow: reuse the cached login, or log in through the browser once."""
    token_file = gspread.auth.get_config_dir() / "authorized_user.json"
    if token_file.is_file():
        return _load_file(token_file, "gspread's cached OAuth login", interactive)
    if interactive is None:
        interactive = sys.stdin.isatty() and sys.stdout.isatty()
    if not interactive:
        raise ConfigError(
            f"{path} is an OAuth client file: the first login happens in a browser. Run "
            "'annobridge validate <mapping>' once in a terminal; the login is then cached in "
            f"{token_file} for unattended runs"
        )
    creds = gspread.auth.local_server_flow(client, gspread.auth.DEFAULT_SCOPES)
    gspread.auth.store_credentials(creds, filename=token_file)
    return GoogleAuth(creds, f"the Google account logged in with OAuth (token {token_file})")


def service_account_email(environ: Mapping[str, str] | None = None) -> tuple[Path, str] | None:
    """The first service-account key found where ``load_auth`` looks, and its e-mail.

    Reads files only (no network); for ``annobridge init`` to say whom to share the sheet with.
    """
    files, _ = credential_files(None, environ)
    for path, _origin in files:
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(info, dict) and info.get("type") == "service_account":
            email = info.get("client_email")
            if isinstance(email, str) and email:
                return path, email
    return None
