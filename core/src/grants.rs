//! Grant templates: which topics a vended credential may subscribe to and publish
//! to, configured by the operator with the variables `{clientId}` and `{sub}`
//! (e.g. `allowed/{clientId},users/{sub},broadcast/all`).
//!
//! A variable's value is validated as one whole topic level — no `/`, `*`, `?`, `+`,
//! `#`, `$`, whitespace or control characters, at most [`MAX_VARIABLE_BYTES`] — and
//! refused otherwise, never escaped: a `sub` of `a/#` must not become a grant on
//! someone else's topics. MQTT wildcards are allowed only where the operator wrote
//! them literally as a whole level (`broadcast/#`, `rooms/+/chat`), and such
//! templates are reported by [`GrantTemplates::warnings`] at start-up.
//!
//! Which `sub` values are accepted is the operator's [`SubRule`]: at most
//! `max_bytes` (64 by default) of a character set (by default the characters real
//! identity providers use in subjects, none of which JSON escapes). A `sub`
//! outside it is refused per request (`403 InvalidSubject`).
//!
//! [`GrantTemplates::check_fits`] builds the largest possible session policy (every
//! variable at the longest and most expensive value the rule accepts) so that too
//! many grants stop start-up instead of failing at STS on some request.

use crate::arn::IotArns;
use crate::claims::{ClaimValues, Narrowing};
use crate::client_id::ClientId;
use crate::policy::{Grants, SessionPolicyError, session_policy};
use crate::quota::MAX_TOPIC_BYTES;
use crate::topic::{NameError, TopicFilter, check_level};

/// The longest `{sub}` value any rule accepts into a topic.
pub const MAX_VARIABLE_BYTES: usize = 128;
/// The longest `{sub}` the default rule accepts: Cognito's subjects are 36
/// characters (UUIDs), Auth0's ~30 (`auth0|5f7c8ec7c33c6c004bbafe82`), Entra ID's 43.
pub const DEFAULT_SUB_MAX_BYTES: usize = 64;

/// Which characters a `sub` may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubCharset {
    /// ASCII letters and digits and `- _ . @ | : = ~`: what identity providers
    /// put in subjects, one policy character each (JSON escapes none of them).
    #[default]
    Safe,
    /// Any character STS session policies carry (U+0020 to U+00FF) that may be
    /// a topic level: `"` and `\` take two policy characters each.
    Latin1,
}

impl SubCharset {
    fn allows(self, c: char) -> bool {
        match self {
            Self::Safe => c.is_ascii_alphanumeric() || "-_.@|:=~".contains(c),
            Self::Latin1 => matches!(c, '\u{20}'..='\u{FF}'),
        }
    }

    /// The accepted character that takes the most policy characters.
    fn most_expensive(self) -> char {
        match self {
            Self::Safe => 'x',
            Self::Latin1 => '"',
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Safe => "safe",
            Self::Latin1 => "latin1",
        }
    }
}

/// Which `sub` values a deployment accepts into topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubRule {
    /// At most this many bytes (1 to [`MAX_VARIABLE_BYTES`]).
    pub max_bytes: usize,
    pub charset: SubCharset,
}

impl Default for SubRule {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_SUB_MAX_BYTES,
            charset: SubCharset::Safe,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("grant template {template:?}: {problem}")]
    Template { template: String, problem: String },
    #[error("no subscribe grant is configured; at least one is needed (e.g. allowed/{{clientId}})")]
    NoSubscribe,
    #[error("the grants need {needed} but the token has no usable subject")]
    MissingSub { needed: &'static str },
    #[error("the token's sub cannot be used in a topic: {0}")]
    BadSub(NameError),
    #[error("the token's sub contains {found:?}, which SUB_CHARACTERS={charset} does not accept")]
    SubCharset { found: char, charset: &'static str },
    #[error("the token's sub has {bytes} bytes, more than SUB_MAX_BYTES={max}")]
    SubTooLong { bytes: usize, max: usize },
    #[error("the expanded topic {topic:?} is not valid: {problem}")]
    Expanded { topic: String, problem: NameError },
    #[error("with every variable at its longest the session policy would be too large: {0}")]
    TooLarge(SessionPolicyError),
    #[error("the token's claim {claim:?} cannot be used in a topic: {problem}")]
    BadClaim { claim: String, problem: String },
    #[error("the token's claim {claim:?} does not carry {value:?}")]
    ClaimNotInToken { claim: String, value: String },
    #[error("no grant template uses the claim {claim:?}")]
    UnknownClaim { claim: String },
    #[error("the template {template:?} would expand to {count} grants; at most {max} are made", max = crate::claims::MAX_EXPANSIONS)]
    TooManyGrants { template: String, count: usize },
    #[error("the grants need a session policy of {len} characters, over STS's {max}", max = crate::sts::MAX_SESSION_POLICY_CHARS)]
    PolicyTooLarge { len: usize },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    ClientId,
    Sub,
    /// `{claims.NAME}`: one grant per value of the token's claim.
    Claim(String),
}

/// One parsed template such as `users/{sub}` or `broadcast/#`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantTemplate {
    raw: String,
    /// Per level: the pieces, or a literal MQTT wildcard level.
    levels: Vec<Vec<Piece>>,
}

