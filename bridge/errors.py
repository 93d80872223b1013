"""The one exception tree of annobridge.

Every error a user can cause or meet is a ``BridgeError``; the CLI prints it as
``Type: message`` without a traceback and exits with ``exit_code``. Anything else
is a bug and keeps its traceback.

    BridgeError
    ├── ConfigError            exit 2: bad mapping or options, nothing sent
    │   ├── MappingError       exit 2: names the mapping file and the key
    │   ├── AssignmentError    exit 2: --assign / --per-record cannot be satisfied
    │   └── RulesConflict      exit 1: the platform's rules contradict the mapping's own
    │                                  settings (rules pull leaves the mapping unchanged)
    ├── SourceError            exit 2: the sheet cannot be used as given (missing column,
    │                                  worksheet, header, not an xlsx, empty)
    └── UnavailableError       exit 3: safe to retry later, nothing lost
        ├── SourceUnavailable  exit 3: workbook locked or not writable, sheet unreachable
        ├── TargetUnreachable  exit 3: connection refused, timeouts after retries, 5xx
        │   └── UnexpectedAnswer exit 3: the URL answers, but not as the platform's API (a
        │                                sign-in page or a proxy's page instead of JSON)
        └── AuthRefused        exit 3: 401/403 from the platform or the sheet's API

Each class has a ``code``, the stable snake_case name ``--json`` gives as ``error.code`` (the
class name is ``error.type``): monitoring alerts on ``auth_refused`` (a revoked or wrong key
will not get better by retrying, though it exits 3 like the rest of UnavailableError) and on
``unexpected_answer`` (usually a ``target.url`` that reaches a sign-in page or a proxy, not the
platform), and retries the other exit-3 codes.

Row-level problems (an invalid label, a span the platform does not know) are not
exceptions: they end as a row status and the rest of the batch goes on.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_ROWS_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_INTERRUPTED = 130


class BridgeError(Exception):
    """Base of every error annobridge reports to a user."""

    code = "error"
    exit_code = EXIT_ROWS_FAILED


class ConfigError(BridgeError):
    """The mapping or the options are wrong; nothing was sent."""

    code = "config"
    exit_code = EXIT_USAGE


class MappingError(ConfigError):
    """A mapping file is missing, unparsable or has a bad key."""

    code = "mapping"

    def __init__(self, path: object, message: str, key: str | None = None) -> None:
        self.path = str(path)
        self.key = key
        where = f"{self.path}" + (f", key '{key}'" if key else "")
        super().__init__(f"{where}: {message}")


class AssignmentError(ConfigError):
    """The assignment options cannot be satisfied (bad --per-record, repeated names)."""

    code = "assignment"


class RulesConflict(ConfigError):
    """The platform's rules would make every row invalid with the mapping's own settings."""

    code = "rules_conflict"
    exit_code = EXIT_ROWS_FAILED


class SourceError(BridgeError):
    """The sheet cannot be used as the mapping describes it; nothing was sent."""

    code = "source"
    exit_code = EXIT_USAGE


class UnavailableError(BridgeError):
    """Something we need is not reachable right now; nothing was lost, retry later."""

    code = "unavailable"
    exit_code = EXIT_UNAVAILABLE


class SourceUnavailable(UnavailableError):
    """The workbook or sheet cannot be read or written right now."""

    code = "source_unavailable"


class TargetUnreachable(UnavailableError):
    """The platform did not answer, or answered with a server error, after retries."""

    code = "target_unreachable"

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        # True when nothing answered at all (connection refused): the server is down, as
        # opposed to one request that timed out or got a 5xx.
        self.refused = refused


class UnexpectedAnswer(TargetUnreachable):
    """The platform's URL answered 200 with something that is not its API's JSON (an SSO
    sign-in page, a proxy's error page, a web app at the wrong URL) or with JSON of another
    shape: exit 3 like any unreachable platform, ``code`` unexpected_answer so monitoring can
    tell a wrong ``target.url`` from an outage."""

    code = "unexpected_answer"


class AuthRefused(UnavailableError):
    """The platform (or the sheet's API) refused our credentials (401/403): exit 3, but
    retrying does not help until someone fixes the key (``code`` auth_refused)."""

    code = "auth_refused"
