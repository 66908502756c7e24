"""What template.yaml promises, proved by reading it (no AWS account needed).

Each promise is a `check_*` function over the parsed template; a `test_*` runs it on template.yaml,
and `test_check_catches` runs it on deliberately broken copies, so every check is shown to fail
when the template breaks the promise. Run with `scripts/check-sam` (or `pytest infra/template-tests`);
`TEMPLATE=path` points it at another file.
"""

import copy
import functools
import json
import os
import pathlib
import re

import pytest
from cfnlint.decode import cfn_yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
TEMPLATE_PATH = pathlib.Path(os.environ.get("TEMPLATE", ROOT / "template.yaml"))
TABLE_DEFINITION = ROOT / "infra" / "dynamodb" / "connections-table.json"
RATE_LIMIT_TABLE_DEFINITION = ROOT / "infra" / "dynamodb" / "rate-limit-table.json"
TABLE_TTL = ROOT / "infra" / "dynamodb" / "connections-table-ttl.json"
NANGO_HOST_CASES = json.loads((ROOT / "infra" / "template-tests" / "nango-host-cases.json").read_text())


def load_template(path):
    """The template as plain dicts, short tags (!Ref, !GetAtt, !Sub, !If ...) in their long form."""
    return json.loads(json.dumps(cfn_yaml.load(str(path))))


# ── What the template must say ───────────────────────────────────────────────────────────────────

