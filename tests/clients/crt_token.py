"""Connect with a token through a custom authorizer with the AWS IoT Device SDK v2
for Python (awsiotsdk, on aws-crt): `websockets_with_custom_authorizer`, which
puts the authorizer's name and the token in the MQTT CONNECT user name (not in
the URL) and signs nothing. aws-crt always uses TLS, so the gateway runs with
--tls and this script trusts its local CA.

Prints READY once subscribed, then MESSAGE <topic> <payload> for the first
message, and exits 0.

Usage: crt_token.py HOST PORT CA_FILE AUTHORIZER TOKEN CLIENT_ID TOPIC
"""
import sys
import threading

from awscrt import mqtt
from awsiot import mqtt_connection_builder


def main() -> int:
    host, port, ca_file, authorizer, token, client_id, topic = sys.argv[1:8]
    connection = mqtt_connection_builder.websockets_with_custom_authorizer(
        endpoint=host,
        port=int(port),
        ca_filepath=ca_file,
        client_id=client_id,
        clean_session=True,
        keep_alive_secs=30,
        auth_authorizer_name=authorizer,
        auth_token_key_name="token",
        auth_token_value=token,
    )
    try:
        connection.connect().result(15)
    except Exception as err:  # the authorizer's refusal closes the connection
        print(f"REFUSED {err}", flush=True)
        return 2
    received = threading.Event()

    def on_message(topic, payload, **_):
        print(f"MESSAGE {topic} {payload.decode()}", flush=True)
        received.set()

    subscribed, _ = connection.subscribe(topic, mqtt.QoS.AT_LEAST_ONCE, on_message)
    subscribed.result(10)
    print(f"READY {topic}", flush=True)
    ok = received.wait(20)
    connection.disconnect().result(5)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
