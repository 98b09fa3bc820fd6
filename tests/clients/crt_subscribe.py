"""Subscribe to the vended topic on the local gateway with the AWS IoT Device SDK v2
for Python (awsiotsdk, on aws-crt), which presigns the WebSocket URL with its own
SigV4 signer. aws-crt always uses TLS, so the gateway runs with --tls and this
script trusts its local CA.

Prints READY once subscribed, then MESSAGE <topic> <payload> for the first message,
and exits 0.

Usage: crt_subscribe.py API_URL HOST PORT REGION CA_FILE
"""
import json
import sys
import threading
import urllib.request

from awscrt import auth, mqtt
from awsiot import mqtt_connection_builder


def main() -> int:
    api_url, host, port, region, ca_file = sys.argv[1:6]
    vended = json.load(urllib.request.urlopen(urllib.request.Request(api_url, method="POST")))
    creds = vended["credentials"]
    provider = auth.AwsCredentialsProvider.new_static(
        creds["accessKeyId"], creds["secretAccessKey"], creds["sessionToken"]
    )
    connection = mqtt_connection_builder.websockets_with_default_aws_signing(
        endpoint=host,
        port=int(port),
        region=region,
        credentials_provider=provider,
        ca_filepath=ca_file,
        client_id=vended["clientId"],
        clean_session=True,
        keep_alive_secs=30,
    )
    connection.connect().result(10)
    received = threading.Event()

    def on_message(topic, payload, **_):
        print(f"MESSAGE {topic} {payload.decode()}", flush=True)
        received.set()

    subscribed, _ = connection.subscribe(vended["topic"], mqtt.QoS.AT_LEAST_ONCE, on_message)
    subscribed.result(10)
    print(f"READY {vended['topic']}", flush=True)
    ok = received.wait(20)
    connection.disconnect().result(5)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