TABLE = "ConnectionsTable"
TABLE_ARN = {"Fn::GetAtt": [TABLE, "Arn"]}
RATE_LIMIT_TABLE = "RateLimitTable"
RATE_LIMIT_TABLE_ARN = {"Fn::GetAtt": [RATE_LIMIT_TABLE, "Arn"]}
TAKE_TOKEN = ("dynamodb:UpdateItem", RATE_LIMIT_TABLE_ARN)
INDEX_ARNS = {name: {"Fn::Sub": f"${{{TABLE}.Arn}}/index/{name}"} for name in ("byEndUser", "byOrganization")}
# The secret the stack creates, or the existing one named by a parameter.
SECRET_ARN = {"Fn::If": ["CreateNangoSecret", {"Ref": "NangoSecret"}, {"Ref": "ExistingNangoSecretArn"}]}
GET_SECRET = "secretsmanager:GetSecretValue"
STREAM_ARN = {"Fn::GetAtt": [TABLE, "StreamArn"]}
STREAM_ACTIONS = {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"}
# The bus the stack creates, or the existing one named by a parameter.
BUS_NAME = {"Fn::If": ["CreateEventBus", {"Ref": "EventBus"}, {"Ref": "ExistingEventBusName"}]}
BUS_ARN = {"Fn::If": ["CreateEventBus", {"Fn::GetAtt": ["EventBus", "Arn"]}, {
    "Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${ExistingEventBusName}"}]}
PUT_EVENTS = "events:PutEvents"
DLQ = "EventsDeadLetterQueue"
DLQ_ARN = {"Fn::GetAtt": [DLQ, "Arn"]}

API_FUNCTIONS = ["CreateSessionFunction", "ReconnectSessionFunction", "ListConnectionsFunction",
                 "DeleteConnectionFunction"]
RECEIVER = "WebhookReceiverFunction"
PUBLISHER = "PublishEventsFunction"
RECONCILER = "ReconcileConnectionsFunction"
FUNCTIONS = {
    # logical id: Cargo workspace member (its binary has the same name)
    "CreateSessionFunction": "create-session",
    "ReconnectSessionFunction": "reconnect-session",
    "ListConnectionsFunction": "list-connections",
    "DeleteConnectionFunction": "delete-connection",
    RECEIVER: "webhook-receiver",
    PUBLISHER: "publish-events",
    RECONCILER: "reconcile-connections",
}
ROUTES = {
    ("POST", "/sessions"): "CreateSessionFunction",
    ("POST", "/sessions/reconnect"): "ReconnectSessionFunction",
    ("GET", "/connections"): "ListConnectionsFunction",
    ("DELETE", "/connections/{connectionId}"): "DeleteConnectionFunction",
}
# Exactly the (action, resource) pairs each function's code needs: shared/src/store.rs and bootstrap.rs.
PERMISSIONS = {
    # Every function that calls Nango takes tokens (shared/src/rate_limit.rs): its callers' shares
    # and the one Nango budget.
    "CreateSessionFunction": [(GET_SECRET, SECRET_ARN), TAKE_TOKEN],
    "ReconnectSessionFunction": [("dynamodb:GetItem", TABLE_ARN), (GET_SECRET, SECRET_ARN), TAKE_TOKEN],
    "ListConnectionsFunction": [("dynamodb:Query", INDEX_ARNS["byEndUser"]),
                                ("dynamodb:Query", INDEX_ARNS["byOrganization"])],
    "DeleteConnectionFunction": [("dynamodb:GetItem", TABLE_ARN), ("dynamodb:PutItem", TABLE_ARN),
                                 (GET_SECRET, SECRET_ARN), TAKE_TOKEN],
    RECEIVER: [("dynamodb:GetItem", TABLE_ARN), ("dynamodb:PutItem", TABLE_ARN), (GET_SECRET, SECRET_ARN),
               (PUT_EVENTS, BUS_ARN), TAKE_TOKEN],
    # What Lambda's event source mapping does with the function's role, and the function's PutEvents.
    PUBLISHER: [("dynamodb:DescribeStream", STREAM_ARN), ("dynamodb:GetRecords", STREAM_ARN),
                ("dynamodb:GetShardIterator", STREAM_ARN), ("dynamodb:ListStreams", "*"),
                (PUT_EVENTS, BUS_ARN), ("sqs:SendMessage", DLQ_ARN)],
    # shared/src/store/reconciliation.rs: BatchGetItem per page of Nango's listing (get_many, listed),
    # the sweep's Scan slices (sweep_page), the checkpoint (GetItem, PutItem); then the receiver's read
    # and conditional write, and the note of an absence check (mark_absence_checked).
    RECONCILER: [("dynamodb:BatchGetItem", TABLE_ARN), ("dynamodb:Scan", TABLE_ARN), ("dynamodb:GetItem", TABLE_ARN),
                 ("dynamodb:PutItem", TABLE_ARN), ("dynamodb:UpdateItem", TABLE_ARN), (GET_SECRET, SECRET_ARN), TAKE_TOKEN],
}
# IAM grants these only on "*" (they have no resource type).
UNSCOPED_ACTIONS = {"dynamodb:ListStreams"}
NEEDS_SECRET = {name for name, grants in PERMISSIONS.items() if any(a == GET_SECRET for a, _ in grants)}
NEEDS_TABLE = {name for name, grants in PERMISSIONS.items()
               if any(a.startswith("dynamodb:") and a not in STREAM_ACTIONS and r != RATE_LIMIT_TABLE_ARN
                      for a, r in grants)}
NEEDS_BUCKETS = {name for name, grants in PERMISSIONS.items() if TAKE_TOKEN in grants}
NEEDS_BUS = {name for name, grants in PERMISSIONS.items() if any(a == PUT_EVENTS for a, _ in grants)}
SECRET_VARIABLES = {"NANGO_SECRET_KEY", "NANGO_WEBHOOK_SIGNING_KEY"}

NANGO_WEBHOOK_TIMEOUT = 20  # Nango waits this long for the receiver (per delivery attempt)
API_GATEWAY_TIMEOUT = 29  # API Gateway's integration timeout
NANGO_BUDGET = 9  # shared/src/config.rs: all calls to Nango in one request
NANGO_CALLERS = {"CreateSessionFunction", "ReconnectSessionFunction", "DeleteConnectionFunction"}
# shared/src/handlers/reconcile_connections.rs: one call to Nango from a run (all attempts and waits),
# and the time a run keeps free at the end of its invocation.
RECONCILE_NANGO_BUDGET = 75
RECONCILE_FINISH_MARGIN = 20
RECONCILE_DEFAULT_MINUTES = 15
# Functions that decide who may act on a stored connection (shared/src/access.rs).
POLICY_READERS = {"ReconnectSessionFunction", "ListConnectionsFunction", "DeleteConnectionFunction"}
ORGANIZATION_ACCESS_VALUES = ["shared", "visible", "private"]
# Nango's API allows about 200 requests a minute per account (shared/docs/nango-api.md §4).
NANGO_REQUESTS_PER_SECOND = 200 / 60


# ── Helpers ──────────────────────────────────────────────────────────────────────────────────────

def resources(t, kind=None):
    return {k: v for k, v in t.get("Resources", {}).items() if kind is None or v.get("Type") == kind}


def merged(base, override):
    """SAM's Globals semantics: maps merge, the resource's own value wins."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def function(t, name):
    """A function's properties with the Globals applied."""
    resource = t["Resources"][name]
    assert resource["Type"] == "AWS::Serverless::Function", f"{name} is not a SAM function"
    return merged(t.get("Globals", {}).get("Function", {}), resource.get("Properties", {}))


def normalized(value):
    """`Fn::GetAtt: X.Arn` and `!GetAtt X.Arn` compare equal."""
    if isinstance(value, dict):
        if set(value) == {"Fn::GetAtt"} and isinstance(value["Fn::GetAtt"], str):
            return {"Fn::GetAtt": value["Fn::GetAtt"].split(".", 1)}
        return {k: normalized(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalized(v) for v in value]
    return value


def as_list(value):
    return value if isinstance(value, list) else [value]


def branches(value):
    """The values an expression can take: both sides of an Fn::If, or itself."""
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        return [v for b in value["Fn::If"][1:] for v in branches(b)]
    return [value]


def strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def environment(t, name):
    return function(t, name).get("Environment", {}).get("Variables", {})


def given_only_to(t, variable, parameter, functions):
    """`variable` is the template parameter `parameter` in exactly `functions`, and absent elsewhere."""
    for name in FUNCTIONS:
        value = environment(t, name).get(variable)
        expected = {"Ref": parameter} if name in functions else None
        assert value == expected, f"{name}: {variable} is {value}, not {expected}"


def grants(t, name):
    """Every (action, resource) pair the function's own policies allow, after checking their form."""
    props = function(t, name)
    assert "Role" not in props, f"{name}: a role of its own escapes these checks"
    pairs = []
    for policy in as_list(props.get("Policies", [])):
        assert isinstance(policy, dict) and "Statement" in policy, (
            f"{name}: only inline policy documents are allowed, not managed policies or SAM policy "
            f"templates: {policy!r}")
        for statement in as_list(policy["Statement"]):
            assert statement.get("Effect") == "Allow", f"{name}: {statement}"
            assert not {"NotAction", "NotResource", "Principal"} & set(statement), f"{name}: {statement}"
            for action in as_list(statement["Action"]):
                for resource in as_list(statement["Resource"]):
                    pairs.append((action, normalized(resource)))
    return pairs


def key(pair):
    return json.dumps(pair, sort_keys=True)


# ── The checks ───────────────────────────────────────────────────────────────────────────────────

def check_functions(t):
    """The workspace's function members, each an arm64 provided.al2023 zip built by cargo-lambda."""
    assert set(resources(t, "AWS::Serverless::Function")) == set(FUNCTIONS)
    members = {p.name for p in (ROOT / "functions").iterdir() if (p / "Cargo.toml").is_file()}
    assert set(FUNCTIONS.values()) == members, "every function crate is deployed, and nothing else"
    for name, member in FUNCTIONS.items():
        props = function(t, name)
        assert t["Resources"][name].get("Metadata", {}).get("BuildMethod") == "rust-cargolambda", name
        assert props.get("CodeUri") == f"functions/{member}", name
        assert props.get("Runtime") == "provided.al2023", name
        assert props.get("Architectures") == ["arm64"], name
        assert props.get("PackageType") == "Zip", name
        assert props.get("Handler") == "bootstrap", name


def check_logging(t):
    """JSON logs into a log group of the function's own, with a retention."""
    log_groups = resources(t, "AWS::Logs::LogGroup")
    seen = set()
    for name in FUNCTIONS:
        logging = function(t, name).get("LoggingConfig", {})
        assert logging.get("LogFormat") == "JSON", name
        group = logging.get("LogGroup", {}).get("Ref") if isinstance(logging.get("LogGroup"), dict) else None
        assert group in log_groups, f"{name}: LoggingConfig.LogGroup must !Ref a log group of the stack"
        assert group not in seen, f"{name}: shares its log group"
        seen.add(group)
        retention = log_groups[group]["Properties"].get("RetentionInDays")
        assert retention == {"Ref": "LogRetentionDays"}, f"{group}: retention"
    assert "Default" in t["Parameters"]["LogRetentionDays"]


def check_routes(t):
    """Each route goes to its function, on the one HTTP API; the receiver and the reconciliation have
    no API route."""
    found = {}
    for name in FUNCTIONS:
        for event_name, event in function(t, name).get("Events", {}).items():
            if name == RECONCILER:
                assert event["Type"] == "ScheduleV2", f"{name}.{event_name}: only its schedule"
                continue
            assert event["Type"] == "HttpApi", f"{name}.{event_name}: only HTTP API routes"
            props = event["Properties"]
            assert props.get("ApiId") == {"Ref": "Api"}, f"{name}.{event_name}: not on the JWT API"
            route = (props["Method"].upper(), props["Path"])
            assert route not in found, f"{route} is routed twice"
            found[route] = name
    assert found == ROUTES
    assert "Events" not in function(t, RECEIVER)


def check_authorizer(t):
    """Every route needs a JWT from the configured issuer and audience; CORS only for AllowedOrigins."""
    api = resources(t, "AWS::Serverless::HttpApi")
    assert set(api) == {"Api"}
    props = api["Api"]["Properties"]
    auth = props["Auth"]
    authorizer = auth["Authorizers"][auth["DefaultAuthorizer"]]
    assert authorizer["IdentitySource"] == "$request.header.Authorization"
    assert authorizer["JwtConfiguration"] == {"issuer": {"Ref": "JwtIssuer"}, "audience": {"Ref": "JwtAudience"}}
    for name in API_FUNCTIONS:
        for event in function(t, name).get("Events", {}).values():
            assert event["Properties"].get("Auth", {}).get("Authorizer", auth["DefaultAuthorizer"]) \
                == auth["DefaultAuthorizer"], f"{name}: a route without the JWT authorizer"
    cors = [c for c in branches(props["CorsConfiguration"]) if c != {"Ref": "AWS::NoValue"}]
    assert cors and all(c.get("AllowOrigins") == {"Ref": "AllowedOrigins"} for c in cors), cors
    assert "*" not in set(strings(cors)), "no wildcard in CORS"
    assert not any(c.get("AllowCredentials") for c in cors)


@pytest.fixture(params=sorted(PERMISSIONS))
def function_name(request):
    return request.param


def check_least_privilege(t, name):
    """The function's policies allow exactly what its code calls, on exactly those resources."""
    actual = grants(t, name)
    assert sorted(map(key, actual)) == sorted(map(key, PERMISSIONS[name])), f"{name}: {actual}"
    for action, resource in actual:
        assert "*" not in action, f"{name}: wildcard action {action}"
        if action not in UNSCOPED_ACTIONS:
            assert "*" not in "".join(strings(resource)), f"{name}: wildcard resource {resource}"


def check_no_stray_iam(t):
    """No role or policy besides the ones SAM makes from each function's Policies."""
    for kind in ("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::Serverless::Connector"):
        assert not resources(t, kind), f"a {kind} escapes the least-privilege checks"
    assert not {"Role", "Policies"} & set(t.get("Globals", {}).get("Function", {}))


def check_create_session_has_no_dynamodb_access(t):
    """create-session touches no connection: its only DynamoDB grant is the token buckets'."""
    props = function(t, "CreateSessionFunction")
    assert [(a, r) for a, r in grants(t, "CreateSessionFunction") if a.startswith("dynamodb:")] == [TAKE_TOKEN]
    assert "CONNECTIONS_TABLE" not in props.get("Environment", {}).get("Variables", {})


def check_list_connections_has_no_secret_access(t):
    assert not [a for a, _ in grants(t, "ListConnectionsFunction") if a.startswith("secretsmanager:")]
    assert "NANGO_SECRET_ARN" not in environment(t, "ListConnectionsFunction")


def check_table_matches_definition(t):
    """Key schema, attributes and indexes are those of infra/dynamodb/connections-table.json."""
    definition = json.loads(TABLE_DEFINITION.read_text())
    table = resources(t, "AWS::DynamoDB::Table")
    assert set(table) == {TABLE, RATE_LIMIT_TABLE}
    props = table[TABLE]["Properties"]

    def attributes(d):
        return sorted(d["AttributeDefinitions"], key=lambda a: a["AttributeName"])

    def indexes(d):
        return sorted(d.get("GlobalSecondaryIndexes", []), key=lambda i: i["IndexName"])

    assert attributes(props) == attributes(definition)
    assert props["KeySchema"] == definition["KeySchema"]
    assert indexes(props) == indexes(definition)
    assert props.get("LocalSecondaryIndexes") == definition.get("LocalSecondaryIndexes")
    assert props["BillingMode"] == definition["BillingMode"] == "PAY_PER_REQUEST"
    # The stream publish-events reads: both images, so a change can be told from a no-op write.
    assert props.get("StreamSpecification", {}).get("StreamViewType") \
        == definition["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert definition["StreamSpecification"]["StreamEnabled"] is True
    assert {i["IndexName"] for i in indexes(props)} == set(INDEX_ARNS)


# The functions that write connections, and so tombstones (shared/src/store.rs).
TOMBSTONE_WRITERS = {RECEIVER, "DeleteConnectionFunction", RECONCILER}


def check_tombstones_expire(t):
    """Time to live on the attribute the store writes (the UpdateTimeToLive input the tests and the
    local stack use), and the retention from a parameter, default 30 days, given to every writer."""
    ttl = json.loads(TABLE_TTL.read_text())["TimeToLiveSpecification"]
    assert ttl == {"AttributeName": "expiresAt", "Enabled": True}
    assert t["Resources"][TABLE]["Properties"].get("TimeToLiveSpecification") == ttl
    parameter = t["Parameters"]["TombstoneRetentionDays"]
    assert parameter["Type"] == "Number"
    assert int(parameter["Default"]) == 30
    # shared/src/config.rs: TOMBSTONE_RETENTION_DAYS_RANGE.
    assert (int(parameter["MinValue"]), int(parameter["MaxValue"])) == (1, 3650)
    given_only_to(t, "TOMBSTONE_RETENTION_DAYS", "TombstoneRetentionDays", TOMBSTONE_WRITERS)


def check_allowed_integrations(t):
    """New sessions and reconnects are held to the same list of integrations."""
    for name in ("CreateSessionFunction", "ReconnectSessionFunction"):
        assert environment(t, name).get("NANGO_ALLOWED_INTEGRATIONS") == {"Ref": "NangoAllowedIntegrations"}, name


def check_table_protection(t):
    """Point-in-time recovery on; deletion protection and retention from parameters."""
    table = t["Resources"][TABLE]
    props = table["Properties"]
    assert props.get("PointInTimeRecoverySpecification") == {"PointInTimeRecoveryEnabled": True}
    assert props.get("DeletionProtectionEnabled") == {"Ref": "TableDeletionProtection"}
    assert table.get("DeletionPolicy") == table.get("UpdateReplacePolicy") == {"Ref": "TableRetentionPolicy"}
    assert t["Parameters"]["TableRetentionPolicy"]["Default"] == "Retain"
    assert t["Parameters"]["TableDeletionProtection"]["Default"] == "true"
    assert "AWS::LanguageExtensions" in as_list(t["Transform"]), "needed for a DeletionPolicy parameter"


def check_no_secret_parameters(t):
    """No parameter carries a secret (only the ARN of one)."""
    for name, parameter in t.get("Parameters", {}).items():
        assert not parameter.get("NoEcho"), f"{name}: a NoEcho parameter is a secret in disguise"
        if re.search(r"secret|signing|password|token|key", name, re.IGNORECASE):
            assert name.endswith("Arn"), f"{name}: secrets belong in Secrets Manager, not parameters"


def check_no_secret_environment(t):
    """Deployed functions get the secret's ARN, never the secret values as plain variables."""
    globals_env = t.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    assert not SECRET_VARIABLES & set(globals_env)
    for name in FUNCTIONS:
        env = environment(t, name)
        assert not SECRET_VARIABLES & set(env), f"{name}: {SECRET_VARIABLES & set(env)}"
        if name in NEEDS_SECRET:
            assert normalized(env.get("NANGO_SECRET_ARN")) == SECRET_ARN, f"{name}: NANGO_SECRET_ARN"
        else:
            assert "NANGO_SECRET_ARN" not in env, name
        if name in NEEDS_TABLE:
            assert env.get("CONNECTIONS_TABLE") == {"Ref": TABLE}, f"{name}: CONNECTIONS_TABLE"
        else:
            assert "CONNECTIONS_TABLE" not in env, name


SECRET_LOOKING = [
    re.compile(r"nango_sk_|sk_(live|test)_|-----BEGIN|AKIA[0-9A-Z]{16}"),
    # Nango secret keys are UUIDs.
    re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE),
    re.compile(r"\b[0-9a-f]{32,}\b", re.IGNORECASE),
]


def looks_random(text):
    """A long run of key characters mixing letters and digits (words and paths have no digits)."""
    return any(sum(c.isdigit() for c in run) >= 3 and sum(c.isalpha() for c in run) >= 3
               for run in re.findall(r"[A-Za-z0-9+/_=-]{24,}", text))


def check_no_secret_literal(t):
    """No literal anywhere looks like a key, and the secret the stack creates holds only placeholders."""
    for text in strings(t):
        assert not any(p.search(text) for p in SECRET_LOOKING), f"secret-looking literal: {text!r}"
        assert not looks_random(text), f"secret-looking literal: {text!r}"
    secrets = resources(t, "AWS::SecretsManager::Secret")
    assert set(secrets) == {"NangoSecret"}
    secret = secrets["NangoSecret"]
    assert secret.get("Condition") == "CreateNangoSecret"
    assert t["Conditions"]["CreateNangoSecret"] == {"Fn::Equals": [{"Ref": "ExistingNangoSecretArn"}, ""]}
    props = secret["Properties"]
    assert "SecretString" not in props, "the template must not carry a secret value"
    generated = props["GenerateSecretString"]
    template = json.loads(generated["SecretStringTemplate"])
    assert set(template) | {generated["GenerateStringKey"]} == SECRET_VARIABLES
    assert all(re.fullmatch(r"replace-me[\w-]*", value) for value in template.values()), template
    # The signing key starts random: a known placeholder would let anyone forge webhooks.
    assert generated["GenerateStringKey"] == "NANGO_WEBHOOK_SIGNING_KEY"
    assert generated.get("PasswordLength", 32) >= 32


def check_webhook_url(t):
    """A public function URL (the signature is the gate), with reserved concurrency from a parameter."""
    props = function(t, RECEIVER)
    assert props.get("FunctionUrlConfig", {}).get("AuthType") == "NONE"
    concurrency = [b for b in branches(props.get("ReservedConcurrentExecutions")) if b != {"Ref": "AWS::NoValue"}]
    assert concurrency == [{"Ref": "WebhookReservedConcurrency"}], props.get("ReservedConcurrentExecutions")
    parameter = t["Parameters"]["WebhookReservedConcurrency"]
    assert parameter["Type"] == "Number" and int(parameter["Default"]) >= 1
    for name in API_FUNCTIONS:
        assert "FunctionUrlConfig" not in function(t, name), f"{name} must be reached only through the API"


def check_timeouts(t):
    """The receiver answers well within Nango's 20 s, the API functions within API Gateway's 29 s, and
    the functions that call Nango outlast its 9 s budget."""
    receiver = function(t, RECEIVER)["Timeout"]
    assert receiver <= NANGO_WEBHOOK_TIMEOUT / 2, f"receiver timeout {receiver}"
    for name in API_FUNCTIONS:
        timeout = function(t, name)["Timeout"]
        assert timeout < API_GATEWAY_TIMEOUT, f"{name}: {timeout}"
        if name in NANGO_CALLERS:
            assert timeout > NANGO_BUDGET, f"{name}: {timeout} leaves no room for Nango's budget"
    for name in FUNCTIONS:
        assert function(t, name)["MemorySize"] >= 256, f"{name}: too little CPU for a TLS handshake"


def check_schedule(t):
    """Reconciliation runs on one EventBridge Scheduler schedule, every ReconcileIntervalMinutes
    (default 15), never retried, never overlapping the previous run, and ends its calls to Nango
    before its timeout."""
    props = function(t, RECONCILER)
    events = props.get("Events", {})
    assert len(events) == 1, events
    schedule = next(iter(events.values()))
    assert schedule["Type"] == "ScheduleV2"
    settings = schedule["Properties"]
    assert settings.get("ScheduleExpression") == {"Fn::Sub": "rate(${ReconcileIntervalMinutes} minutes)"}
    assert settings.get("State", "ENABLED") == "ENABLED"
    assert settings.get("RetryPolicy", {}).get("MaximumRetryAttempts") == 0, "a retried run competes with the next"
    # A scheduled invocation is asynchronous: Lambda itself would retry a failed run twice.
    assert props.get("EventInvokeConfig", {}).get("MaximumRetryAttempts") == 0, "Lambda's own retries too"
    parameter = t["Parameters"]["ReconcileIntervalMinutes"]
    assert parameter["Type"] == "Number"
    assert int(parameter["Default"]) == RECONCILE_DEFAULT_MINUTES
    # "rate(1 minutes)" is not an expression; and runs must not overlap.
    assert int(parameter["MinValue"]) * 60 >= props["Timeout"] and int(parameter["MinValue"]) > 1
    assert props["Timeout"] <= 900
    assert props["Timeout"] >= RECONCILE_NANGO_BUDGET + RECONCILE_FINISH_MARGIN, "no time for one call to Nango"
    assert "FunctionUrlConfig" not in props


def check_nango_host(t):
    """NangoHost accepts exactly the deployable hosts the code accepts (the shared list of cases)."""
    parameter = t["Parameters"]["NangoHost"]
    pattern = re.compile(parameter["AllowedPattern"])
    assert pattern.fullmatch(parameter["Default"])
    for host in NANGO_HOST_CASES["deployable"]:
        assert pattern.fullmatch(host), f"refuses {host!r}, which the code accepts"
    for host in NANGO_HOST_CASES["local_only"] + NANGO_HOST_CASES["refused"]:
        assert not pattern.fullmatch(host), f"accepts {host!r}, on which every cold start would fail"


def check_nango_environment(t):
    """Only the receiver applies auth webhooks, so only it is told which environment's to apply;
    empty by default (any environment)."""
    assert t["Parameters"]["NangoEnvironment"]["Default"] == ""
    given_only_to(t, "NANGO_ENVIRONMENT", "NangoEnvironment", {RECEIVER})


def check_organization_access(t):
    """The policy is a parameter of its three values, given to every function that applies it."""
    parameter = t["Parameters"]["OrganizationAccess"]
    assert parameter["AllowedValues"] == ORGANIZATION_ACCESS_VALUES
    assert parameter["Default"] == "shared"
    given_only_to(t, "ORGANIZATION_ACCESS", "OrganizationAccess", POLICY_READERS)


def check_throttling(t):
    """Every route is throttled (a flood guard); the one Nango budget stays below Nango's own rate
    limit by default, and a browser may read Retry-After."""
    props = t["Resources"]["Api"]["Properties"]
    default = props.get("DefaultRouteSettings", {})
    assert default.get("ThrottlingRateLimit") == {"Ref": "ApiRateLimit"}
    assert default.get("ThrottlingBurstLimit") == {"Ref": "ApiBurstLimit"}
    routes = props.get("RouteSettings", {})
    nango_routes = {f"{m} {p}" for (m, p), name in ROUTES.items() if name in NANGO_CALLERS}
    for route in nango_routes:
        settings = routes.get(route, {})
        assert settings.get("ThrottlingRateLimit") == {"Ref": "SessionRateLimit"}, route
        assert settings.get("ThrottlingBurstLimit") == {"Ref": "SessionBurstLimit"}, route
    budget = float(t["Parameters"]["NangoRequestsPerMinute"]["Default"])
    assert budget / 60 < NANGO_REQUESTS_PER_SECOND, "the default budget would exhaust Nango's limit"
    for cors in branches(props["CorsConfiguration"]):
        if cors != {"Ref": "AWS::NoValue"}:
            assert "retry-after" in [h.lower() for h in cors.get("ExposeHeaders", [])]


# shared/src/config.rs, RateLimitConfig: each variable and the parameter it comes from.
CALLER_SHARES = {"USER_REQUESTS_PER_MINUTE": "UserRequestsPerMinute", "USER_BURST": "UserBurst",
                 "ORGANIZATION_REQUESTS_PER_MINUTE": "OrganizationRequestsPerMinute",
                 "ORGANIZATION_BURST": "OrganizationBurst"}
NANGO_BUDGET_VARIABLES = {"NANGO_REQUESTS_PER_MINUTE": "NangoRequestsPerMinute", "NANGO_BURST": "NangoBurst",
                          "NANGO_USER_RESERVE": "NangoUserReserve"}


def check_rate_limits(t):
    """The token buckets' table matches infra/dynamodb/rate-limit-table.json, its items expire, and
    it and its rates reach exactly the functions that take from it: callers' shares the routes that
    call Nango for a caller, the Nango budget every function that calls Nango."""
    definition = json.loads(RATE_LIMIT_TABLE_DEFINITION.read_text())
    table = t["Resources"][RATE_LIMIT_TABLE]["Properties"]
    assert table["KeySchema"] == definition["KeySchema"]
    assert table["AttributeDefinitions"] == definition["AttributeDefinitions"]
    assert table["BillingMode"] == definition["BillingMode"] == "PAY_PER_REQUEST"
    assert "StreamSpecification" not in table, "nothing reads a stream of buckets"
    ttl = json.loads(TABLE_TTL.read_text())["TimeToLiveSpecification"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": ttl["AttributeName"], "Enabled": True}
    given_only_to(t, "RATE_LIMIT_TABLE", RATE_LIMIT_TABLE, NEEDS_BUCKETS)
    for variable, parameter in CALLER_SHARES.items():
        given_only_to(t, variable, parameter, NANGO_CALLERS)
    for variable, parameter in NANGO_BUDGET_VARIABLES.items():
        given_only_to(t, variable, parameter, NEEDS_BUCKETS)
    assert NEEDS_BUCKETS == NANGO_CALLERS | {RECEIVER, RECONCILER}


def check_outputs(t):
    outputs = {k: normalized(v["Value"]) for k, v in t["Outputs"].items()}
    assert outputs == {
        "ApiUrl": {"Fn::GetAtt": ["Api", "ApiEndpoint"]},
        "WebhookUrl": {"Fn::GetAtt": [f"{RECEIVER}Url", "FunctionUrl"]},
        "ConnectionsTableName": {"Ref": TABLE},
        "NangoSecretArn": SECRET_ARN,
        "EventBusName": BUS_NAME,
        "EventBusArn": BUS_ARN,
        "EventsDeadLetterQueueUrl": {"Ref": DLQ},
        "ReconcileFunctionName": {"Ref": RECONCILER},
    }


def check_event_bus(t):
    """A bus of the stack's own unless a parameter names one; both publishers are told the same bus."""
    buses = resources(t, "AWS::Events::EventBus")
    assert set(buses) == {"EventBus"}
    assert buses["EventBus"].get("Condition") == "CreateEventBus"
    assert t["Conditions"]["CreateEventBus"] == {"Fn::Equals": [{"Ref": "ExistingEventBusName"}, ""]}
    assert t["Parameters"]["ExistingEventBusName"].get("Default") == ""
    assert NEEDS_BUS == {RECEIVER, PUBLISHER}
    for name in FUNCTIONS:
        env = environment(t, name)
        if name in NEEDS_BUS:
            assert normalized(env.get("EVENT_BUS_NAME")) == BUS_NAME, f"{name}: EVENT_BUS_NAME"
        else:
            assert "EVENT_BUS_NAME" not in env, name


def check_stream_consumer(t):
    """publish-events reads the table's stream with partial batch responses, bisects a failing batch,
    retries a bounded number of times within the stream's 24 h, one batch per shard at a time (so
    a connection's events stay in order), then sends the batch to a dead-letter queue."""
    mappings = resources(t, "AWS::Lambda::EventSourceMapping")
    assert len(mappings) == 1, mappings
    props = normalized(next(iter(mappings.values()))["Properties"])
    assert props.get("FunctionName") == {"Ref": PUBLISHER}
    assert props.get("EventSourceArn") == STREAM_ARN
    assert props.get("FunctionResponseTypes") == ["ReportBatchItemFailures"]
    assert props.get("BisectBatchOnFunctionError") is True
    assert 0 < props.get("MaximumRetryAttempts", -1) <= 100, "retries must be bounded (-1 is forever)"
    assert 60 <= props.get("MaximumRecordAgeInSeconds", -1) <= 86400, "within the stream's 24 h retention"
    assert props.get("ParallelizationFactor", 1) == 1, "more than one batch per shard breaks ordering"
    assert props.get("StartingPosition") == "TRIM_HORIZON", "LATEST would skip changes made at deploy time"
    assert props.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination") == DLQ_ARN
    queue = t["Resources"][DLQ]
    assert queue["Type"] == "AWS::SQS::Queue"
    assert queue["Properties"].get("MessageRetentionPeriod", 345600) >= 7 * 86400, "a week to notice and replay"
    assert "Events" not in function(t, PUBLISHER), "SAM's stream event adds a policy for every stream"


# ── Metrics, alarms and the dashboard against the code's catalogue (infra/metrics.json) ─────────

METRICS_CATALOGUE = json.loads((ROOT / "infra" / "metrics.json").read_text())
CATALOGUE = {m["name"]: m for m in METRICS_CATALOGUE["metrics"]}
RUNBOOK = ROOT / "docs" / "operating.md"
# The namespace every function writes to, and every alarm and widget of ours reads.
NAMESPACE = {"Fn::If": ["MetricsNamespaceIsStackName", {"Ref": "AWS::StackName"}, {"Ref": "MetricsNamespace"}]}
# The AWS metrics the alarms and the dashboard may use, and what each dimension must name.
AWS_METRICS = {
    "AWS/Lambda": {"Errors", "Throttles", "IteratorAge", "Invocations", "Duration", "ConcurrentExecutions"},
    "AWS/SQS": {"ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"},
    "AWS/ApiGateway": {"Count", "4xx", "5xx", "Latency", "IntegrationLatency"},
}
AWS_DIMENSIONS = {
    "AWS/Lambda": [[("FunctionName", {"Ref": name})] for name in FUNCTIONS],
    "AWS/SQS": [[("QueueName", {"Fn::GetAtt": [DLQ, "QueueName"]})]],
    # SAM gives an HTTP API without a StageName the $default stage.
    "AWS/ApiGateway": [[("ApiId", {"Ref": "Api"}), ("Stage", "$default")]],
}
ALARM = "AWS::CloudWatch::Alarm"
ALARM_ACTIONS = [
    {"Fn::If": ["HasAlarmTopicArn", {"Ref": "AlarmTopicArn"}, {"Ref": "AWS::NoValue"}]},
    {"Fn::If": ["HasAlarmEmail", {"Ref": "AlarmTopic"}, {"Ref": "AWS::NoValue"}]},
]
MISSING_DATA = {"breaching", "notBreaching", "ignore", "missing"}


def placeholder(text):
    """`${X}` → {"Ref": X}, `${X.Attr}` → {"Fn::GetAtt": [X, Attr]}: what a !Sub variable stands for."""
    name = text[2:-1]
    return {"Fn::GetAtt": name.split(".", 1)} if "." in name else {"Ref": name}


def dashboard_body(t):
    """The dashboard's JSON with every `${...}` that makes a whole string turned back into the
    expression it stands for (the Namespace variable into its own)."""
    dashboards = resources(t, "AWS::CloudWatch::Dashboard")
    assert len(dashboards) == 1, dashboards
    body = next(iter(dashboards.values()))["Properties"]["DashboardBody"]
    assert set(body) == {"Fn::Sub"}, "the body is a !Sub of JSON"
    text, variables = body["Fn::Sub"] if isinstance(body["Fn::Sub"], list) else (body["Fn::Sub"], {})

    def back(value):
        if isinstance(value, dict):
            return {k: back(v) for k, v in value.items()}
        if isinstance(value, list):
            return [back(v) for v in value]
        if isinstance(value, str) and re.fullmatch(r"\$\{[^}]+\}", value):
            name = value[2:-1]
            return variables[name] if name in variables else placeholder(value)
        return value

    return back(json.loads(text)), variables


def metric_uses(t):
    """Every metric an alarm or a dashboard widget reads: (where, namespace, name, [(dimension, value)])."""
    uses = []
    for name, alarm in resources(t, ALARM).items():
        props = alarm["Properties"]
        if "MetricName" in props:
            uses.append((name, props.get("Namespace"), props["MetricName"],
                         [(d["Name"], d["Value"]) for d in props.get("Dimensions", [])]))
        for query in props.get("Metrics", []):
            if "MetricStat" in query:
                metric = query["MetricStat"]["Metric"]
                uses.append((f"{name}.{query['Id']}", metric.get("Namespace"), metric["MetricName"],
                             [(d["Name"], d["Value"]) for d in metric.get("Dimensions", [])]))
            else:
                assert "SEARCH" not in query["Expression"], f"{name}: an alarm cannot use SEARCH"
    body, _ = dashboard_body(t)
    for widget in body["widgets"]:
        for line in widget.get("properties", {}).get("metrics", []):
            where = f"Dashboard: {widget['properties'].get('title')}"
            if isinstance(line[0], dict) and "expression" in line[0]:
                uses.extend((where, *search) for search in searched(line[0]["expression"]))
                continue
            options = isinstance(line[-1], dict) and not {"Ref", "Fn::GetAtt", "Fn::If"} & set(line[-1])
            fields = line[:-1] if options else line
            assert "..." not in fields and "." not in fields, f"{where}: spell every metric out: {line}"
            assert len(fields) % 2 == 0, f"{where}: {line}"
            uses.append((where, fields[0], fields[1], list(zip(fields[2::2], fields[3::2]))))
    return uses


def searched(expression):
    """A SEARCH expression's metric: its schema's namespace and dimension names (values: any)."""
    found = []
    for schema, name in re.findall(r'SEARCH\(\s*\'\{(.+?)\}\s+MetricName="([^"]+)"', expression):
        namespace, *dimensions = [part.strip().strip('"') for part in schema.split(",")]
        namespace = NAMESPACE if namespace == "${Namespace}" else namespace
        found.append((namespace, name, [(d, None) for d in dimensions]))
    assert found or "SEARCH" not in expression, f"a SEARCH these tests cannot read: {expression}"
    return found


def check_metrics_namespace(t):
    """METRICS_NAMESPACE reaches every function: MetricsNamespace, or the stack's name when empty."""
    assert t["Parameters"]["MetricsNamespace"].get("Default") == ""
    assert t["Conditions"]["MetricsNamespaceIsStackName"] == {"Fn::Equals": [{"Ref": "MetricsNamespace"}, ""]}
    variable = METRICS_CATALOGUE["namespaceVariable"]
    for name in FUNCTIONS:
        assert environment(t, name).get(variable) == NAMESPACE, f"{name}: {variable}"


def check_metrics_are_the_code_s(t):
    """Every metric read in our namespace is one the code emits, with `Function` and exactly its own
    dimensions, in the catalogue's order, and only values the code gives them; AWS's metrics are
    read for this stack's own resources."""
    function_dimension = METRICS_CATALOGUE["functionDimension"]
    uses = metric_uses(t)
    assert uses
    for where, namespace, name, dimensions in uses:
        if isinstance(namespace, str) and namespace.startswith("AWS/"):
            assert name in AWS_METRICS.get(namespace, ()), f"{where}: {namespace} {name}"
            assert [(d, normalized(v)) for d, v in dimensions] in AWS_DIMENSIONS[namespace], f"{where}: {dimensions}"
            continue
        assert namespace == NAMESPACE, f"{where}: namespace {namespace!r} is not the stack's"
        assert name in CATALOGUE, f"{where}: {name} is not a metric the code emits"
        metric = CATALOGUE[name]
        expected = [function_dimension] + [d["name"] for d in metric["dimensions"]]
        names = [d for d, _ in dimensions]
        if all(v is None for _, v in dimensions):  # a SEARCH schema: a set of names
            assert sorted(names) == sorted(expected), f"{where}: {name} has dimensions {expected}, not {names}"
            continue
        assert names == expected, f"{where}: {name} has dimensions {expected}, not {names}"
        values = dict(dimensions)
        assert values[function_dimension] in metric["functions"], \
            f"{where}: {values[function_dimension]} does not emit {name}"
        for dimension in metric["dimensions"]:
            assert values[dimension["name"]] in dimension["values"], \
                f"{where}: {name} {dimension['name']}={values[dimension['name']]!r} is never emitted"


def check_function_alarms(t):
    """Each function has an alarm on its Lambda Errors and one on its Throttles."""
    for name in FUNCTIONS:
        for kind in ("Errors", "Throttles"):
            watching = [a for a, alarm in resources(t, ALARM).items()
                        if alarm["Properties"].get("Namespace") == "AWS/Lambda"
                        and alarm["Properties"].get("MetricName") == kind
                        and [normalized(d["Value"]) for d in alarm["Properties"].get("Dimensions", [])]
                        == [{"Ref": name}]]
            assert len(watching) == 1, f"{name}: {len(watching)} alarms on {kind}"


def check_alarm_missing_data(t):
    """Every alarm says what missing data means; for the reconciliation's, silence is the failure."""
    alarms = resources(t, ALARM)
    assert alarms
    for name, alarm in alarms.items():
        assert alarm["Properties"].get("TreatMissingData") in MISSING_DATA, f"{name}: TreatMissingData"
    assert alarms["ReconcileNotCompletingAlarm"]["Properties"]["TreatMissingData"] == "breaching"


def evaluate(t, value, parameters):
    """An expression's value for these parameter values (Ref, Fn::If, Fn::Equals, Fn::Not);
    resources' Refs stay as they are; AWS::NoValue is None."""
    def condition(name):
        return evaluate(t, t["Conditions"][name], parameters)
    if isinstance(value, dict) and len(value) == 1:
        (function_name, argument), = value.items()
        if function_name == "Ref":
            if argument == "AWS::NoValue":
                return None
            if argument in t["Parameters"]:
                return parameters.get(argument, t["Parameters"][argument].get("Default"))
            return value
        if function_name == "Fn::If":
            name, yes, no = argument
            return evaluate(t, yes if condition(name) else no, parameters)
        if function_name == "Fn::Equals":
            left, right = (evaluate(t, v, parameters) for v in argument)
            return left == right
        if function_name == "Fn::Not":
            return not evaluate(t, argument[0], parameters)
        if function_name == "Condition":
            return condition(argument)
    return value


TOPIC = "arn:aws:sns:us-east-1:123456789012:oncall"


def check_alarm_actions(t):
    """Every alarm notifies AlarmTopicArn and/or the topic made for AlarmEmail, when it fires and
    when it clears; with neither, no alarm has an action."""
    for parameter in ("AlarmTopicArn", "AlarmEmail"):
        assert t["Parameters"][parameter].get("Default") == "", f"{parameter} is optional"
    topics = resources(t, "AWS::SNS::Topic")
    assert set(topics) == {"AlarmTopic"}
    topic = topics["AlarmTopic"]
    assert "Condition" in topic, "the topic is made only for AlarmEmail"
    assert evaluate(t, {"Condition": topic["Condition"]}, {"AlarmEmail": "ops@example.com"}) is True
    assert evaluate(t, {"Condition": topic["Condition"]}, {}) is False
    assert topic["Properties"]["Subscription"] == [{"Protocol": "email", "Endpoint": {"Ref": "AlarmEmail"}}]
    cases = [
        ({}, []),
        ({"AlarmTopicArn": TOPIC}, [TOPIC]),
        ({"AlarmEmail": "ops@example.com"}, [{"Ref": "AlarmTopic"}]),
        ({"AlarmTopicArn": TOPIC, "AlarmEmail": "ops@example.com"}, [TOPIC, {"Ref": "AlarmTopic"}]),
    ]
    for name, alarm in resources(t, ALARM).items():
        props = alarm["Properties"]
        assert "InsufficientDataActions" not in props, name
        assert props.get("ActionsEnabled", True) is True, name
        for key in ("AlarmActions", "OKActions"):
            for parameters, expected in cases:
                actions = [a for a in (evaluate(t, v, parameters) for v in props.get(key, [])) if a is not None]
                assert actions == expected, f"{name}.{key} with {parameters or 'neither'}: {actions}"


def runbook_entries(text):
    """The names the runbook gives an entry: a heading, or a table row's first cell."""
    names = set()
    for line in text.splitlines():
        heading = re.match(r"#+\s+`?([A-Za-z0-9]+)`?\s*$", line)
        row = re.match(r"\|\s*`?([A-Za-z0-9]+)`?\s*\|", line)
        if heading or row:
            names.add((heading or row).group(1))
    return names


def check_alarms_in_runbook(t):
    """Every alarm has an entry in docs/operating.md under its logical id, and every threshold
    parameter an alarm reads has a default and a description."""
    entries = runbook_entries(RUNBOOK.read_text())
    for name, alarm in resources(t, ALARM).items():
        assert name in entries, f"{name} has no entry in docs/operating.md"
        for key in ("Threshold", "EvaluationPeriods"):
            value = alarm["Properties"].get(key)
            if isinstance(value, dict):
                parameter = t["Parameters"][value["Ref"]]
                assert "Default" in parameter and parameter.get("Description"), f"{name}: {value['Ref']}"


def check_reconcile_alarm_window(t):
    """The reconciliation alarm's window covers more than one schedule interval by default, and
    stays within the day CloudWatch can evaluate."""
    props = t["Resources"]["ReconcileNotCompletingAlarm"]["Properties"]
    window = t["Parameters"][props["EvaluationPeriods"]["Ref"]]
    interval = t["Parameters"]["ReconcileIntervalMinutes"]
    assert props["Period"] == 60
    assert int(window["Default"]) >= 2 * int(interval["Default"]), "two runs at least"
    assert int(window["MaxValue"]) * props["Period"] <= 86400
    assert props["ComparisonOperator"] == "LessThanThreshold" and props["Threshold"] == 1


def check_dashboard_shows_every_alarm(t):
    """The dashboard's alarm widget lists every alarm, and only the stack's."""
    body, _ = dashboard_body(t)
    listed = [normalized(a) for w in body["widgets"] if w["type"] == "alarm" for a in w["properties"]["alarms"]]
    assert sorted(map(key, listed)) == sorted(key({"Fn::GetAtt": [a, "Arn"]}) for a in resources(t, ALARM))


# ── The tests: the real template passes every check ──────────────────────────────────────────────

@pytest.fixture(scope="module")
def template():
    return load_template(TEMPLATE_PATH)


def test_functions_are_arm64_cargo_lambda_zips(template):
    check_functions(template)


def test_logs_are_json_with_retention(template):
    check_logging(template)


def test_each_route_goes_to_its_function(template):
    check_routes(template)


def test_every_route_needs_a_jwt_and_cors_is_limited(template):
    check_authorizer(template)


def test_policy_allows_exactly_what_the_code_calls(template, function_name):
    check_least_privilege(template, function_name)


def test_no_other_iam(template):
    check_no_stray_iam(template)


def test_create_session_has_no_dynamodb_access(template):
    check_create_session_has_no_dynamodb_access(template)


def test_list_connections_has_no_secret_access(template):
    check_list_connections_has_no_secret_access(template)


def test_table_matches_its_json_definition(template):
    check_table_matches_definition(template)


def test_tombstones_expire(template):
    check_tombstones_expire(template)


def test_reconnect_is_held_to_the_allowed_integrations(template):
    check_allowed_integrations(template)


def test_table_is_protected(template):
    check_table_protection(template)


def test_no_secret_parameters(template):
    check_no_secret_parameters(template)


def test_no_secret_environment_variables(template):
    check_no_secret_environment(template)


def test_no_secret_values_in_the_template(template):
    check_no_secret_literal(template)


def test_webhook_url_is_public_and_capped(template):
    check_webhook_url(template)


def test_timeouts_within_bounds(template):
    check_timeouts(template)


def test_outputs(template):
    check_outputs(template)


def test_reconciliation_runs_on_a_schedule(template):
    check_schedule(template)


def test_nango_host_accepts_what_the_code_accepts(template):
    check_nango_host(template)


def test_nango_environment_reaches_the_receiver_only(template):
    check_nango_environment(template)


def test_organization_access_reaches_the_functions_that_apply_it(template):
    check_organization_access(template)


def test_routes_are_throttled(template):
    check_throttling(template)


def test_rate_limits(template):
    check_rate_limits(template)


def test_event_bus(template):
    check_event_bus(template)


def test_stream_consumer_retries_bisects_and_dead_letters(template):
    check_stream_consumer(template)


def test_metrics_namespace_reaches_every_function(template):
    check_metrics_namespace(template)


def test_alarm_and_dashboard_metrics_are_the_code_s(template):
    check_metrics_are_the_code_s(template)


def test_every_function_has_error_and_throttle_alarms(template):
    check_function_alarms(template)


def test_every_alarm_says_what_missing_data_means(template):
    check_alarm_missing_data(template)


def test_alarm_actions_follow_the_notification_parameters(template):
    check_alarm_actions(template)


def test_every_alarm_is_in_the_runbook(template):
    check_alarms_in_runbook(template)


def test_reconciliation_alarm_window(template):
    check_reconcile_alarm_window(template)


def test_dashboard_shows_every_alarm(template):
    check_dashboard_shows_every_alarm(template)


def catalogue_rows(text):
    """The metric catalogue table of the runbook: its first column's names."""
    return {m.group(1) for m in re.finditer(r"^\|\s*`([A-Za-z]+)`\s*\|\s*(Count|Milliseconds)\s*\|", text, re.M)}


def test_runbook_lists_every_metric_of_the_catalogue():
    rows = catalogue_rows(RUNBOOK.read_text())
    assert rows == set(CATALOGUE), f"missing: {set(CATALOGUE) - rows}, unknown: {rows - set(CATALOGUE)}"
    # And the check can fail: a row less is noticed.
    assert catalogue_rows(RUNBOOK.read_text().replace("| `ReconcileDrift` |", "| ReconcileDrift |")) != set(CATALOGUE)


# ── Every check fails on a template that breaks its promise ──────────────────────────────────────

def props(t, name):
    return t["Resources"][name]["Properties"]


def statements(t, name):
    return props(t, name)["Policies"][0]["Statement"]


def add_statement(name, action, resource):
    def mutate(t):
        statements(t, name).append({"Effect": "Allow", "Action": action, "Resource": resource})
    return mutate


def set_in(path, value):
    def mutate(t):
        node = t
        for part in path[:-1]:
            node = node[part] if isinstance(node, list) else node.setdefault(part, {})
        node[path[-1]] = value
    return mutate


def delete_in(path):
    def mutate(t):
        node = t
        for part in path[:-1]:
            node = node[part]
        del node[path[-1]]
    return mutate


def both(*mutations):
    def mutate(t):
        for m in mutations:
            m(t)
    return mutate


def sub_dashboard(t, old, new):
    """Replaces text in the dashboard's JSON (the !Sub string)."""
    body = t["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    assert old in body[0], old
    body[0] = body[0].replace(old, new)


R = "Resources"
MUTATIONS = {
    "x86_64": (check_functions, set_in([R, "ListConnectionsFunction", "Properties", "Architectures"], ["x86_64"])),
    "wrong crate": (check_functions, set_in([R, RECEIVER, "Properties", "CodeUri"], "functions/create-session")),
    "no cargo-lambda": (check_functions, delete_in([R, RECEIVER, "Metadata"])),
    "old runtime": (check_functions, set_in(["Globals", "Function", "Runtime"], "provided.al2")),
    "text logs": (check_logging, set_in(["Globals", "Function", "LoggingConfig", "LogFormat"], "Text")),
    "no retention": (check_logging, delete_in([R, "CreateSessionLogs", "Properties", "RetentionInDays"])),
    "swapped routes": (check_routes, both(
        set_in([R, "CreateSessionFunction", "Properties", "Events", "CreateSession", "Properties", "Path"],
               "/connections"),
        set_in([R, "CreateSessionFunction", "Properties", "Events", "CreateSession", "Properties", "Method"], "GET"),
        set_in([R, "ListConnectionsFunction", "Properties", "Events", "ListConnections", "Properties", "Path"],
               "/sessions"),
        set_in([R, "ListConnectionsFunction", "Properties", "Events", "ListConnections", "Properties", "Method"],
               "POST"))),
    "receiver on the API": (check_routes, set_in([R, RECEIVER, "Properties", "Events"], {"Hook": {
        "Type": "HttpApi", "Properties": {"ApiId": {"Ref": "Api"}, "Method": "POST", "Path": "/webhook"}}})),
    "route without JWT": (check_authorizer, set_in(
        [R, "ListConnectionsFunction", "Properties", "Events", "ListConnections", "Properties", "Auth"],
        {"Authorizer": "NONE"})),
    "fixed issuer": (check_authorizer, set_in(
        [R, "Api", "Properties", "Auth", "Authorizers", "UserJwt", "JwtConfiguration", "issuer"],
        "https://example.com/")),
    "CORS for all": (check_authorizer, set_in([R, "Api", "Properties", "CorsConfiguration"], {"AllowOrigins": ["*"]})),
    "create scans": (functools.partial(check_least_privilege, name="CreateSessionFunction"),
                     add_statement("CreateSessionFunction", "dynamodb:Scan", TABLE_ARN)),
    "delete really deletes": (functools.partial(check_least_privilege, name="DeleteConnectionFunction"),
                              add_statement("DeleteConnectionFunction", "dynamodb:DeleteItem", TABLE_ARN)),
    "receiver deletes": (functools.partial(check_least_privilege, name=RECEIVER),
                         add_statement(RECEIVER, "dynamodb:DeleteItem", TABLE_ARN)),
    "dynamodb:*": (functools.partial(check_least_privilege, name="ReconnectSessionFunction"),
                   set_in([R, "ReconnectSessionFunction", "Properties", "Policies", 0, "Statement", 0, "Action"],
                          "dynamodb:*")),
    "any index": (functools.partial(check_least_privilege, name="ListConnectionsFunction"),
                  set_in([R, "ListConnectionsFunction", "Properties", "Policies", 0, "Statement", 0, "Resource"],
                         [{"Fn::Sub": "${ConnectionsTable.Arn}/index/*"}])),
    "query the table": (functools.partial(check_least_privilege, name="ListConnectionsFunction"),
                        add_statement("ListConnectionsFunction", "dynamodb:Query", TABLE_ARN)),
    "any secret": (functools.partial(check_least_privilege, name=RECEIVER),
                   set_in([R, RECEIVER, "Properties", "Policies", 0, "Statement", 1, "Resource"], "*")),
    "missing grant": (functools.partial(check_least_privilege, name=RECEIVER),
                      set_in([R, RECEIVER, "Properties", "Policies", 0, "Statement", 0, "Action"],
                             ["dynamodb:GetItem"])),
    "managed policy": (functools.partial(check_least_privilege, name="CreateSessionFunction"),
                       lambda t: props(t, "CreateSessionFunction")["Policies"].append("AmazonDynamoDBFullAccess")),
    "SAM policy template": (functools.partial(check_least_privilege, name="CreateSessionFunction"),
                            lambda t: props(t, "CreateSessionFunction")["Policies"].append(
                                {"DynamoDBCrudPolicy": {"TableName": {"Ref": TABLE}}})),
    "extra role": (check_no_stray_iam, set_in([R, "Extra"], {"Type": "AWS::IAM::Policy", "Properties": {}})),
    "create reads table": (check_create_session_has_no_dynamodb_access,
                           add_statement("CreateSessionFunction", "dynamodb:GetItem", TABLE_ARN)),
    "list reads secret": (check_list_connections_has_no_secret_access,
                          add_statement("ListConnectionsFunction", GET_SECRET, SECRET_ARN)),
    "list has secret ARN": (check_list_connections_has_no_secret_access,
                            set_in([R, "ListConnectionsFunction", "Properties", "Environment", "Variables",
                                    "NANGO_SECRET_ARN"], SECRET_ARN)),
    "index key differs": (check_table_matches_definition, set_in(
        [R, TABLE, "Properties", "GlobalSecondaryIndexes", 0, "KeySchema", 1, "AttributeName"], "updatedAt")),
    "keys-only projection": (check_table_matches_definition, set_in(
        [R, TABLE, "Properties", "GlobalSecondaryIndexes", 1, "Projection"], {"ProjectionType": "KEYS_ONLY"})),
    "numeric key": (check_table_matches_definition, set_in(
        [R, TABLE, "Properties", "AttributeDefinitions", 0, "AttributeType"], "N")),
    "provisioned": (check_table_matches_definition, set_in([R, TABLE, "Properties", "BillingMode"], "PROVISIONED")),
    "no TTL": (check_tombstones_expire, delete_in([R, TABLE, "Properties", "TimeToLiveSpecification"])),
    "TTL on another attribute": (check_tombstones_expire, set_in(
        [R, TABLE, "Properties", "TimeToLiveSpecification", "AttributeName"], "ttl")),
    "TTL disabled": (check_tombstones_expire, set_in(
        [R, TABLE, "Properties", "TimeToLiveSpecification", "Enabled"], False)),
    "retention fixed at a year": (check_tombstones_expire, set_in(
        ["Parameters", "TombstoneRetentionDays", "Default"], 365)),
    "retention of 0 days": (check_tombstones_expire, set_in(["Parameters", "TombstoneRetentionDays", "MinValue"], 0)),
    "receiver without retention": (check_tombstones_expire, delete_in(
        [R, RECEIVER, "Properties", "Environment", "Variables", "TOMBSTONE_RETENTION_DAYS"])),
    "reader with retention": (check_tombstones_expire, set_in(
        [R, "ListConnectionsFunction", "Properties", "Environment", "Variables", "TOMBSTONE_RETENTION_DAYS"],
        {"Ref": "TombstoneRetentionDays"})),
    "reconnect with any integration": (check_allowed_integrations, delete_in(
        [R, "ReconnectSessionFunction", "Properties", "Environment", "Variables", "NANGO_ALLOWED_INTEGRATIONS"])),
    "no PITR": (check_table_protection, delete_in([R, TABLE, "Properties", "PointInTimeRecoverySpecification"])),
    "fixed deletion policy": (check_table_protection, set_in([R, TABLE, "DeletionPolicy"], "Delete")),
    "secret parameter": (check_no_secret_parameters, set_in(["Parameters", "NangoSecretKey"], {"Type": "String"})),
    "NoEcho parameter": (check_no_secret_parameters, set_in(["Parameters", "Extra"], {"Type": "String", "NoEcho": True})),
    "plain secret variable": (check_no_secret_environment, set_in(
        [R, RECEIVER, "Properties", "Environment", "Variables", "NANGO_WEBHOOK_SIGNING_KEY"], {"Ref": "Extra"})),
    "global secret variable": (check_no_secret_environment, set_in(
        ["Globals", "Function", "Environment", "Variables", "NANGO_SECRET_KEY"], {"Ref": "Extra"})),
    "no secret ARN": (check_no_secret_environment, delete_in(
        [R, "CreateSessionFunction", "Properties", "Environment", "Variables", "NANGO_SECRET_ARN"])),
    "secret value": (check_no_secret_literal, set_in([R, "NangoSecret", "Properties", "SecretString"],
                                                     '{"NANGO_SECRET_KEY":"x"}')),
    "real-looking key": (check_no_secret_literal, set_in(["Parameters", "NangoHost", "Default"],
                                                         "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9")),
    "random key in a default": (check_no_secret_literal, set_in(["Parameters", "NangoAllowedIntegrations", "Default"],
                                                                "Zx81kQ2pL0vN7wR4tY6uI9oP3aS5dF")),
    "hex key in a variable": (check_no_secret_literal, set_in(
        [R, RECEIVER, "Properties", "Environment", "Variables", "EXTRA"], "9f" * 24)),
    "real key in the template": (check_no_secret_literal, set_in(
        [R, "NangoSecret", "Properties", "GenerateSecretString", "SecretStringTemplate"],
        '{"NANGO_SECRET_KEY":"my-actual-key"}')),
    "known signing key": (check_no_secret_literal, set_in(
        [R, "NangoSecret", "Properties", "GenerateSecretString", "GenerateStringKey"], "NANGO_SECRET_KEY")),
    "authenticated URL": (check_webhook_url, set_in([R, RECEIVER, "Properties", "FunctionUrlConfig", "AuthType"],
                                                    "AWS_IAM")),
    "fixed concurrency": (check_webhook_url, set_in([R, RECEIVER, "Properties", "ReservedConcurrentExecutions"], 10)),
    "no concurrency cap": (check_webhook_url, delete_in([R, RECEIVER, "Properties", "ReservedConcurrentExecutions"])),
    "API on a function URL": (check_webhook_url, set_in([R, "ListConnectionsFunction", "Properties",
                                                         "FunctionUrlConfig"], {"AuthType": "NONE"})),
    "slow receiver": (check_timeouts, set_in([R, RECEIVER, "Properties", "Timeout"], 19)),
    "slow API": (check_timeouts, set_in([R, "ListConnectionsFunction", "Properties", "Timeout"], 29)),
    "short Nango call": (check_timeouts, set_in([R, "ReconnectSessionFunction", "Properties", "Timeout"], 9)),
    "128 MB": (check_timeouts, set_in([R, "CreateSessionFunction", "Properties", "MemorySize"], 128)),
    "missing output": (check_outputs, delete_in(["Outputs", "WebhookUrl"])),
    "reconciler on the API": (check_routes, set_in([R, RECONCILER, "Properties", "Events", "Reconcile"], {
        "Type": "HttpApi", "Properties": {"ApiId": {"Ref": "Api"}, "Method": "POST", "Path": "/reconcile"}})),
    "reconciler deletes": (functools.partial(check_least_privilege, name=RECONCILER),
                           add_statement(RECONCILER, "dynamodb:DeleteItem", TABLE_ARN)),
    "fixed schedule": (check_schedule, set_in([R, RECONCILER, "Properties", "Events", "Reconcile", "Properties",
                                               "ScheduleExpression"], "rate(1 hour)")),
    "retried runs": (check_schedule, set_in([R, RECONCILER, "Properties", "Events", "Reconcile", "Properties",
                                             "RetryPolicy", "MaximumRetryAttempts"], 2)),
    "disabled schedule": (check_schedule, set_in([R, RECONCILER, "Properties", "Events", "Reconcile", "Properties",
                                                  "State"], "DISABLED")),
    "overlapping runs": (check_schedule, set_in(["Parameters", "ReconcileIntervalMinutes", "MinValue"], 1)),
    "hourly by default": (check_schedule, set_in(["Parameters", "ReconcileIntervalMinutes", "Default"], 60)),
    "reconciler cut short": (check_schedule, set_in([R, RECONCILER, "Properties", "Timeout"], 60)),
    "two schedules": (check_schedule, set_in([R, RECONCILER, "Properties", "Events", "Again"], {
        "Type": "ScheduleV2", "Properties": {"ScheduleExpression": "rate(5 minutes)"}})),
    "http Nango host": (check_nango_host, set_in(["Parameters", "NangoHost", "AllowedPattern"], "^https?://\\S+$")),
    "bare https": (check_nango_host, set_in(["Parameters", "NangoHost", "AllowedPattern"], "^https://.*$")),
    "public policy": (check_organization_access, set_in(["Parameters", "OrganizationAccess", "AllowedValues"],
                                                        ["shared", "visible", "private", "public"])),
    "environment not given": (check_nango_environment, delete_in(
        [R, RECEIVER, "Properties", "Environment", "Variables", "NANGO_ENVIRONMENT"])),
    "environment fixed by default": (check_nango_environment, set_in(["Parameters", "NangoEnvironment", "Default"], "prod")),
    "policy not given": (check_organization_access, delete_in(
        [R, "ListConnectionsFunction", "Properties", "Environment", "Variables", "ORGANIZATION_ACCESS"])),
    "unthrottled sessions": (check_throttling, delete_in([R, "Api", "Properties", "RouteSettings", "POST /sessions"])),
    "no default throttle": (check_throttling, delete_in([R, "Api", "Properties", "DefaultRouteSettings"])),
    "budget over Nango's limit": (check_throttling, set_in(["Parameters", "NangoRequestsPerMinute", "Default"], 250)),
    "share not given": (check_rate_limits, delete_in(
        [R, "CreateSessionFunction", "Properties", "Environment", "Variables", "USER_REQUESTS_PER_MINUTE"])),
    "receiver without the budget": (check_rate_limits, delete_in(
        [R, RECEIVER, "Properties", "Environment", "Variables", "NANGO_REQUESTS_PER_MINUTE"])),
    "buckets on a stream": (check_rate_limits, set_in(
        [R, RATE_LIMIT_TABLE, "Properties", "StreamSpecification"], {"StreamViewType": "NEW_IMAGE"})),
    "hidden Retry-After": (check_throttling, set_in(
        [R, "Api", "Properties", "CorsConfiguration", "Fn::If", 1, "ExposeHeaders"], [])),
    "no bus ARN output": (check_outputs, delete_in(["Outputs", "EventBusArn"])),
    "receiver puts to any bus": (functools.partial(check_least_privilege, name=RECEIVER),
                                 set_in([R, RECEIVER, "Properties", "Policies", 0, "Statement", 2, "Resource"], "*")),
    "publisher reads the table": (functools.partial(check_least_privilege, name=PUBLISHER),
                                  add_statement(PUBLISHER, "dynamodb:GetItem", TABLE_ARN)),
    "publisher without the DLQ grant": (functools.partial(check_least_privilege, name=PUBLISHER),
                                        lambda t: statements(t, PUBLISHER).pop()),
    "fixed bus": (check_event_bus, delete_in([R, "EventBus", "Condition"])),
    "publisher on another bus": (check_event_bus, set_in(
        [R, PUBLISHER, "Properties", "Environment", "Variables", "EVENT_BUS_NAME"], "default")),
    "receiver without a bus": (check_event_bus, delete_in(
        [R, RECEIVER, "Properties", "Environment", "Variables", "EVENT_BUS_NAME"])),
    "no partial batch": (check_stream_consumer, delete_in(
        [R, "PublishEventsStream", "Properties", "FunctionResponseTypes"])),
    "no bisect": (check_stream_consumer, set_in([R, "PublishEventsStream", "Properties",
                                                 "BisectBatchOnFunctionError"], False)),
    "retry forever": (check_stream_consumer, set_in([R, "PublishEventsStream", "Properties",
                                                     "MaximumRetryAttempts"], -1)),
    "parallel shards": (check_stream_consumer, set_in([R, "PublishEventsStream", "Properties",
                                                       "ParallelizationFactor"], 4)),
    "no DLQ": (check_stream_consumer, delete_in([R, "PublishEventsStream", "Properties", "DestinationConfig"])),
    "keys-only stream": (check_table_matches_definition, set_in(
        [R, TABLE, "Properties", "StreamSpecification", "StreamViewType"], "KEYS_ONLY")),
    # Metrics, alarms and the dashboard: one misspelling each, caught.
    "misspelled metric": (check_metrics_are_the_code_s, set_in(
        [R, "WebhookSignatureRejectionsAlarm", "Properties", "MetricName"], "Webhook")),
    "misspelled dimension": (check_metrics_are_the_code_s, set_in(
        [R, "WebhookSignatureRejectionsAlarm", "Properties", "Dimensions", 1, "Name"], "outcome")),
    "value never emitted": (check_metrics_are_the_code_s, set_in(
        [R, "WebhookSignatureRejectionsAlarm", "Properties", "Dimensions", 1, "Value"], "rejected")),
    "function that does not emit it": (check_metrics_are_the_code_s, set_in(
        [R, "NangoUnavailableAlarm", "Properties", "Metrics", 0, "MetricStat", "Metric", "Dimensions", 0, "Value"],
        "list-connections")),
    "no Function dimension": (check_metrics_are_the_code_s, delete_in(
        [R, "ReconcileDriftAlarm", "Properties", "Dimensions", 0])),
    "extra dimension": (check_metrics_are_the_code_s, lambda t: props(t, "ReconcileDriftAlarm")["Dimensions"].append(
        {"Name": "Result", "Value": "complete"})),
    "fixed namespace": (check_metrics_are_the_code_s, set_in(
        [R, "ReconcileNotCompletingAlarm", "Properties", "Namespace"], "NangoConnect")),
    "misspelled in a metric-math alarm": (check_metrics_are_the_code_s, set_in(
        [R, "WebhookFailuresAlarm", "Properties", "Metrics", 1, "MetricStat", "Metric", "Dimensions", 1, "Value"],
        "unstoreable")),
    "misspelled on the dashboard": (check_metrics_are_the_code_s, lambda t: sub_dashboard(
        t, '"ReconcileRuns", "Function"', '"ReconcileRun", "Function"')),
    "wrong SEARCH schema": (check_metrics_are_the_code_s, lambda t: sub_dashboard(
        t, ',Code,Function}', ',Function}')),
    "AWS metric misspelled": (check_metrics_are_the_code_s, set_in(
        [R, "EventsDeadLetterQueueAlarm", "Properties", "MetricName"], "ApproximateNumberOfMessages")),
    "AWS metric of another queue": (check_metrics_are_the_code_s, set_in(
        [R, "EventsDeadLetterQueueAlarm", "Properties", "Dimensions", 0, "Value"], "some-queue")),
    "API stage": (check_metrics_are_the_code_s, set_in(
        [R, "Api5xxRateAlarm", "Properties", "Metrics", 0, "MetricStat", "Metric", "Dimensions", 1, "Value"], "prod")),
    "namespace not given": (check_metrics_namespace, delete_in(
        ["Globals", "Function", "Environment", "Variables", "METRICS_NAMESPACE"])),
    "namespace fixed": (check_metrics_namespace, set_in(
        ["Globals", "Function", "Environment", "Variables", "METRICS_NAMESPACE"], "NangoConnect")),
    "no errors alarm": (check_function_alarms, delete_in([R, "PublishEventsErrorsAlarm"])),
    "throttles of another function": (check_function_alarms, set_in(
        [R, "WebhookReceiverThrottlesAlarm", "Properties", "Dimensions", 0, "Value"], {"Ref": RECONCILER})),
    "missing data left to chance": (check_alarm_missing_data, delete_in(
        [R, "NangoUnavailableAlarm", "Properties", "TreatMissingData"])),
    "crashed runs unseen": (check_alarm_missing_data, set_in(
        [R, "ReconcileNotCompletingAlarm", "Properties", "TreatMissingData"], "notBreaching")),
    "fixed alarm action": (check_alarm_actions, set_in(
        [R, "Api5xxRateAlarm", "Properties", "AlarmActions"], [TOPIC])),
    "no OK action": (check_alarm_actions, delete_in([R, "ReconcileDriftAlarm", "Properties", "OKActions"])),
    "topic always made": (check_alarm_actions, delete_in([R, "AlarmTopic", "Condition"])),
    "alarm not in the runbook": (check_alarms_in_runbook, set_in([R, "UndocumentedAlarm"], {
        "Type": ALARM, "Properties": {"TreatMissingData": "notBreaching"}})),
    "one-run window": (check_reconcile_alarm_window, set_in(
        ["Parameters", "ReconcileAlarmMinutesWithoutComplete", "Default"], 15)),
    "alarm off the dashboard": (check_dashboard_shows_every_alarm, lambda t: sub_dashboard(
        t, '"${Api5xxRateAlarm.Arn}",', '')),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_check_catches(template, mutation):
    check, mutate = MUTATIONS[mutation]
    broken = copy.deepcopy(template)
    mutate(broken)
    with pytest.raises(AssertionError):
        check(broken)


def test_every_check_is_shown_to_fail():
    shown = {getattr(check, "func", check).__name__ for check, _ in MUTATIONS.values()}
    defined = {name for name in globals() if name.startswith("check_")}
    assert defined == shown
    least_privilege = {check.keywords["name"] for check, _ in MUTATIONS.values()
                       if getattr(check, "func", None) is check_least_privilege}
    assert least_privilege == set(PERMISSIONS)