impl GrantTemplate {
    pub fn parse(raw: &str) -> Result<Self, GrantError> {
        let err = |problem: String| GrantError::Template {
            template: raw.to_owned(),
            problem,
        };
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(err("is empty".into()));
        }
        let mut levels = Vec::new();
        for level in raw.split('/') {
            let mut pieces = Vec::new();
            let mut rest = level;
            while let Some(open) = rest.find('{') {
                if open > 0 {
                    pieces.push(Piece::Text(rest[..open].to_owned()));
                }
                let close = rest[open..].find('}').ok_or_else(|| err("has an unclosed {".into()))? + open;
                pieces.push(match &rest[open + 1..close] {
                    "clientId" => Piece::ClientId,
                    "sub" => Piece::Sub,
                    claim if claim.starts_with("claims.") && is_claim_name(&claim["claims.".len()..]) => {
                        Piece::Claim(claim["claims.".len()..].to_owned())
                    }
                    other => {
                        return Err(err(format!(
                            "has the unknown variable {{{other}}}; use {{clientId}}, {{sub}} or {{claims.NAME}}"
                        )));
                    }
                });
                rest = &rest[close + 1..];
            }
            if !rest.is_empty() {
                pieces.push(Piece::Text(rest.to_owned()));
            }
            levels.push(pieces);
        }
        let template = Self {
            raw: raw.to_owned(),
            levels,
        };
        // The literal parts must form a valid filter: check with sample values.
        TopicFilter::parse(&template.render("c", "s", &|_| "v")).map_err(|e| err(e.to_string()))?;
        if template.raw.contains('}') && template.levels.iter().flatten().all(|p| matches!(p, Piece::Text(_))) {
            return Err(err("has a stray }".into()));
        }
        Ok(template)
    }

    fn render<'a>(&'a self, client_id: &'a str, sub: &'a str, claim: &dyn Fn(&str) -> &'a str) -> String {
        self.levels
            .iter()
            .map(|level| {
                level
                    .iter()
                    .map(|piece| match piece {
                        Piece::Text(text) => text.as_str(),
                        Piece::ClientId => client_id,
                        Piece::Sub => sub,
                        Piece::Claim(name) => claim(name),
                    })
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    pub fn uses_sub(&self) -> bool {
        self.levels.iter().flatten().any(|p| *p == Piece::Sub)
    }

    pub fn uses_client_id(&self) -> bool {
        self.levels.iter().flatten().any(|p| *p == Piece::ClientId)
    }

    /// The claims the template names, each once, in order.
    pub fn claims(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for piece in self.levels.iter().flatten() {
            if let Piece::Claim(name) = piece
                && !names.contains(&name.as_str())
            {
                names.push(name);
            }
        }
        names
    }

    /// Every rendering of the template: one per combination of its claims'
    /// values (none when a claim has none), `{clientId}` and `{sub}` as given.
    fn renderings(&self, client_id: &str, sub: &str, values: &ClaimValues) -> Result<Vec<String>, GrantError> {
        let names = self.claims();
        let lists: Vec<&[String]> = names.iter().map(|name| values.get(name)).collect();
        let count = lists
            .iter()
            .try_fold(1usize, |n, list| n.checked_mul(list.len()))
            .unwrap_or(usize::MAX);
        if count > crate::claims::MAX_EXPANSIONS {
            return Err(GrantError::TooManyGrants {
                template: self.raw.clone(),
                count,
            });
        }
        let mut out = Vec::with_capacity(count);
        for index in 0..count {
            // The index in mixed radix picks one value of each claim.
            let mut rest = index;
            let picked: Vec<&str> = lists
                .iter()
                .map(|list| {
                    let value = list[rest % list.len()].as_str();
                    rest /= list.len();
                    value
                })
                .collect();
            let claim = |name: &str| names.iter().position(|n| *n == name).map_or("", |i| picked[i]);
            out.push(self.render(client_id, sub, &claim));
        }
        Ok(out)
    }

    pub fn has_wildcards(&self) -> bool {
        crate::topic::has_wildcards(self.as_str())
    }

    /// The pattern of everything this template can expand to, for the client
    /// role's identity policy: each variable and MQTT wildcard becomes `*`.
    pub fn role_pattern(&self) -> String {
        self.levels
            .iter()
            .map(|level| match level.as_slice() {
                [Piece::Text(t)] if t == "+" || t == "#" => "*".to_owned(),
                pieces => pieces
                    .iter()
                    .map(|p| match p {
                        Piece::Text(text) => text.as_str(),
                        Piece::ClientId | Piece::Sub | Piece::Claim(_) => "*",
                    })
                    .collect(),
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    fn expand(
        &self,
        client_id: &ClientId,
        sub: Option<&str>,
        claims: &ClaimValues,
    ) -> Result<Vec<TopicFilter>, GrantError> {
        let sub = match (self.uses_sub(), sub) {
            (false, _) => "",
            (true, Some(sub)) => sub,
            (true, None) => return Err(GrantError::MissingSub { needed: "{sub}" }),
        };
        self.renderings(client_id.as_str(), sub, claims)?
            .into_iter()
            .map(|topic| TopicFilter::parse(&topic).map_err(|problem| GrantError::Expanded { topic, problem }))
            .collect()
    }
}

/// Whether `name` may follow `claims.` in a template: letters, digits and `_ : . -`.
fn is_claim_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "_:.-".contains(c))
}

/// Whether `value` may stand in a topic as a `{sub}` or claim value: one level
/// without wildcard or policy characters, within `rule`; the problem otherwise.
pub fn check_value(value: &str, rule: SubRule) -> Result<(), String> {
    if value.len() > rule.max_bytes {
        return Err(format!(
            "has {} bytes, more than SUB_MAX_BYTES={}",
            value.len(),
            rule.max_bytes
        ));
    }
    check_level(value, "value", MAX_VARIABLE_BYTES).map_err(|e| e.to_string())?;
    match value.chars().find(|&c| !rule.charset.allows(c)) {
        Some(found) => Err(format!(
            "contains {found:?}, which SUB_CHARACTERS={} does not accept",
            rule.charset.as_str()
        )),
        None => Ok(()),
    }
}

/// IoT's policy variable for the connection's client ID.
pub const CLIENT_ID_VARIABLE: &str = "${iot:ClientId}";

/// A custom authorizer's grants: `(filter, topic pattern)` pairs with
/// [`CLIENT_ID_VARIABLE`] where the templates say `{clientId}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizerGrants {
    pub subscribe: Vec<(String, String)>,
    pub publish: Vec<(String, String)>,
}

/// The configured subscribe and publish templates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantTemplates {
    pub subscribe: Vec<GrantTemplate>,
    pub publish: Vec<GrantTemplate>,
    /// Which `sub` values are accepted.
    pub sub_rule: SubRule,
}

