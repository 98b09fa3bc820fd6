//! What more than one fuzz target needs: an identity allowed everything.

use std::sync::Arc;

use serverless_websockets_local::identity::Identity;
use serverless_websockets_core::policy::PolicyDocument;

pub fn allow_all() -> PolicyDocument {
    PolicyDocument::parse(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#)
        .unwrap()
}

/// Long-term credentials of account 000000000000 whose policy allows every action.
pub fn admin() -> Identity {
    Identity {
        access_key_id: "AKIAFUZZ".into(),
        secret_access_key: "s".into(),
        session_token: None,
        expiration: None,
        arn: "arn:aws:iam::000000000000:user/fuzz".into(),
        user_id: "AIDAFUZZ".into(),
        account: "000000000000".into(),
        policies: Arc::from(vec![allow_all()]),
        session_policies: None,
        source_identity: None,
        variables: None,
        issued_at: None,
        role_since: None,
    }
}
