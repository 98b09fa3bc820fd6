//! The gateway's decisions, without a socket: each test builds a packet as the
//! codec would decode it and asks what to answer.

use std::sync::Arc;

use bytes::Bytes;
use serverless_websockets_core::policy::PolicyDocument;

use super::*;
use crate::gateway::packet::Will;

fn arns() -> IotArns {
    IotArns::new("aws", "us-east-1", "000000000000").unwrap()
}

/// An identity whose one policy allows `actions` on `resources` (IoT resource
/// names after `arn:aws:iot:us-east-1:000000000000:`).
fn identity(statements: &[(&str, &str)]) -> Identity {
    let statements: Vec<_> = statements
        .iter()
        .map(|(action, resource)| {
            serde_json::json!({"Effect": "Allow", "Action": action, "Resource": format!("arn:aws:iot:us-east-1:000000000000:{resource}")})
        })
        .collect();
    let policy = serde_json::json!({"Version": "2012-10-17", "Statement": statements}).to_string();
    Identity {
        access_key_id: "AKIATEST".into(),
        secret_access_key: "secret".into(),
        session_token: None,
        expiration: None,
        arn: "arn:aws:iam::000000000000:user/test".into(),
        user_id: "AIDATEST".into(),
        account: "000000000000".into(),
        policies: Arc::from(vec![PolicyDocument::parse(&policy).unwrap()]),
        session_policies: None,
        source_identity: None,
        variables: None,
        issued_at: None,
        role_since: None,
    }
}

fn alice() -> Identity {
    identity(&[
        ("iot:Connect", "client/alice"),
        ("iot:Subscribe", "topicfilter/allowed/alice"),
        ("iot:Receive", "topic/allowed/alice"),
        ("iot:Publish", "topic/from/alice"),
    ])
}

fn connect_packet(client_id: &str) -> ConnectIn {
    ConnectIn {
        client_id: client_id.into(),
        keep_alive: 60,
        clean_start: true,
        session_expiry: 0,
        max_packet_size: None,
        receive_maximum: None,
        will: None,
        auth_method: false,
        login: None,
    }
}

fn filter(path: &str) -> FilterIn {
    FilterIn {
        path: path.into(),
        qos: QoS::AtLeastOnce,
        no_retained: false,
    }
}

fn publish_packet(qos: Option<QoS>, retain: bool) -> PublishIn {
    PublishIn {
        topic: String::new(),
        alias: None,
        qos,
        retain,
        pkid: 1,
        payload: Bytes::from_static(b"hi"),
        properties: None,
        expiry: None,
    }
}

#[test]
fn keep_alive_is_clamped_like_iot_core() {
    let min = Duration::from_secs(30);
    assert_eq!(effective_keep_alive(0, min), MAX_KEEP_ALIVE);
    assert_eq!(effective_keep_alive(5, min), min);
    assert_eq!(effective_keep_alive(60, min), Duration::from_secs(60));
    assert_eq!(effective_keep_alive(1200, min), MAX_KEEP_ALIVE);
    assert_eq!(effective_keep_alive(4000, min), MAX_KEEP_ALIVE);
    assert_eq!(effective_keep_alive(1, Duration::from_secs(1)), Duration::from_secs(1));
}

#[test]
fn a_connect_for_its_own_client_id_is_accepted_with_a_clean_session() {
    let terms = connect(
        &connect_packet("alice"),
        Version::V4,
        &alice(),
        &arns(),
        &GatewayOptions::default(),
    )
    .unwrap();
    assert_eq!(terms.keep_alive, Duration::from_secs(60));
    assert_eq!(terms.session_expiry, Duration::ZERO);
    assert!(!terms.session.persistent);
    assert_eq!(terms.session.receive_maximum, MAX_INFLIGHT);
    assert_eq!(terms.announced.keep_alive, None);
}

