//! The security audit's attacks on the local stack, each replayed through real
//! listeners on port 0: forged bodies under a valid signature, a `+` that meant
//! two things, an `X-Amz-Expires` that overflowed, oversized WebSocket frames,
//! slowloris on every listener, ignored managed session policies, and an HS256
//! key read from Secrets Manager instead of the environment.

mod common;

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use common::mqtt::{Client, vend};
use common::sigv4::{ToSign, host_of, sign_headers};
use common::tools::Moto;
use serverless_websockets_core::arn::IotArns;
use serverless_websockets_core::presign::{DEFAULT_EXPIRES, IotEndpoint, presign};
use serverless_websockets_local::stack::{LocalOptions, LocalStack};
use serverless_websockets_vending::server::Timeouts;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const CLIENT_ROLE: &str = "arn:aws:iam::000000000000:role/serverless-websockets-client";

fn admin(stack: &LocalStack) -> Credentials {
    let admin = &stack.info().admin;
    Credentials::new(&admin.access_key_id, &admin.secret_access_key, None, None, "admin")
}

fn arns() -> IotArns {
    IotArns::new("aws", "us-east-1", "000000000000").unwrap()
}

/// Sends a signed form POST to the STS emulator with `sent_body`, signed over `signed_body`.
async fn sts_post(stack: &LocalStack, signed_body: &str, sent_body: &str) -> (u16, String) {
    let url = format!("{}/", stack.info().sts_endpoint);
    let content_type = "application/x-www-form-urlencoded; charset=utf-8";
    let headers = [("host", host_of(&url)), ("content-type", content_type)];
    let signed = sign_headers(
        &ToSign {
            method: "POST",
            url: &url,
            headers: &headers,
            body: signed_body.as_bytes(),
            service: "sts",
            region: "us-east-1",
            content_sha256_header: true,
        },
        &admin(stack),
        SystemTime::now(),
    );
    let mut request = reqwest::Client::new()
        .post(&url)
        .header("content-type", content_type)
        .body(sent_body.to_owned());
    for (name, value) in &signed {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn xml_text<'a>(xml: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    let start = xml.find(&open).unwrap_or_else(|| panic!("no <{tag}> in {xml}")) + open.len();
    &xml[start..start + xml[start..].find('<').unwrap()]
}

#[tokio::test]
async fn a_replayed_assume_role_with_another_body_and_its_old_content_hash_is_refused() {
    let stack = LocalStack::start(LocalOptions::ephemeral()).await.unwrap();
    let narrow = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}"#;
    let signed = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("Action", "AssumeRole")
        .append_pair("Version", "2011-06-15")
        .append_pair("RoleArn", CLIENT_ROLE)
        .append_pair("RoleSessionName", "captured")
        .append_pair("Policy", narrow)
        .finish();
    let (status, xml) = sts_post(&stack, &signed, &signed).await;
    assert_eq!(status, 200, "the captured request itself is fine: {xml}");

    // The attacker drops the Policy and replays the headers, x-amz-content-sha256 included.
    let forged = format!("Action=AssumeRole&Version=2011-06-15&RoleArn={CLIENT_ROLE}&RoleSessionName=captured");
    let (status, xml) = sts_post(&stack, &signed, &forged).await;
    assert_eq!(status, 403, "{xml}");
    assert_eq!(xml_text(&xml, "Code"), "SignatureDoesNotMatch");
    stack.shutdown().await;
}

