"""Schemathesis hooks for scripts/schemathesis (loaded with SCHEMATHESIS_HOOKS=hooks).

openapi.yaml says what a well-formed request is; two refusals of well-formed requests depend on
something no document can state, and only these two are accepted from the
`positive_data_acceptance` check (every other check, and every other refusal, still fails the run):

- `POST /sessions` naming an integration that fits Nango's id rule but is not configured in the
  Nango environment (or not in NANGO_ALLOWED_INTEGRATIONS): `400 integration_not_allowed`.
- `GET /connections` with a `cursor` of the right form that this API did not hand out to this
  caller (cursors are opaque and bound to the caller): `400 invalid_cursor`. Real cursors are
  exercised by the stateful phase, which follows the `NextPage` link.
"""

import json

import schemathesis

EXPECTED_REFUSALS = {
    ("POST", "/sessions"): ("integration_not_allowed", None),
    ("GET", "/connections"): ("invalid_cursor", "cursor"),
}


def _error_code(response):
    try:
        return json.loads(response.content)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


@schemathesis.hook
def filter_failure(context, failure, case, response):
    if "positive_data_acceptance" not in getattr(failure, "checks", ()) or response.status_code != 400:
        return True
    expected = EXPECTED_REFUSALS.get((case.operation.method.upper(), case.operation.path))
    if expected is None:
        return True
    code, parameter = expected
    if parameter is not None and parameter not in (case.query or {}):
        return True
    # Dropped (False) only when the API refused for exactly that reason.
    return _error_code(response) != code
