"""Regenerates botocore-presign.json: presigned IoT WebSocket URLs made by botocore,
the reference signer, for fixed credentials, regions, hosts and times.

botocore signs with the long-term part of the credentials (SigV4QueryAuth), then
the session token is appended after signing, as AWS's own IoT samples do. The
Rust test checks that client_example::presign produces the same bytes.

Run with the test tools' Python:  .tools/venv/bin/python client-example/tests/data/make_presign_vectors.py
"""
import datetime
import json
import pathlib
from unittest import mock
from urllib.parse import quote

import botocore
import botocore.auth
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

CASES = [
    {
        "endpoint": "wss://a1b2c3d4e5f6g7-ats.iot.us-east-1.amazonaws.com",
        "region": "us-east-1",
        "access_key_id": "ASIAEXAMPLEKEY000001",
        "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "session_token": "IQoJb3JpZ2luX2VjEXAMPLE/token+with=special&chars",
        "time": "2026-11-22T05:40:00Z",
    },
    {
        "endpoint": "wss://z9y8x7w6v5u4t3-ats.iot.eu-west-1.amazonaws.com",
        "region": "eu-west-1",
        "access_key_id": "ASIAEXAMPLEKEY000002",
        "secret_access_key": "another+secret/value",
        "session_token": "FwoGZXIvYXdzEXAMPLE",
        "time": "2027-02-28T23:59:59Z",
    },
    {
        "endpoint": "ws://127.0.0.1:8443",
        "region": "us-east-1",
        "access_key_id": "ASIALOCAL00000000003",
        "secret_access_key": "local-secret",
        "session_token": "bG9jYWwgdG9rZW4=",
        "time": "2026-01-01T00:00:00Z",
    },
]


def presign(case: dict) -> str:
    scheme, host = case["endpoint"].split("://")
    http_scheme = "https" if scheme == "wss" else "http"
    request = AWSRequest(method="GET", url=f"{http_scheme}://{host}/mqtt")
    when = datetime.datetime.strptime(case["time"], "%Y-%m-%dT%H:%M:%SZ")
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=when):
        SigV4QueryAuth(
            Credentials(case["access_key_id"], case["secret_access_key"]),
            "iotdevicegateway",
            case["region"],
            expires=900,
        ).add_auth(request)
    url = request.url.replace(f"{http_scheme}://", f"{scheme}://", 1)
    return url + "&X-Amz-Security-Token=" + quote(case["session_token"], safe="")


def main() -> None:
    vectors = [dict(case, expected=presign(case)) for case in CASES]
    out = pathlib.Path(__file__).with_name("botocore-presign.json")
    out.write_text(json.dumps({"botocore": botocore.__version__, "vectors": vectors}, indent=2) + "\n")
    print(f"wrote {len(vectors)} vectors to {out}")


if __name__ == "__main__":
    main()
