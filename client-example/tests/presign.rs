//! `presign` against URLs botocore made for the same inputs
//! (`tests/data/make_presign_vectors.py` regenerates them).

use std::time::SystemTime;

use aws_smithy_types::date_time::{DateTime, Format};
use client_example::{Credentials, presign};

#[test]
fn presigned_urls_are_byte_identical_to_botocores() {
    let data: serde_json::Value = serde_json::from_str(include_str!("data/botocore-presign.json")).unwrap();
    let vectors = data["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 3);
    for vector in vectors {
        let text = |key: &str| vector[key].as_str().unwrap().to_owned();
        let credentials = Credentials {
            access_key_id: text("access_key_id"),
            secret_access_key: text("secret_access_key"),
            session_token: text("session_token"),
            expiration: "2030-01-01T00:00:00Z".into(),
        };
        let time = SystemTime::try_from(DateTime::from_str(&text("time"), Format::DateTime).unwrap()).unwrap();
        let url = presign(&text("endpoint"), &text("region"), &credentials, time).unwrap();
        assert_eq!(url, text("expected"), "for {}", text("endpoint"));
    }
}