#[tokio::test]
async fn an_https_publish_with_a_forged_body_under_a_valid_signature_is_refused() {
    let stack = LocalStack::start(LocalOptions::ephemeral()).await.unwrap();
    let vended = vend(&stack.info().api_url).await;
    let mut subscriber = Client::connect(&vended.url, &vended.client_id, None).await;
    subscriber.subscribed(&vended.topic, rumqttc::QoS::AtLeastOnce).await;

    let url = format!(
        "{}/topics/{}?qos=1",
        stack.info().iot_data_endpoint,
        vended.topic.replace('/', "%2F")
    );
    let headers = [("host", host_of(&url))];
    let signed = sign_headers(
        &ToSign {
            method: "POST",
            url: &url,
            headers: &headers,
            body: b"genuine",
            service: "iotdata",
            region: "us-east-1",
            content_sha256_header: true,
        },
        &admin(&stack),
        SystemTime::now(),
    );
    let send = |body: &'static str| {
        let mut request = reqwest::Client::new().post(&url).body(body);
        for (name, value) in &signed {
            request = request.header(name, value);
        }
        request.send()
    };
    assert_eq!(send("forged").await.unwrap().status(), 403);
    assert_eq!(send("genuine").await.unwrap().status(), 200);
    let publish = subscriber.next_publish().await;
    assert_eq!(&publish.payload[..], b"genuine", "only the signed body was delivered");
    stack.shutdown().await;
}

#[tokio::test]
async fn a_plus_rewritten_in_a_signed_sts_get_cannot_change_the_policy_sts_applies() {
    let stack = LocalStack::start(LocalOptions::ephemeral()).await.unwrap();
    let deny = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"iot:*","Resource":"*"}},{{"Effect":"Deny","Action":"iot:Subscribe","Resource":"{}"}}]}}"#,
        arns().topic_filter("allowed/+")
    );
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("Action", "AssumeRole")
        .append_pair("Version", "2011-06-15")
        .append_pair("RoleArn", CLIENT_ROLE)
        .append_pair("RoleSessionName", "plus")
        .append_pair("Policy", &deny)
        .finish();
    assert!(query.contains("%2B"), "{query}");
    let url = format!("{}/?{query}", stack.info().sts_endpoint);
    let headers = [("host", host_of(&url))];
    let signed = sign_headers(
        &ToSign {
            method: "GET",
            url: &url,
            headers: &headers,
            body: b"",
            service: "sts",
            region: "us-east-1",
            content_sha256_header: false,
        },
        &admin(&stack),
        SystemTime::now(),
    );
    // `%2B` → `+`: the same bytes to a SigV4 canonicalizer that keeps `+` literal,
    // a space to a form decoder.
    let rewritten = url.replace("%2B", "+");
    let mut request = reqwest::Client::new().get(&rewritten);
    for (name, value) in &signed {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let xml = response.text().await.unwrap();
    if status == 200 {
        let key = xml_text(&xml, "AccessKeyId");
        let identity = stack.identities().get(key).unwrap();
        assert!(
            !identity.is_allowed("iot:Subscribe", &arns().topic_filter("allowed/+")),
            "the signed Deny still applies"
        );
        assert!(identity.is_allowed("iot:Subscribe", &arns().topic_filter("allowed/abc")));
    } else {
        assert_eq!(xml_text(&xml, "Code"), "SignatureDoesNotMatch", "{xml}");
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn an_x_amz_expires_of_u64_max_is_refused_and_the_stack_keeps_serving() {
    let stack = LocalStack::start(LocalOptions::ephemeral()).await.unwrap();
    let endpoint = IotEndpoint::parse(&stack.info().iot_endpoint).unwrap();
    let url = presign(
        &endpoint,
        "us-east-1",
        &admin(&stack),
        SystemTime::now(),
        DEFAULT_EXPIRES,
    )
    .unwrap();
    let at = url.find("X-Amz-Expires=").unwrap() + "X-Amz-Expires=".len();
    let end = at + url[at..].find('&').unwrap();
    for value in ["18446744073709551615", "604801", "0"] {
        let overflow = format!("{}{value}{}", &url[..at], &url[end..]);
        let mut request = overflow.into_client_request().unwrap();
        request
            .headers_mut()
            .insert("sec-websocket-protocol", "mqtt".parse().unwrap());
        match tokio_tungstenite::connect_async(request).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 403, "{value}");
            }
            other => panic!("X-Amz-Expires={value}: expected a 403, got {other:?}"),
        }
    }
    // Still alive: the usual path works.
    let vended = vend(&stack.info().api_url).await;
    Client::connect(&vended.url, &vended.client_id, None).await;
    stack.shutdown().await;
}

