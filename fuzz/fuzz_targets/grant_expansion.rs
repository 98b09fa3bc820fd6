//! Grant-template expansion with arbitrary templates and subjects. Property: the
//! session policy vended for (client, sub) never allows anything on a topic the
//! templates give another client or another subject, nor Connect as another
//! client — and nothing panics on the way; and whatever `sub` the rule accepts,
//! the policy fits when `check_fits` said it would (odd inputs use the default
//! rule, even ones the broadest: 128 bytes of Latin-1).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serverless_websockets_core::client_id::ClientId;
use serverless_websockets_core::grants::{GrantTemplates, MAX_VARIABLE_BYTES, SubCharset, SubRule};
use serverless_websockets_core::policy::{Decision, PolicyDocument, evaluate, session_policy};
use serverless_websockets_core::arn::IotArns;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // subscribe templates \0 publish templates \0 sub \0 other sub
    let mut parts = text.split('\0');
    let (subscribe, publish) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (sub, other_sub) = (parts.next().unwrap_or("alice"), parts.next().unwrap_or("bob"));
    let Ok(mut templates) = GrantTemplates::parse(subscribe, publish) else {
        return;
    };
    if data.len() % 2 == 0 {
        templates.sub_rule = SubRule {
            max_bytes: MAX_VARIABLE_BYTES,
            charset: SubCharset::Latin1,
        };
    }
    let arns = IotArns::new("aws", "us-east-1", "123456789012").unwrap();
    if templates.check_fits(&arns).is_err() {
        return; // refused at start-up
    }
    let (own, other) = (ClientId::generate(), ClientId::generate());
    let Ok(grants) = templates.expand(&own, Some(sub)) else {
        return;
    };
    let policy = session_policy(&arns, &own, &grants).expect("fits, as check_fits promised");
    let policy = PolicyDocument::parse(&policy).expect("the builder writes valid policies");
    let policies = std::slice::from_ref(&policy);
    assert_eq!(
        evaluate(policies, "iot:Connect", &arns.client(other.as_str())),
        Decision::NotApplicable
    );
    if sub == other_sub {
        return;
    }
    let Ok(theirs) = templates.expand(&other, Some(other_sub)) else {
        return;
    };
    let ours: Vec<&str> = grants
        .subscribe
        .iter()
        .chain(&grants.publish)
        .map(|f| f.as_str())
        .collect();
    for filter in theirs.subscribe.iter().chain(&theirs.publish) {
        if ours.contains(&filter.as_str()) {
            continue; // shared by construction: a template without variables
        }
        for (action, resource) in [
            ("iot:Subscribe", arns.topic_filter(filter.as_str())),
            ("iot:Receive", arns.topic(filter.as_str())),
            ("iot:Publish", arns.topic(filter.as_str())),
        ] {
            // An operator's wildcard template (broadcast/#) legitimately overlaps.
            if templates.warnings().is_empty() {
                assert_eq!(
                    evaluate(policies, action, &resource),
                    Decision::NotApplicable,
                    "{action} {resource}"
                );
            }
        }
    }
});