impl GrantTemplates {
    /// Parses comma-separated template lists.
    pub fn parse(subscribe: &str, publish: &str) -> Result<Self, GrantError> {
        let list = |text: &str| -> Result<Vec<GrantTemplate>, GrantError> {
            text.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(GrantTemplate::parse)
                .collect()
        };
        let templates = Self {
            subscribe: list(subscribe)?,
            publish: list(publish)?,
            sub_rule: SubRule::default(),
        };
        if templates.subscribe.is_empty() {
            return Err(GrantError::NoSubscribe);
        }
        Ok(templates)
    }

    pub fn uses_sub(&self) -> bool {
        self.subscribe.iter().chain(&self.publish).any(GrantTemplate::uses_sub)
    }

    /// Start-up warnings: templates with operator-written wildcards.
    pub fn warnings(&self) -> Vec<String> {
        self.subscribe
            .iter()
            .chain(&self.publish)
            .filter(|t| t.has_wildcards())
            .map(|t| {
                format!(
                    "grant template {:?} contains an MQTT wildcard: every client gets every matching topic",
                    t.as_str()
                )
            })
            .collect()
    }

    /// Expands every template for one client. `sub` is validated as one topic level.
    pub fn expand(&self, client_id: &ClientId, sub: Option<&str>) -> Result<Grants, GrantError> {
        self.expand_with(client_id, sub, &ClaimValues::none())
    }