/// A WebSocket to the gateway, handshake done, as a raw TCP stream.
async fn raw_websocket(stack: &LocalStack) -> TcpStream {
    match common::mqtt::admin_websocket(stack).await.into_inner() {
        tokio_tungstenite::MaybeTlsStream::Plain(tcp) => tcp,
        _ => unreachable!("plain ws"),
    }
}

/// Reads until the peer closes; `true` if it did within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buffer = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn a_websocket_frame_over_the_packet_limit_is_refused_from_its_header() {
    let stack = LocalStack::start(LocalOptions::ephemeral()).await.unwrap();
    let mut stream = raw_websocket(&stack).await;
    // FIN + binary; masked, 64-bit length: 15 MiB announced, 1 KiB sent.
    let mut frame = vec![0x82, 0x80 | 127];
    frame.extend_from_slice(&(15u64 * 1024 * 1024).to_be_bytes());
    frame.extend_from_slice(&[1, 2, 3, 4]);
    frame.extend_from_slice(&[0u8; 1024]);
    stream.write_all(&frame).await.unwrap();
    assert!(
        closed_within(&mut stream, Duration::from_secs(10)).await,
        "the gateway waited for the rest of a 15 MiB frame"
    );
    stack.shutdown().await;
}

/// A local stack whose listeners time out quickly, for the slow-client tests.
async fn impatient_stack() -> LocalStack {
    let mut options = LocalOptions::ephemeral();
    options.timeouts = Timeouts {
        header_read: Duration::from_secs(1),
        body_read: Duration::from_secs(1),
        ..Timeouts::default()
    };
    options.gateway.connect_timeout = Duration::from_secs(1);
    LocalStack::start(options).await.unwrap()
}

/// Trickles one header line every 200 ms; the number of lines sent before the
/// server hung up, or `None` if it never did within 50 lines (10 s).
async fn slowloris(addr: &str) -> Option<u32> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"POST / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut buffer = [0u8; 1024];
    for sent in 0..50 {
        tokio::select! {
            read = stream.read(&mut buffer) => match read {
                Ok(0) | Err(_) => return Some(sent),
                Ok(_) => return Some(sent), // an error response, then the close
            },
            _ = tick.tick() => {
                if stream.write_all(b"X-Slow: 1\r\n").await.is_err() {
                    return Some(sent);
                }
            }
        }
    }
    None
}

