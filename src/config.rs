//! The vending service's settings, read once at start-up from environment variables.
//!
//! A missing or malformed value stops start-up with an error that names the variable
//! and says what it expects; nothing is re-read per request. The IoT resource ARNs
//! take their partition and account from `CLIENT_ROLE_ARN`, so there is no separate
//! account setting to get wrong.

use std::time::Duration;

use crate::policy::IotArns;
use crate::presign::IotEndpoint;
use crate::topic::Topic;

/// STS accepts 900 s at least; role chaining (a Lambda role assuming the client
/// role) caps sessions at 3600 s.
pub const MIN_DURATION_SECS: u64 = 900;
pub const MAX_DURATION_SECS: u64 = 3600;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable} {problem}: expected {expected}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
    pub expected: &'static str,
}

/// An IAM role ARN, `arn:<partition>:iam::<account>:role/<path/name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleArn {
    arn: String,
    partition: String,
    account: String,
}

impl RoleArn {
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.splitn(6, ':');
        let (arn, partition, service, region, account, resource) = (
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
        );
        let name = resource.strip_prefix("role/")?;
        let ok = arn == "arn"
            && !partition.is_empty()
            && service == "iam"
            && region.is_empty()
            && account.len() == 12
            && account.bytes().all(|c| c.is_ascii_digit())
            && !name.is_empty()
            && name
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&c));
        ok.then(|| Self {
            arn: value.to_owned(),
            partition: partition.to_owned(),
            account: account.to_owned(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.arn
    }

    pub fn partition(&self) -> &str {
        &self.partition
    }

    pub fn account(&self) -> &str {
        &self.account
    }
}

/// Which browser origins may call the API (CORS).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CorsOrigins {
    /// No cross-origin browser access (the default).
    #[default]
    None,
    /// `*`: any web page may fetch credentials.
    Any,
    /// Exact origins such as `https://app.example.com`.
    List(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub client_role_arn: RoleArn,
    pub region: String,
    /// `arn:<partition>:iot:<region>:<account>`, from the role ARN and the region.
    pub iot_arns: IotArns,
    pub iot_endpoint: IotEndpoint,
    pub credential_duration: Duration,
    pub topic_prefix: Topic,
    pub cors_allow_origins: CorsOrigins,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let missing = |variable, expected| ConfigError {
            variable,
            problem: "is not set".into(),
            expected,
        };
        let malformed = |variable, value: &str, expected| ConfigError {
            variable,
            problem: format!("is {value:?}"),
            expected,
        };

        const ROLE: &str = "an IAM role ARN such as arn:aws:iam::123456789012:role/ClientRole";
        let role = get("CLIENT_ROLE_ARN").ok_or_else(|| missing("CLIENT_ROLE_ARN", ROLE))?;
        let client_role_arn = RoleArn::parse(&role).ok_or_else(|| malformed("CLIENT_ROLE_ARN", &role, ROLE))?;

        const REGION: &str = "an AWS region such as us-east-1";
        let region = get("AWS_REGION")
            .or_else(|| get("AWS_DEFAULT_REGION"))
            .ok_or_else(|| missing("AWS_REGION", REGION))?;
        let iot_arns = IotArns::new(client_role_arn.partition(), &region, client_role_arn.account())
            .map_err(|_| malformed("AWS_REGION", &region, REGION))?;

        const ENDPOINT: &str =
            "the IoT data endpoint host (aws iot describe-endpoint --endpoint-type iot:Data-ATS) or a wss:// URL";
        let endpoint = get("IOT_ENDPOINT").ok_or_else(|| missing("IOT_ENDPOINT", ENDPOINT))?;
        let iot_endpoint = IotEndpoint::parse(&endpoint).map_err(|_| malformed("IOT_ENDPOINT", &endpoint, ENDPOINT))?;

        const DURATION: &str = "a whole number of seconds from 900 to 3600";
        let credential_duration = match get("CREDENTIAL_DURATION_SECONDS") {
            None => Duration::from_secs(MAX_DURATION_SECS),
            Some(v) => match v.parse::<u64>() {
                Ok(secs) if (MIN_DURATION_SECS..=MAX_DURATION_SECS).contains(&secs) => Duration::from_secs(secs),
                _ => return Err(malformed("CREDENTIAL_DURATION_SECONDS", &v, DURATION)),
            },
        };

        const PREFIX: &str = "one or more topic levels without wildcards, e.g. allowed or app/push";
        let topic_prefix = match get("TOPIC_PREFIX") {
            None => Topic::parse("allowed").expect("the default prefix is valid"),
            Some(v) => Topic::parse(&v).map_err(|_| malformed("TOPIC_PREFIX", &v, PREFIX))?,
        };

        const ORIGINS: &str = "a comma-separated list of origins such as https://app.example.com, or *";
        let cors_allow_origins = match get("CORS_ALLOW_ORIGINS") {
            None => CorsOrigins::None,
            Some(v) if v == "*" => CorsOrigins::Any,
            Some(v) => {
                let origins: Vec<String> = v
                    .split(',')
                    .map(|o| o.trim().trim_end_matches('/').to_owned())
                    .collect();
                if !origins.iter().all(|o| is_origin(o)) {
                    return Err(malformed("CORS_ALLOW_ORIGINS", &v, ORIGINS));
                }
                CorsOrigins::List(origins)
            }
        };

        Ok(Self {
            client_role_arn,
            region,
            iot_arns,
            iot_endpoint,
            credential_duration,
            topic_prefix,
            cors_allow_origins,
        })
    }
}