    /// The same with the caller's claim values ([`GrantTemplates::claim_values`]):
    /// a template expands once per combination of its claims' values.
    pub fn expand_with(
        &self,
        client_id: &ClientId,
        sub: Option<&str>,
        claims: &ClaimValues,
    ) -> Result<Grants, GrantError> {
        if self.uses_sub()
            && let Some(sub) = sub
        {
            self.check_sub(sub)?;
        }
        let expand_all = |templates: &[GrantTemplate]| -> Result<Vec<TopicFilter>, GrantError> {
            let mut out: Vec<TopicFilter> = Vec::with_capacity(templates.len());
            for template in templates {
                for filter in template.expand(client_id, sub, claims)? {
                    if !out.contains(&filter) {
                        out.push(filter);
                    }
                }
            }
            Ok(out)
        };
        Ok(Grants {
            subscribe: expand_all(&self.subscribe)?,
            publish: expand_all(&self.publish)?,
        })
    }

    /// Every claim a template names, each once.
    pub fn claim_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for name in self
            .subscribe
            .iter()
            .chain(&self.publish)
            .flat_map(GrantTemplate::claims)
        {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }

    /// The values of the claims the templates use, read from a token's claims
    /// and narrowed to what the caller asked for.
    pub fn claim_values(
        &self,
        claims: Option<&serde_json::Map<String, serde_json::Value>>,
        narrow: Option<&Narrowing>,
    ) -> Result<ClaimValues, GrantError> {
        ClaimValues::read(&self.claim_names(), claims, self.sub_rule, narrow)
    }

    /// One value per claim, each the longest the rule accepts: the start-up size
    /// check's caller. A token with many values per claim may need more (the
    /// API then refuses it and says to narrow).
    pub fn longest_claims(&self) -> ClaimValues {
        let longest = serde_json::Value::String(self.longest_sub());
        let claims: serde_json::Map<String, serde_json::Value> = self
            .claim_names()
            .into_iter()
            .map(|name| (name.to_owned(), longest.clone()))
            .collect();
        ClaimValues::read(&self.claim_names(), Some(&claims), self.sub_rule, None).unwrap_or_default()
    }

    /// The longest, most expensive `sub` the rule accepts.
    pub fn longest_sub(&self) -> String {
        self.sub_rule
            .charset
            .most_expensive()
            .to_string()
            .repeat(self.sub_rule.max_bytes)
    }

    /// Whether `sub` may stand in a topic: one level, no wildcard or policy
    /// character, within the operator's [`SubRule`].
    pub fn check_sub(&self, sub: &str) -> Result<(), GrantError> {
        let rule = self.sub_rule;
        if sub.len() > rule.max_bytes {
            return Err(GrantError::SubTooLong {
                bytes: sub.len(),
                max: rule.max_bytes,
            });
        }
        check_level(sub, "sub", MAX_VARIABLE_BYTES).map_err(GrantError::BadSub)?;
        // STS takes session policies in `\u0020-\u00FF` (plus tab and newlines)
        // only; the rule accepts that at most.
        if let Some(found) = sub.chars().find(|&c| !rule.charset.allows(c)) {
            return Err(GrantError::SubCharset {
                found,
                charset: rule.charset.as_str(),
            });
        }
        Ok(())
    }