#[tokio::test]
async fn a_slowloris_client_is_cut_off_at_the_header_deadline_on_every_listener() {
    let stack = impatient_stack().await;
    let info = stack.info();
    let addr = |url: &str| host_of(url).to_owned();
    for (name, target) in [
        ("vending API", addr(&info.api_url)),
        ("STS", addr(&info.sts_endpoint)),
        ("IoT gateway", addr(&info.iot_data_endpoint)),
    ] {
        let lines = slowloris(&target).await;
        assert!(
            lines.is_some_and(|n| n < 25),
            "{name}: still open after {lines:?} trickled header lines"
        );
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_and_a_silent_websocket_are_closed() {
    let stack = impatient_stack().await;
    let mut idle = TcpStream::connect(host_of(&stack.info().api_url)).await.unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(
        closed_within(&mut idle, Duration::from_secs(10)).await,
        "an idle keep-alive connection stays open"
    );

    let mut silent = raw_websocket(&stack).await;
    assert!(
        closed_within(&mut silent, Duration::from_secs(10)).await,
        "a WebSocket that never sends CONNECT stays open"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn a_body_that_never_finishes_gets_408_from_the_api() {
    let stack = impatient_stack().await;
    let host = host_of(&stack.info().api_url).to_owned();
    let mut stream = TcpStream::connect(&host).await.unwrap();
    let head = format!(
        "POST /credentials HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"a\":"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await;
    assert!(read.is_ok(), "no answer to a stalled body");
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("RequestTimeout"), "{text}");
    // And the API still serves.
    vend(&stack.info().api_url).await;
    stack.shutdown().await;
}

async fn sts_client(stack: &LocalStack) -> aws_sdk_sts::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(admin(stack))
        .endpoint_url(&stack.info().sts_endpoint)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    aws_sdk_sts::Client::new(&config)
}

fn policy_arn(arn: &str) -> aws_sdk_sts::types::PolicyDescriptorType {
    aws_sdk_sts::types::PolicyDescriptorType::builder().arn(arn).build()
}

#[tokio::test]
async fn managed_session_policies_are_honoured_and_unknown_ones_refused() {
    let stack = LocalStack::start(LocalOptions::ephemeral()).await.unwrap();
    let sts = sts_client(&stack).await;

    let with_managed = |session: &'static str, arn: &'static str| {
        sts.assume_role()
            .role_arn(CLIENT_ROLE)
            .role_session_name(session)
            .policy_arns(policy_arn(arn))
            .send()
    };
    let denied = with_managed("deny-all", "arn:aws:iam::aws:policy/AWSDenyAll")
        .await
        .unwrap();
    let credentials = denied.credentials().unwrap();
    let identity = stack.identities().get(credentials.access_key_id()).unwrap();
    assert!(!identity.is_allowed("iot:Connect", &arns().client("anyone")));
    // Through the gateway: the connection is refused at CONNECT.
    let sdk = Credentials::new(
        credentials.access_key_id(),
        credentials.secret_access_key(),
        Some(credentials.session_token().to_owned()),
        None,
        "deny-all",
    );
    let endpoint = IotEndpoint::parse(&stack.info().iot_endpoint).unwrap();
    let url = presign(&endpoint, "us-east-1", &sdk, SystemTime::now(), DEFAULT_EXPIRES).unwrap();
    let mut client = Client::start(common::mqtt::options(&url, "anyone", None));
    client.closed().await;

    let data = with_managed("data-access", "arn:aws:iam::aws:policy/AWSIoTDataAccess")
        .await
        .unwrap();
    let identity = stack
        .identities()
        .get(data.credentials().unwrap().access_key_id())
        .unwrap();
    assert!(identity.is_allowed("iot:Connect", &arns().client("anyone")));

    let unknown = with_managed("unknown", "arn:aws:iam::123456789012:policy/DoesNotExist").await;
    let err = unknown.unwrap_err();
    let service = err.as_service_error().expect("a service error");
    assert_eq!(
        aws_sdk_sts::error::ProvideErrorMetadata::code(service),
        Some("MalformedPolicyDocument")
    );
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 400);

    let eleven: Vec<_> = (0..11)
        .map(|_| policy_arn("arn:aws:iam::aws:policy/AWSIoTDataAccess"))
        .collect();
    let too_many = sts
        .assume_role()
        .role_arn(CLIENT_ROLE)
        .role_session_name("eleven")
        .set_policy_arns(Some(eleven))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        aws_sdk_sts::error::ProvideErrorMetadata::code(too_many.as_service_error().unwrap()),
        Some("ValidationError")
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn serve_reads_the_hs256_key_from_secrets_manager_by_arn() {
    let moto = Moto::start();
    let secret = "a-shared-secret-from-secrets-manager-0123456789";
    let created = common::tools::secretsmanager(
        &moto,
        &["create-secret", "--name", "jwt-hs256", "--secret-string", secret],
    );
    let arn = created["ARN"].as_str().unwrap();
    let serve = common::tools::ServeProcess::start(
        &moto,
        &[
            ("AUTH_MODE", "jwt"),
            ("JWT_ISSUER", "https://issuer.example"),
            ("JWT_AUDIENCE", "app"),
            ("JWT_HS256_SECRET_ARN", arn),
        ],
    );
    let url = serve.url.clone();

    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = |key: &str| {
        let claims =
            serde_json::json!({"sub": "alice", "iss": "https://issuer.example", "aud": "app", "exp": now + 600});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
        )
        .unwrap()
    };
    let client = reqwest::Client::new();
    let good = client.post(&url).bearer_auth(token(secret)).send().await.unwrap();
    assert_eq!(good.status(), 200);
    let forged = client
        .post(&url)
        .bearer_auth(token("another-secret-of-at-least-32-bytes!!"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);

    let log = serve.stop();
    assert!(log.contains("read a secret from Secrets Manager"), "{log}");
    assert!(!log.contains(secret), "the secret reached the log");
}
