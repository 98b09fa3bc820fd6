//! Grants that follow the caller's token, through the real listeners: a local
//! stack whose templates use `{claims.rooms}`; the vending API grants one room
//! per value of the token's `rooms` claim, a body narrows them, a resume keeps
//! the narrowing and re-reads the token, a bad value is a 403 naming the claim,
//! a token in too many rooms is told to narrow — and the gateway enforces what
//! was granted, for vended credentials and through the JWT custom authorizer.

#![allow(
    clippy::expect_used,
    reason = "test code: a panic with its message is the failure report"
)]

mod common;

use rumqttc::QoS;
use serde_json::{Value, json};

use common::mqtt::{Client, Seen};
use serverless_websockets_core::policy::authorizer::client_id_prefix;
use serverless_websockets_local::stack::{LocalOptions, LocalStack};

async fn stack() -> LocalStack {
    let mut options = LocalOptions::ephemeral();
    options.settings = vec![
        ("AUTH_MODE".into(), "jwt".into()),
        (
            "SUBSCRIBE_TOPICS".into(),
            "allowed/{clientId},rooms/{claims.rooms}/+".into(),
        ),
        ("PUBLISH_TOPICS".into(), "rooms/{claims.rooms}/{clientId}".into()),
    ];
    LocalStack::start(options).await.unwrap()
}

/// A token the stack accepts, for `sub`, with `claims` besides.
fn token(stack: &LocalStack, sub: &str, claims: Value) -> String {
    let jwt = stack.info().jwt.clone().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut body = json!({"sub": sub, "iss": jwt.issuer, "aud": jwt.audience, "exp": now + 600});
    body.as_object_mut()
        .unwrap()
        .extend(claims.as_object().unwrap().clone());
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &body,
        &jsonwebtoken::EncodingKey::from_secret(jwt.hs256_secret.as_bytes()),
    )
    .unwrap()
}

/// POSTs to the API with `token` and `body`: the status and the JSON answer.
async fn vend(stack: &LocalStack, token: &str, body: Value) -> (u16, Value) {
    common::mqtt::vend_answer(&stack.info().api_url, token, &body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_come_from_the_token_narrow_on_request_and_hold_at_the_gateway() {
    let stack = stack().await;
    let alice = token(&stack, "alice", json!({"rooms": ["42", "7"]}));
    let (status, all) = vend(&stack, &alice, json!({})).await;
    assert_eq!(status, 200, "{all}");
    let id = all["clientId"].as_str().unwrap().to_owned();
    assert_eq!(
        all["grants"]["subscribe"],
        json!([format!("allowed/{id}"), "rooms/42/+", "rooms/7/+"])
    );
    // Narrowed to room 7: the vended credentials hold that room only.
    let (status, narrowed) = vend(&stack, &alice, json!({"claims": {"rooms": ["7"]}})).await;
    assert_eq!(status, 200, "{narrowed}");
    assert_eq!(narrowed["grants"]["subscribe"][1], "rooms/7/+");
    let mut client = Client::connect(
        narrowed["url"].as_str().unwrap(),
        narrowed["clientId"].as_str().unwrap(),
        None,
    )
    .await;
    client.subscribed("rooms/7/+", QoS::AtLeastOnce).await;
    match client.subscribe("rooms/42/+", QoS::AtLeastOnce).await {
        Seen::Closed(_) => {}
        other => panic!("a room narrowed away must be refused: {other:?}"),
    }
    // A resume keeps the narrowing; with the room gone from the token it is refused.
    let resume = json!({"resumeToken": narrowed["resumeToken"]});
    let (status, resumed) = vend(&stack, &alice, resume.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(
        resumed["grants"]["subscribe"],
        json!([
            format!("allowed/{}", resumed["clientId"].as_str().unwrap()),
            "rooms/7/+"
        ])
    );
    let moved = token(&stack, "alice", json!({"rooms": ["42"]}));
    let (status, refused) = vend(&stack, &moved, resume).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (403, Some("ClaimNotInToken")),
        "{refused}"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn a_bad_room_names_the_claim_and_too_many_rooms_say_to_narrow() {
    let stack = stack().await;
    let sneaky = token(&stack, "mallory", json!({"rooms": ["ok", "#"]}));
    let (status, answer) = vend(&stack, &sneaky, json!({})).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (403, Some("InvalidClaim")),
        "{answer}"
    );
    assert!(answer["error"]["message"].as_str().unwrap().contains("\"rooms\""));
    let busy = token(
        &stack,
        "alice",
        json!({"rooms": (0..60).map(|i| format!("room-number-{i}")).collect::<Vec<_>>()}),
    );
    let (status, answer) = vend(&stack, &busy, json!({})).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (403, Some("GrantsTooLarge")),
        "{answer}"
    );
    assert!(answer["error"]["message"].as_str().unwrap().contains("claims"));
    let (status, _) = vend(&stack, &busy, json!({"claims": {"rooms": ["room-number-3"]}})).await;
    assert_eq!(status, 200);
    let (status, answer) = vend(&stack, &busy, json!({"claims": {"teams": ["a"]}})).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("InvalidNarrowing")),
        "{answer}"
    );
    let (status, answer) = vend(&stack, &busy, json!({"claims": ["room-number-3"]})).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("InvalidNarrowing")),
        "{answer}"
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jwt_authorizer_grants_the_same_rooms_from_the_same_claims() {
    let stack = stack().await;
    let alice = token(&stack, "alice", json!({"rooms": ["42"]}));
    let name = stack.info().authorizer.clone().unwrap().name;
    let url = format!(
        "{}/mqtt?x-amz-customauthorizer-name={name}&token={alice}",
        stack.info().iot_endpoint
    );
    let id = format!("{}tab", client_id_prefix("alice"));
    let mut client = Client::connect(&url, &id, None).await;
    client.subscribed("rooms/42/+", QoS::AtLeastOnce).await;
    client
        .client
        .publish(format!("rooms/42/{id}"), QoS::AtLeastOnce, false, "hello room")
        .await
        .unwrap();
    assert_eq!(client.next_publish().await.payload, "hello room");
    match client.subscribe("rooms/7/+", QoS::AtLeastOnce).await {
        Seen::Closed(_) => {}
        other => panic!("a room the token does not carry must be refused: {other:?}"),
    }
    stack.shutdown().await;
}
