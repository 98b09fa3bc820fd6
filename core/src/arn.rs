//! ARNs, built and checked in one place: the IoT resources a policy names
//! (`arn:<partition>:iot:<region>:<account>:client/…`, `…:topic/…`,
//! `…:topicfilter/…`) and the IAM role the vending service assumes.
//!
//! The IoT ARNs take their partition and account from the role ARN, so there is
//! one account setting, not two to keep in step.

/// Why an ARN or one of its parts was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArnError {
    #[error("partition {0:?} is not a valid AWS partition name")]
    Partition(String),
    #[error("region {0:?} is not a valid AWS region name")]
    Region(String),
    #[error("account {0:?} is not a 12-digit AWS account ID")]
    Account(String),
    #[error("{0:?} is not an IAM role ARN (arn:<partition>:iam::<account>:role/<name>)")]
    Role(String),
}

/// A partition or region name: lowercase letters, digits and `-`.
fn is_aws_word(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
}

/// A 12-digit AWS account ID.
pub fn is_account_id(value: &str) -> bool {
    value.len() == 12 && value.bytes().all(|c| c.is_ascii_digit())
}

/// Where IoT resources live: `arn:<partition>:iot:<region>:<account>:…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IotArns {
    partition: String,
    region: String,
    account: String,
}

impl IotArns {
    pub fn new(partition: &str, region: &str, account: &str) -> Result<Self, ArnError> {
        if !is_aws_word(partition) {
            return Err(ArnError::Partition(partition.to_owned()));
        }
        if !is_aws_word(region) {
            return Err(ArnError::Region(region.to_owned()));
        }
        if !is_account_id(account) {
            return Err(ArnError::Account(account.to_owned()));
        }
        Ok(Self {
            partition: partition.to_owned(),
            region: region.to_owned(),
            account: account.to_owned(),
        })
    }

    /// The IoT ARNs of `role`'s partition and account in `region`.
    pub fn for_role(role: &RoleArn, region: &str) -> Result<Self, ArnError> {
        Self::new(role.partition(), region, role.account())
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn account(&self) -> &str {
        &self.account
    }

    fn prefix(&self) -> String {
        format!("arn:{}:iot:{}:{}", self.partition, self.region, self.account)
    }

    pub fn client(&self, client_id: &str) -> String {
        format!("{}:client/{client_id}", self.prefix())
    }

    pub fn topic_filter(&self, filter: &str) -> String {
        format!("{}:topicfilter/{filter}", self.prefix())
    }

    pub fn topic(&self, topic: &str) -> String {
        format!("{}:topic/{topic}", self.prefix())
    }
}

/// An IAM role ARN, `arn:<partition>:iam::<account>:role/<path/name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleArn {
    arn: String,
    partition: String,
    account: String,
}

impl RoleArn {
    pub fn parse(value: &str) -> Result<Self, ArnError> {
        let refused = || ArnError::Role(value.to_owned());
        let mut parts = value.splitn(6, ':');
        let mut next = || parts.next().ok_or_else(refused);
        let (arn, partition, service, region, account, resource) =
            (next()?, next()?, next()?, next()?, next()?, next()?);
        let name = resource.strip_prefix("role/").ok_or_else(refused)?;
        let ok = arn == "arn"
            && is_aws_word(partition)
            && service == "iam"
            && region.is_empty()
            && is_account_id(account)
            && !name.is_empty()
            && !name.ends_with('/')
            && name
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&c));
        if !ok {
            return Err(refused());
        }
        Ok(Self {
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

    /// The role's name: the last segment of its path (what IAM's role-policy
    /// operations take as `RoleName`).
    pub fn name(&self) -> &str {
        self.arn.rsplit('/').next().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns_give_the_iot_arns_their_partition_and_account() {
        let role = RoleArn::parse("arn:aws-cn:iam::123456789012:role/path/Client").unwrap();
        let arns = IotArns::for_role(&role, "cn-north-1").unwrap();
        assert_eq!(arns.client("c1"), "arn:aws-cn:iot:cn-north-1:123456789012:client/c1");
        assert_eq!(role.name(), "Client");
        assert_eq!(
            arns.topic_filter("a/#"),
            "arn:aws-cn:iot:cn-north-1:123456789012:topicfilter/a/#"
        );
    }

    #[test]
    fn malformed_role_arns_and_arn_parts_are_refused() {
        for bad in [
            "",
            "arn:aws:iam::12345678901:role/x",
            "arn:aws:iam:us-east-1:123456789012:role/x",
            "arn:aws:sts::123456789012:role/x",
            "arn:aws:iam::123456789012:user/x",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/path/",
            "arn:AWS:iam::123456789012:role/x",
            "arn:aws:iam::123456789012:role/a b",
        ] {
            assert_eq!(RoleArn::parse(bad), Err(ArnError::Role(bad.into())), "{bad}");
        }
        assert!(matches!(
            IotArns::new("aws", "us east", "123456789012"),
            Err(ArnError::Region(_))
        ));
        assert!(matches!(
            IotArns::new("aws", "us-east-1", "1234"),
            Err(ArnError::Account(_))
        ));
    }
}