#[test]
fn a_connect_for_another_client_id_is_refused_and_only_mqtt5_or_the_opt_in_gets_a_connack() {
    let options = GatewayOptions::default();
    let refused = connect(&connect_packet("bob"), Version::V4, &alice(), &arns(), &options).unwrap_err();
    assert_eq!(refused.code, ConnectCode::NotAuthorized);
    assert!(!refused.reply, "IoT closes a 3.1.1 connection without CONNACK");
    let refused = connect(&connect_packet("bob"), Version::V5, &alice(), &arns(), &options).unwrap_err();
    assert!(refused.reply, "MQTT 5 clients get their reason code");
    let opted_in = GatewayOptions {
        connect_deny: DenyMode::Reply,
        ..GatewayOptions::default()
    };
    assert!(
        connect(&connect_packet("bob"), Version::V4, &alice(), &arns(), &opted_in)
            .unwrap_err()
            .reply
    );
}

#[test]
fn an_empty_or_overlong_client_id_and_enhanced_authentication_are_refused_with_their_codes() {
    let options = GatewayOptions::default();
    let code = |packet: &ConnectIn| {
        connect(packet, Version::V5, &alice(), &arns(), &options)
            .unwrap_err()
            .code
    };
    assert_eq!(code(&connect_packet("")), ConnectCode::ClientIdNotValid);
    assert_eq!(code(&connect_packet(&"a".repeat(129))), ConnectCode::ClientIdNotValid);
    let mut auth = connect_packet("alice");
    auth.auth_method = true;
    assert_eq!(code(&auth), ConnectCode::BadAuthenticationMethod);
}

#[test]
fn a_will_is_authorized_at_connect_as_a_publish_and_a_retained_one_as_a_retained_publish() {
    let options = GatewayOptions::default();
    let with_will = |topic: &str, qos: QoS, retain: bool| {
        let mut packet = connect_packet("alice");
        packet.will = Some(Will {
            message: Message::new(topic.into(), Bytes::from_static(b"gone"), qos, retain),
            delay: Duration::ZERO,
        });
        connect(&packet, Version::V5, &alice(), &arns(), &options)
            .map(|_| ())
            .map_err(|r| r.code)
    };
    assert_eq!(with_will("from/alice", QoS::AtMostOnce, false), Ok(()));
    assert_eq!(
        with_will("from/alice", QoS::AtMostOnce, true),
        Err(ConnectCode::NotAuthorized)
    );
    assert_eq!(
        with_will("from/bob", QoS::AtMostOnce, false),
        Err(ConnectCode::NotAuthorized)
    );
    assert_eq!(
        with_will("from/alice", QoS::ExactlyOnce, false),
        Err(ConnectCode::QoSNotSupported)
    );
    assert_eq!(
        with_will("from/#", QoS::AtMostOnce, false),
        Err(ConnectCode::TopicNameInvalid)
    );
}

#[test]
fn a_persistent_session_lives_for_the_gateway_expiry_or_the_mqtt5_interval_capped_and_announced() {
    let options = GatewayOptions::default();
    let mut persistent = connect_packet("alice");
    persistent.clean_start = false;
    let terms = connect(&persistent, Version::V4, &alice(), &arns(), &options).unwrap();
    assert_eq!(terms.session_expiry, options.session_expiry);
    assert!(terms.session.persistent);

    persistent.session_expiry = u32::MAX;
    let terms = connect(&persistent, Version::V5, &alice(), &arns(), &options).unwrap();
    assert_eq!(terms.session_expiry, options.session_expiry);
    assert_eq!(terms.announced.session_expiry, Some(3600));

    persistent.session_expiry = 120;
    let terms = connect(&persistent, Version::V5, &alice(), &arns(), &options).unwrap();
    assert_eq!(terms.session_expiry, Duration::from_secs(120));
    assert_eq!(terms.announced.session_expiry, None);
}

#[test]
fn a_clamped_keep_alive_and_a_smaller_receive_maximum_are_taken_into_the_terms() {
    let mut packet = connect_packet("alice");
    packet.keep_alive = 5;
    packet.receive_maximum = Some(10);
    let terms = connect(&packet, Version::V5, &alice(), &arns(), &GatewayOptions::default()).unwrap();
    assert_eq!(terms.announced.keep_alive, Some(30));
    assert_eq!(terms.session.receive_maximum, 10);
}