/// `scheme://host[:port]` with nothing after it, as browsers send in `Origin`.
fn is_origin(value: &str) -> bool {
    match url::Url::parse(value) {
        Ok(url) => {
            matches!(url.scheme(), "http" | "https")
                && url.host_str().is_some()
                && url.path() == "/"
                && url.query().is_none()
                && url.username().is_empty()
                && !value.ends_with('/')
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    const GOOD: &[(&str, &str)] = &[
        ("CLIENT_ROLE_ARN", "arn:aws:iam::123456789012:role/ClientRole"),
        ("AWS_REGION", "eu-west-1"),
        ("IOT_ENDPOINT", "abc-ats.iot.eu-west-1.amazonaws.com"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut vars: Vec<_> = GOOD
            .iter()
            .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
            .copied()
            .collect();
        vars.extend(extra.iter().filter(|(_, v)| !v.is_empty()));
        vars
    }

    #[test]
    fn defaults_apply_when_only_the_required_variables_are_set() {
        let config = read(GOOD).unwrap();
        assert_eq!(config.credential_duration, Duration::from_secs(3600));
        assert_eq!(config.topic_prefix.as_str(), "allowed");
        assert_eq!(config.cors_allow_origins, CorsOrigins::None);
        assert_eq!(
            config.iot_arns.client("x"),
            "arn:aws:iot:eu-west-1:123456789012:client/x"
        );
    }

    #[test]
    fn each_missing_required_variable_is_named() {
        for name in ["CLIENT_ROLE_ARN", "AWS_REGION", "IOT_ENDPOINT"] {
            let err = read(&with(&[(name, "")])).unwrap_err();
            assert_eq!(err.variable, name);
            assert!(
                err.to_string().starts_with(&format!("{name} is not set: expected ")),
                "{err}"
            );
        }
    }

    #[test]
    fn malformed_values_are_named_with_what_was_expected() {
        let cases: &[(&str, &str)] = &[
            ("CLIENT_ROLE_ARN", "arn:aws:iam::123:role/x"),
            ("CLIENT_ROLE_ARN", "arn:aws:iam::123456789012:user/x"),
            ("AWS_REGION", "Not A Region"),
            ("IOT_ENDPOINT", "ftp://x"),
            ("CREDENTIAL_DURATION_SECONDS", "899"),
            ("CREDENTIAL_DURATION_SECONDS", "3601"),
            ("CREDENTIAL_DURATION_SECONDS", "an hour"),
            ("TOPIC_PREFIX", "allowed/#"),
            ("TOPIC_PREFIX", "a//b"),
            ("CORS_ALLOW_ORIGINS", "https://a.example/path"),
            ("CORS_ALLOW_ORIGINS", "app.example.com"),
        ];
        for &(name, value) in cases {
            let err = read(&with(&[(name, value)])).unwrap_err();
            assert_eq!(err.variable, name, "{value:?}");
            assert!(err.to_string().contains(&format!("{value:?}")), "{err}");
        }
    }

    #[test]
    fn optional_variables_are_honoured() {
        let config = read(&with(&[
            ("CREDENTIAL_DURATION_SECONDS", "900"),
            ("TOPIC_PREFIX", "app/push"),
            ("CORS_ALLOW_ORIGINS", "https://a.example, http://localhost:5173/"),
            ("IOT_ENDPOINT", "ws://127.0.0.1:8443"),
        ]))
        .unwrap();
        assert_eq!(config.credential_duration, Duration::from_secs(900));
        assert_eq!(config.topic_prefix.as_str(), "app/push");
        assert_eq!(
            config.cors_allow_origins,
            CorsOrigins::List(vec!["https://a.example".into(), "http://localhost:5173".into()])
        );
        assert_eq!(config.iot_endpoint.websocket_base(), "ws://127.0.0.1:8443");
        assert_eq!(
            read(&with(&[("CORS_ALLOW_ORIGINS", "*")])).unwrap().cors_allow_origins,
            CorsOrigins::Any
        );
    }

    #[test]
    fn the_region_falls_back_to_aws_default_region() {
        let mut vars = with(&[("AWS_REGION", "")]);
        vars.push(("AWS_DEFAULT_REGION", "ap-south-1"));
        assert_eq!(read(&vars).unwrap().region, "ap-south-1");
    }
}
