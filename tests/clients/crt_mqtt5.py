"""MQTT 5 on the local gateway with the AWS IoT Device SDK v2 for Python's
Mqtt5Client (awsiotsdk on aws-crt), which signs its own WebSocket handshake.
aws-crt always uses TLS, so the gateway runs with --tls and this script trusts
its local CA.

Vends credentials, connects, subscribes to another client's topic (printing
FORBIDDEN <reason code> for the SUBACK), subscribes to its own topic (printing
READY <topic>), then prints MESSAGE <topic> <payload> <user properties as JSON>
for the first message and exits 0.

Usage: crt_mqtt5.py API_URL HOST PORT REGION CA_FILE
"""
import json
import sys
import threading
import urllib.request

from awscrt import auth, mqtt5
from awsiot import mqtt5_client_builder


def main() -> int:
    api_url, host, port, region, ca_file = sys.argv[1:6]
    vended = json.load(urllib.request.urlopen(urllib.request.Request(api_url, method="POST")))
    creds = vended["credentials"]
    provider = auth.AwsCredentialsProvider.new_static(
        creds["accessKeyId"], creds["secretAccessKey"], creds["sessionToken"]
    )
    connected = threading.Event()
    received = threading.Event()
    failure = []

    def on_publish(data: mqtt5.PublishReceivedData) -> None:
        packet = data.publish_packet
        props = [{p.name: p.value} for p in (packet.user_properties or [])]
        print(f"MESSAGE {packet.topic} {packet.payload.decode()} {json.dumps(props)}", flush=True)
        received.set()

    def on_failure(data: mqtt5.LifecycleConnectFailureData) -> None:
        failure.append(data)
        connected.set()

    client = mqtt5_client_builder.websockets_with_default_aws_signing(
        endpoint=host,
        port=int(port),
        region=region,
        credentials_provider=provider,
        ca_filepath=ca_file,
        client_id=vended["clientId"],
        on_publish_received=on_publish,
        on_lifecycle_connection_success=lambda _: connected.set(),
        on_lifecycle_connection_failure=on_failure,
    )
    client.start()
    if not connected.wait(10) or failure:
        print(f"REFUSED {failure[0].exception if failure else 'timeout'}", flush=True)
        client.stop()
        return 2

    def subscribe(topic: str) -> mqtt5.SubackPacket:
        packet = mqtt5.SubscribePacket(
            subscriptions=[mqtt5.Subscription(topic_filter=topic, qos=mqtt5.QoS.AT_LEAST_ONCE)]
        )
        return client.subscribe(packet).result(10)

    forbidden = subscribe("allowed/somebody-else")
    print(f"FORBIDDEN {int(forbidden.reason_codes[0])}", flush=True)
    own = subscribe(vended["topic"])
    if int(own.reason_codes[0]) > 1:
        print(f"REFUSED own topic {int(own.reason_codes[0])}", flush=True)
        client.stop()
        return 2
    print(f"READY {vended['topic']}", flush=True)
    ok = received.wait(20)
    client.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