#[test]
fn a_subscribe_grants_the_own_topic_and_answers_each_other_filter_with_its_code() {
    let options = GatewayOptions {
        subscribe_deny: DenyMode::Reply,
        ..GatewayOptions::default()
    };
    let filters = [filter("allowed/alice"), filter("allowed/bob"), filter("a/#/b")];
    let answer = subscribe(
        &filters,
        false,
        Version::V4,
        &alice(),
        &arns(),
        &options,
        HashSet::new(),
    )
    .unwrap();
    assert_eq!(
        answer.codes,
        [
            SubCode::Granted(QoS::AtLeastOnce),
            SubCode::NotAuthorized,
            SubCode::FilterInvalid
        ]
    );
    assert_eq!(answer.granted.len(), 1);
    assert!(answer.granted[0].send_retained);
}

#[test]
fn an_unauthorized_filter_closes_a_311_connection_as_iot_does_but_not_an_mqtt5_one() {
    let options = GatewayOptions::default();
    let filters = [filter("allowed/bob")];
    let closed = subscribe(
        &filters,
        false,
        Version::V4,
        &alice(),
        &arns(),
        &options,
        HashSet::new(),
    )
    .unwrap_err();
    assert_eq!(closed.reason, DisconnectReason::AuthError);
    let answer = subscribe(
        &filters,
        false,
        Version::V5,
        &alice(),
        &arns(),
        &options,
        HashSet::new(),
    )
    .unwrap();
    assert_eq!(answer.codes, [SubCode::NotAuthorized]);
}

#[test]
fn the_fifty_first_subscription_is_refused_but_renewing_a_held_filter_is_not() {
    let everything = identity(&[("iot:Subscribe", "*"), ("iot:Receive", "*")]);
    let held: HashSet<String> = (0..MAX_SUBSCRIPTIONS).map(|n| format!("t/{n}")).collect();
    let filters = [filter("t/new"), filter("t/7")];
    let answer = subscribe(
        &filters,
        false,
        Version::V5,
        &everything,
        &arns(),
        &GatewayOptions::default(),
        held,
    )
    .unwrap();
    assert_eq!(
        answer.codes,
        [SubCode::QuotaExceeded, SubCode::Granted(QoS::AtLeastOnce)]
    );
}

#[test]
fn a_subscribe_with_too_many_filters_or_a_subscription_identifier_ends_the_connection() {
    let options = GatewayOptions::default();
    let nine: Vec<_> = (0..9).map(|n| filter(&format!("allowed/{n}"))).collect();
    let closed = subscribe(&nine, false, Version::V5, &alice(), &arns(), &options, HashSet::new()).unwrap_err();
    assert_eq!(closed.code, Some(Code5::ProtocolError));
    let closed = subscribe(
        &[filter("allowed/alice")],
        true,
        Version::V5,
        &alice(),
        &arns(),
        &options,
        HashSet::new(),
    )
    .unwrap_err();
    assert_eq!(closed.code, Some(Code5::SubscriptionIdentifiersNotSupported));
}

#[test]
fn no_retained_message_goes_to_a_wildcard_a_shared_subscription_or_retain_handling_two() {
    let everything = identity(&[("iot:Subscribe", "*"), ("iot:Receive", "*")]);
    let mut no_retained = filter("a/b");
    no_retained.no_retained = true;
    let filters = [filter("a/+"), filter("$share/g/a/b"), no_retained, filter("a/b")];
    let answer = subscribe(
        &filters,
        false,
        Version::V5,
        &everything,
        &arns(),
        &GatewayOptions::default(),
        HashSet::new(),
    )
    .unwrap();
    let sends: Vec<_> = answer.granted.iter().map(|g| g.send_retained).collect();
    assert_eq!(sends, [false, false, false, true]);
}

/// Decides a PUBLISH from alice to `topic`.
fn alice_publishes(qos: Option<QoS>, retain: bool, topic: &str, version: Version) -> Result<QoS, PublishRefusal> {
    publish(
        &publish_packet(qos, retain),
        topic,
        version,
        &alice(),
        &arns(),
        &Limits::default(),
    )
}

