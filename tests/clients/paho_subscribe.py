"""Subscribe to one topic on the local gateway with paho-mqtt over WebSocket, using a
URL presigned by botocore exactly as AWS's own samples do: SigV4QueryAuth with the
long-term part of the credentials, then the session token appended after signing.

Prints READY once subscribed, then MESSAGE <topic> <payload> for the first message,
and exits 0. Exits 2 if the gateway refuses the connection.

Usage: paho_subscribe.py ENDPOINT REGION CLIENT_ID TOPIC  (credentials from the
standard AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN variables)
"""
import os
import sys
from urllib.parse import quote, urlsplit

import paho.mqtt.client as mqtt
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def presign(endpoint: str, region: str) -> str:
    parts = urlsplit(endpoint)
    http_scheme = "https" if parts.scheme == "wss" else "http"
    request = AWSRequest(method="GET", url=f"{http_scheme}://{parts.netloc}/mqtt")
    long_term = Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
    SigV4QueryAuth(long_term, "iotdevicegateway", region, expires=900).add_auth(request)
    url = request.url
    token = os.environ.get("AWS_SESSION_TOKEN")
    if token:
        url += "&X-Amz-Security-Token=" + quote(token, safe="")
    return url


def main() -> int:
    endpoint, region, client_id, topic = sys.argv[1:5]
    url = urlsplit(presign(endpoint, region))
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, transport="websockets")
    client.ws_set_options(path=f"{url.path}?{url.query}")
    outcome = {"code": 1}

    def on_connect(client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            print(f"REFUSED {reason_code}", flush=True)
            outcome["code"] = 2
            client.disconnect()
            return
        client.subscribe(topic, qos=1)

    def on_subscribe(client, userdata, mid, reason_codes, properties):
        print("READY", flush=True)

    def on_message(client, userdata, message):
        print(f"MESSAGE {message.topic} {message.payload.decode()}", flush=True)
        outcome["code"] = 0
        client.disconnect()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    try:
        client.connect(url.hostname, url.port, keepalive=30)
    except Exception as error:  # the handshake was refused
        print(f"REFUSED {error}", flush=True)
        return 2
    client.loop_forever(retry_first_connection=False)
    return outcome["code"]


if __name__ == "__main__":
    sys.exit(main())
