"""A fresh caller for scripts/schemathesis: prints a dev token whose caller has COUNT connections.

The connections are made as a browser makes them (a Connect session from the API, then the
frontend SDK's API-key call to the Nango emulator), and the token is printed once the auth webhooks
have made them all listed. Usage: caller.py STACK_URL NANGO_HOST COUNT
"""

import json
import sys
import time
import urllib.request
import uuid


def call(url, body=None, token=None):
    request = urllib.request.Request(url, method="POST" if body is not None else "GET")
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    data = None if body is None else json.dumps(body).encode()
    with urllib.request.urlopen(request, data, timeout=30) as answer:
        return json.load(answer)


def main():
    stack, nango, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    # A caller of their own: the in-memory stack is shared with the other suites.
    run = uuid.uuid4().hex[:10]
    identity = {"sub": f"schemathesis-{run}", "org_id": f"schemathesis-org-{run}"}
    token = call(f"{stack}/dev/token", identity)["token"]
    for _ in range(count):
        session = call(f"{stack}/sessions", {"allowedIntegrations": ["github"]}, token)
        authorize = f"{nango}/api-auth/api-key/github?connect_session_token={session['sessionToken']}"
        call(authorize, {"apiKey": "schemathesis"})
    # The auth webhooks arrive asynchronously.
    deadline = time.monotonic() + 30
    while len(call(f"{stack}/connections?limit=100", token=token)["connections"]) < count:
        if time.monotonic() > deadline:
            sys.exit(f"the {count} connections were not listed within 30 s")
        time.sleep(0.2)
    print(token)


if __name__ == "__main__":
    main()