    /// Every template for a custom authorizer's policy, which is written before
    /// the client ID is known: `{clientId}` becomes IoT's `${iot:ClientId}`,
    /// `{sub}` the checked subject. Each entry is the subscribe filter (or
    /// publish topic) and the topic pattern it covers (wildcard levels as `*`).
    pub fn for_authorizer(&self, sub: &str, claims: &ClaimValues) -> Result<AuthorizerGrants, GrantError> {
        if self.uses_sub() {
            self.check_sub(sub)?;
        }
        let render = |templates: &[GrantTemplate]| -> Result<Vec<(String, String)>, GrantError> {
            let mut out: Vec<(String, String)> = Vec::with_capacity(templates.len());
            for template in templates {
                for filter in template.renderings(CLIENT_ID_VARIABLE, sub, claims)? {
                    let topics = filter
                        .split('/')
                        .map(|level| if level == "+" || level == "#" { "*" } else { level })
                        .collect::<Vec<_>>()
                        .join("/");
                    if !out.iter().any(|(f, _)| *f == filter) {
                        out.push((filter, topics));
                    }
                }
            }
            Ok(out)
        };
        Ok(AuthorizerGrants {
            subscribe: render(&self.subscribe)?,
            publish: render(&self.publish)?,
        })
    }

    /// The client's own topic for the response's `topic`: the first subscribe
    /// grant with the client ID as one of its levels (what a `{clientId}`
    /// template made), else the first subscribe grant.
    pub fn own_topic<'g>(&self, grants: &'g Grants, client_id: &ClientId) -> &'g str {
        grants
            .subscribe
            .iter()
            .find(|f| f.as_str().split('/').any(|level| level == client_id.as_str()))
            .or_else(|| grants.subscribe.first())
            .map_or("", TopicFilter::as_str)
    }

    /// Fails if the largest possible session policy would exceed STS's limit, or an
    /// expansion with the longest values would exceed a topic's limit. The worst
    /// `sub` is the longest the rule accepts, made of its most expensive character
    /// (with `latin1`, `"`, which JSON escapes to `\"`).
    pub fn check_fits(&self, arns: &IotArns) -> Result<(), GrantError> {
        let client_id = ClientId::generate();
        let longest_sub = self.longest_sub();
        let grants = self.expand_with(&client_id, Some(&longest_sub), &self.longest_claims())?;
        for filter in grants.subscribe.iter().chain(&grants.publish) {
            if filter.as_str().len() > MAX_TOPIC_BYTES {
                return Err(GrantError::Expanded {
                    topic: filter.to_string(),
                    problem: NameError::TooLong {
                        what: "topic",
                        max: MAX_TOPIC_BYTES,
                    },
                });
            }
        }
        session_policy(arns, &client_id, &grants)
            .map(|_| ())
            .map_err(GrantError::TooLarge)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::policy::{Decision, PolicyDocument, evaluate};

    fn arns() -> IotArns {
        IotArns::new("aws", "us-east-1", "123456789012").unwrap()
    }

    #[test]
    fn templates_expand_the_client_id_and_the_subject() {
        let t = GrantTemplates::parse("allowed/{clientId}, users/{sub}, broadcast/all", "from/{clientId}").unwrap();
        let id = ClientId::parse("abc").unwrap();
        let g = t.expand(&id, Some("alice")).unwrap();
        let names = |v: &[TopicFilter]| v.iter().map(|f| f.as_str().to_owned()).collect::<Vec<_>>();
        assert_eq!(names(&g.subscribe), ["allowed/abc", "users/alice", "broadcast/all"]);
        assert_eq!(names(&g.publish), ["from/abc"]);
        assert_eq!(t.own_topic(&g, &id), "allowed/abc");
        assert!(t.warnings().is_empty());
    }

    #[test]
    fn claims_expand_to_one_grant_per_value_and_to_none_when_missing() {
        let t = GrantTemplates::parse(
            "allowed/{clientId},rooms/{claims.rooms}/+,t/{claims.app.tenant}/{claims.rooms}",
            "rooms/{claims.rooms}/{clientId}",
        )
        .unwrap();
        assert_eq!(t.claim_names(), ["rooms", "app.tenant"]);
        let id = ClientId::parse("abc").unwrap();
        let token = serde_json::json!({"rooms": ["42", "7"], "app": {"tenant": "acme"}});
        let values = t.claim_values(token.as_object(), None).unwrap();
        let g = t.expand_with(&id, None, &values).unwrap();
        let names = |v: &[TopicFilter]| v.iter().map(|f| f.as_str().to_owned()).collect::<Vec<_>>();
        assert_eq!(
            names(&g.subscribe),
            ["allowed/abc", "rooms/42/+", "rooms/7/+", "t/acme/42", "t/acme/7"]
        );
        assert_eq!(names(&g.publish), ["rooms/42/abc", "rooms/7/abc"]);
        // No rooms claim: those templates grant nothing, the own topic stays.
        let none = t
            .claim_values(serde_json::json!({"sub": "x"}).as_object(), None)
            .unwrap();
        assert_eq!(
            names(&t.expand_with(&id, None, &none).unwrap().subscribe),
            ["allowed/abc"]
        );
        // The client role covers every value; the own topic is still the client's.
        assert_eq!(t.subscribe[1].role_pattern(), "rooms/*/*");
        let rooms_first = GrantTemplates::parse("rooms/{claims.rooms}/+,allowed/{clientId}", "").unwrap();
        let g = rooms_first.expand_with(&id, None, &values).unwrap();
        assert_eq!(rooms_first.own_topic(&g, &id), "allowed/abc");
    }

    #[test]
    fn unknown_variables_and_bad_claim_names_are_refused_at_start_up() {
        for bad in [
            "rooms/{claims.}",
            "rooms/{claims.a b}",
            "rooms/{claim.rooms}",
            "rooms/{claims.a/b}",
        ] {
            assert!(GrantTemplates::parse(bad, "").is_err(), "{bad}");
        }
    }

    #[test]
    fn a_subject_that_would_widen_a_grant_is_refused_not_escaped() {
        let t = GrantTemplates::parse("users/{sub}", "").unwrap();
        let id = ClientId::generate();
        for bad in [
            "a/b",
            "#",
            "+",
            "*",
            "a?",
            "$aws",
            "with space",
            "tab\t",
            "",
            &"x".repeat(129),
        ] {
            assert!(t.expand(&id, Some(bad)).is_err(), "{bad:?}");
        }
        assert!(matches!(t.expand(&id, None), Err(GrantError::MissingSub { .. })));
    }

    #[test]
    fn operator_wildcards_are_allowed_as_whole_levels_and_warned_about() {
        let t = GrantTemplates::parse("allowed/{clientId},broadcast/#,rooms/+/chat", "").unwrap();
        assert_eq!(t.warnings().len(), 2);
        let g = t.expand(&ClientId::generate(), None).unwrap();
        let policy = PolicyDocument::parse(&session_policy(&arns(), &ClientId::generate(), &g).unwrap()).unwrap();
        let p = std::slice::from_ref(&policy);
        assert_eq!(
            evaluate(p, "iot:Subscribe", &arns().topic_filter("broadcast/#")),
            Decision::Allow
        );
        assert_eq!(
            evaluate(p, "iot:Receive", &arns().topic("broadcast/news")),
            Decision::Allow
        );
        assert_eq!(
            evaluate(p, "iot:Receive", &arns().topic("broadcast")),
            Decision::NotApplicable
        );
    }

    #[test]
    fn malformed_templates_stop_start_up() {
        for bad in [
            "users/{user}",
            "users/{sub",
            "a/*",
            "a/?",
            "a/#/b",
            "a+/b",
            "$aws/{clientId}",
            "a//b",
        ] {
            assert!(GrantTemplates::parse(bad, "").is_err(), "{bad:?}");
        }
        assert_eq!(GrantTemplates::parse("", "from/x"), Err(GrantError::NoSubscribe));
    }

    #[test]
    fn too_many_grants_are_a_start_up_error() {
        let many: Vec<String> = (0..12).map(|i| format!("shared/topic-{i}/{{sub}}")).collect();
        let t = GrantTemplates::parse(&many.join(","), "").unwrap();
        assert!(matches!(t.check_fits(&arns()), Err(GrantError::TooLarge(_))));
        let few = GrantTemplates::parse("allowed/{clientId},users/{sub},broadcast/all", "from/{clientId}").unwrap();
        assert_eq!(few.check_fits(&arns()), Ok(()));
    }

    /// The broadest rule: 128-byte subjects of any character STS carries.
    const LATIN1: SubRule = SubRule {
        max_bytes: MAX_VARIABLE_BYTES,
        charset: SubCharset::Latin1,
    };

    fn latin1(subscribe: &str, publish: &str) -> GrantTemplates {
        GrantTemplates {
            sub_rule: LATIN1,
            ..GrantTemplates::parse(subscribe, publish).unwrap()
        }
    }

    #[test]
    fn a_realistic_per_user_grant_set_fits_the_default_rule_but_not_the_broadest() {
        let (subscribe, publish) = (
            "allowed/{clientId},users/{sub},inbox/{sub},alerts/{sub}",
            "from/{sub}/{clientId}",
        );
        assert_eq!(
            GrantTemplates::parse(subscribe, publish).unwrap().check_fits(&arns()),
            Ok(())
        );
        assert!(matches!(
            latin1(subscribe, publish).check_fits(&arns()),
            Err(GrantError::TooLarge(_))
        ));
    }

    #[test]
    fn the_default_rule_takes_what_identity_providers_issue_and_64_bytes_at_most() {
        let t = GrantTemplates::parse("users/{sub}", "").unwrap();
        let id = ClientId::generate();
        for sub in [
            "8f14e45f-ceea-467f-a0e6-3a5d2e9f0c11",
            "auth0|5f7c8ec7c33c6c004bbafe82",
            "google-oauth2|103547991597142817347",
            "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
            "user@example.com",
            &"x".repeat(64),
        ] {
            assert!(t.expand(&id, Some(sub)).is_ok(), "{sub:?}");
        }
        assert!(matches!(
            t.expand(&id, Some(&"x".repeat(65))),
            Err(GrantError::SubTooLong { bytes: 65, max: 64 })
        ));
        for sub in ["josé", "a\"b", "a,b", "a'b"] {
            assert!(
                matches!(t.expand(&id, Some(sub)), Err(GrantError::SubCharset { .. })),
                "{sub:?}"
            );
        }
    }

    #[test]
    fn the_start_up_size_check_counts_json_escaping() {
        // Fits with 128 plain characters per {sub}, not with 128 escaped quotes.
        let arns = arns();
        let fits_plain = |t: &GrantTemplates| {
            let plain = t
                .expand(&ClientId::generate(), Some(&"s".repeat(MAX_VARIABLE_BYTES)))
                .unwrap();
            session_policy(&arns, &ClientId::generate(), &plain).is_ok()
        };
        let tight = (1..20)
            .map(|n| {
                let list: Vec<String> = (0..n).map(|i| format!("u{i}/{{sub}}")).collect();
                latin1(&list.join(","), "")
            })
            .find(|t| fits_plain(t) && t.check_fits(&arns).is_err())
            .expect("some grant list fits unescaped but not escaped");
        let quotes = "\"".repeat(MAX_VARIABLE_BYTES);
        let grants = tight.expand(&ClientId::generate(), Some(&quotes)).unwrap();
        assert!(session_policy(&arns, &ClientId::generate(), &grants).is_err());
    }

    #[test]
    fn a_sub_outside_the_sts_policy_charset_is_refused_before_sts_sees_it() {
        let t = latin1("users/{sub}", "");
        let id = ClientId::generate();
        for sub in ["用户", "alice😀", "\u{100}"] {
            assert!(
                matches!(t.expand(&id, Some(sub)), Err(GrantError::SubCharset { .. })),
                "{sub:?}"
            );
        }
        for sub in ["josé", "ÿ", "a\"b\\c"] {
            assert!(t.expand(&id, Some(sub)).is_ok(), "{sub:?}");
        }
        // Without a {sub} grant the sub never reaches a policy: nothing to refuse.
        let no_sub = GrantTemplates::parse("allowed/{clientId}", "").unwrap();
        assert!(no_sub.expand(&id, Some("用户")).is_ok());
    }

    #[test]
    fn role_patterns_replace_variables_and_wildcards_with_a_policy_wildcard() {
        let t = GrantTemplates::parse("allowed/{clientId},users/user-{sub},rooms/+/chat,broadcast/#", "").unwrap();
        let patterns: Vec<String> = t.subscribe.iter().map(GrantTemplate::role_pattern).collect();
        assert_eq!(patterns, ["allowed/*", "users/user-*", "rooms/*/chat", "broadcast/*"]);
    }

    const SHAPES: &[&str] = &[
        "allowed/{clientId}",
        "users/{sub}",
        "users/{sub}/inbox",
        "u-{sub}/c-{clientId}",
        "from/{clientId}",
        "broadcast/all",
    ];

    proptest! {
        /// No policy vended for (client, sub) allows anything on a topic that belongs
        /// to another client or another subject.
        #[test]
        fn no_vended_policy_reaches_another_clients_or_users_topics(
            sub in "[a-zA-Z0-9@._=,|-]{1,20}|[a-z]{1,5}[/#+*?$ ][a-z]{0,5}",
            other_sub in "[a-zA-Z0-9@._=,|-]{1,20}",
            own_id in "[a-f0-9]{8,32}",
            other_id in "[a-f0-9]{8,32}",
            subscribe in proptest::sample::subsequence(SHAPES.to_vec(), 1..=SHAPES.len()),
            publish in proptest::sample::subsequence(SHAPES.to_vec(), 0..=2),
        ) {
            prop_assume!(sub != other_sub && own_id != other_id);
            // The broadest rule: every subject any deployment may accept.
            let templates = latin1(&subscribe.join(","), &publish.join(","));
            let own = ClientId::parse(&own_id).unwrap();
            let Ok(grants) = templates.expand(&own, Some(&sub)) else {
                // Refused subjects get nothing at all.
                prop_assert!(check_level(&sub, "sub", MAX_VARIABLE_BYTES).is_err());
                return Ok(());
            };
            let policy = PolicyDocument::parse(&session_policy(&arns(), &own, &grants).unwrap()).unwrap();
            let p = std::slice::from_ref(&policy);
            let other = ClientId::parse(&other_id).unwrap();
            // Every topic the templates give the *other* client or subject …
            let theirs = templates.expand(&other, Some(&other_sub)).unwrap();
            for filter in theirs.subscribe.iter().chain(&theirs.publish) {
                // … unless it is shared by construction (no variable in it).
                let ours = grants.subscribe.iter().chain(&grants.publish).any(|f| f == filter);
                if ours {
                    continue;
                }
                for action in ["iot:Subscribe", "iot:Receive", "iot:Publish"] {
                    let resource = if action == "iot:Subscribe" { arns().topic_filter(filter.as_str()) } else { arns().topic(filter.as_str()) };
                    prop_assert_eq!(evaluate(p, action, &resource), Decision::NotApplicable, "{} {}", action, resource);
                }
            }
            prop_assert_eq!(evaluate(p, "iot:Connect", &arns().client(other.as_str())), Decision::NotApplicable);
        }

        /// Whatever a token's claim holds, a vended policy never reaches a room
        /// the claim does not name: values that could widen a grant (`#`, `+`,
        /// `*`, `/`, …) refuse the request instead.
        #[test]
        fn no_claim_value_reaches_a_room_it_does_not_name(
            rooms in proptest::collection::vec("[a-z0-9]{1,6}|[a-z]{0,3}[/#+*?$ ][a-z]{0,3}", 0..5),
            other in "[a-z0-9]{1,6}",
        ) {
            prop_assume!(!rooms.contains(&other));
            let templates = GrantTemplates::parse("allowed/{clientId},rooms/{claims.rooms}/+", "rooms/{claims.rooms}/{clientId}").unwrap();
            let token = serde_json::json!({ "rooms": rooms });
            let Ok(values) = templates.claim_values(token.as_object(), None) else {
                // Refused: some value was not a plain topic level.
                prop_assert!(rooms.iter().any(|r| check_level(r, "room", MAX_VARIABLE_BYTES).is_err()));
                return Ok(());
            };
            let own = ClientId::generate();
            let grants = templates.expand_with(&own, None, &values).unwrap();
            let policy = PolicyDocument::parse(&session_policy(&arns(), &own, &grants).unwrap()).unwrap();
            let p = std::slice::from_ref(&policy);
            for filter in [format!("rooms/{other}/+"), format!("rooms/{other}/x"), "rooms/#".to_owned(), "rooms/+/+".to_owned()] {
                prop_assert_eq!(evaluate(p, "iot:Subscribe", &arns().topic_filter(&filter)), Decision::NotApplicable, "{}", filter);
            }
            prop_assert_eq!(evaluate(p, "iot:Receive", &arns().topic(&format!("rooms/{other}/x"))), Decision::NotApplicable);
            prop_assert_eq!(evaluate(p, "iot:Publish", &arns().topic(&format!("rooms/{other}/{own}"))), Decision::NotApplicable);
        }
    }
}