#[test]
fn a_refused_mqtt5_qos1_publish_is_a_negative_puback_and_anything_else_refused_closes() {
    let (qos0, qos1) = (Some(QoS::AtMostOnce), Some(QoS::AtLeastOnce));
    assert_eq!(
        alice_publishes(qos1, false, "from/alice", Version::V5),
        Ok(QoS::AtLeastOnce)
    );
    let nack = alice_publishes(qos1, false, "from/bob", Version::V5);
    assert!(matches!(nack, Err(PublishRefusal::NegativeAck(_))));
    let closed = alice_publishes(qos0, false, "from/bob", Version::V5);
    let auth_error = DisconnectReason::AuthError;
    assert!(matches!(closed, Err(PublishRefusal::Close(Close { reason, .. })) if reason == auth_error));
    let retained = alice_publishes(qos0, true, "from/alice", Version::V4);
    assert!(
        matches!(retained, Err(PublishRefusal::Close(_))),
        "retaining needs iot:RetainPublish"
    );
    let qos2 = alice_publishes(None, false, "from/alice", Version::V4);
    assert!(matches!(
        qos2,
        Err(PublishRefusal::Close(Close {
            code: Some(Code5::QoSNotSupported),
            ..
        }))
    ));
    let reserved = alice_publishes(qos0, false, "$aws/x", Version::V4);
    assert!(matches!(
        reserved,
        Err(PublishRefusal::Close(Close {
            code: Some(Code5::TopicNameInvalid),
            ..
        }))
    ));
}

#[test]
fn topic_aliases_run_from_one_to_iots_maximum() {
    assert!(!alias_in_range(0));
    assert!(alias_in_range(1));
    assert!(alias_in_range(TOPIC_ALIAS_MAX));
    assert!(!alias_in_range(TOPIC_ALIAS_MAX + 1));
}

#[test]
fn a_subscribe_asking_for_qos_2_ends_the_connection_without_suback_unless_relaxed() {
    let mut wanted = filter("allowed/alice");
    wanted.qos = QoS::ExactlyOnce;
    let mut options = GatewayOptions::default();
    for version in [Version::V4, Version::V5] {
        let closed = subscribe(
            std::slice::from_ref(&wanted),
            false,
            version,
            &alice(),
            &arns(),
            &options,
            HashSet::new(),
        )
        .unwrap_err();
        assert_eq!(closed.code, Some(Code5::QoSNotSupported));
        assert!(closed.why.contains("QoS 2"), "{}", closed.why);
    }
    options.limits.grant_qos2_as_qos1 = true;
    let answer = subscribe(
        &[wanted],
        false,
        Version::V4,
        &alice(),
        &arns(),
        &options,
        HashSet::new(),
    )
    .unwrap();
    assert_eq!(answer.codes, [SubCode::Granted(QoS::AtLeastOnce)]);
}

#[test]
fn an_empty_client_id_is_assigned_a_gen_id_for_mqtt_5_and_for_a_clean_3_1_1_session() {
    let assigned = client_id("", false, Version::V5).unwrap().unwrap();
    assert!(assigned.starts_with("$GEN/") && assigned.len() == 5 + 36, "{assigned}");
    assert_ne!(client_id("", true, Version::V5).unwrap().unwrap(), assigned);
    assert!(client_id("", true, Version::V4).unwrap().is_some());
    let (code, _) = client_id("", false, Version::V4).unwrap_err();
    assert_eq!(code, ConnectCode::ClientIdNotValid);
    assert_eq!(client_id("alice", false, Version::V4), Ok(None));
}

#[test]
fn a_client_may_not_choose_an_assigned_client_id() {
    for version in [Version::V4, Version::V5] {
        let (code, why) = client_id("$GEN/8b42676c-3300-4b4d-8c4f-9b75a17f7999", true, version).unwrap_err();
        assert_eq!(code, ConnectCode::ClientIdNotValid);
        assert!(why.contains("assigned by the server"), "{why}");
    }
}
