//! Policy evaluation with IAM semantics, for IoT actions.
//!
//! * Default deny; an explicit `Deny` that matches wins over any `Allow`
//!   (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html>).
//! * Actions compare case-insensitively and may use `*`/`?`; resources compare
//!   case-sensitively with `*` (any run of characters, `/` included) and `?`
//!   (exactly one character). MQTT's `+` and `#` are ordinary characters here.
//! * A session policy never widens a role: credentials from `AssumeRole` with a
//!   `Policy` may do what both the role's identity policies and the session policy
//!   allow ([`is_allowed`]).
//!
//! * The `_with` forms take the values of IoT policy variables
//!   ([`super::variables`]) for the policies a custom authorizer returns; without
//!   them a `${…}` in a resource is ordinary text.
//!
//! * With a condition context ([`Evaluation::context`]) the keys of
//!   [`super::condition`] are evaluated; any other condition — or any condition
//!   without a context — makes a Deny apply and an Allow grant nothing.
//!
//! Not modelled: other condition keys, resource-based policies, SCPs and
//! permission boundaries.

use super::condition::{self, Context, Outcome};
use super::document::{Effect, PolicyDocument, Statement};
use super::variables::Variables;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// At least one statement allows and none denies.
    Allow,
    /// A statement explicitly denies.
    Deny,
    /// No statement applies: an implicit deny.
    NotApplicable,
}

/// Evaluates `action` on `resource` against a set of policies taken together.
pub fn evaluate(policies: &[PolicyDocument], action: &str, resource: &str) -> Decision {
    evaluate_in(policies, action, resource, None, None)
}

fn evaluate_in(
    policies: &[PolicyDocument],
    action: &str,
    resource: &str,
    vars: Option<&Variables>,
    context: Option<&Context<'_>>,
) -> Decision {
    let mut allowed = false;
    for statement in policies.iter().flat_map(PolicyDocument::statements) {
        if !applies(statement, action, resource, vars) {
            continue;
        }
        // Without a context every condition is unsupported: a conditional Deny
        // applies and a conditional Allow grants nothing (never looser than AWS).
        let condition = statement
            .condition
            .as_ref()
            .map(|c| context.map_or(Outcome::Unsupported, |context| condition::evaluate(c, context)));
        match (statement.effect, condition) {
            (Effect::Deny, Some(Outcome::False)) => {}
            (Effect::Deny, _) => return Decision::Deny,
            (Effect::Allow, None | Some(Outcome::True)) => allowed = true,
            (Effect::Allow, _) => {}
        }
    }
    if allowed {
        Decision::Allow
    } else {
        Decision::NotApplicable
    }
}

/// The effective permission of temporary credentials: allowed by the role's
/// identity policies *and*, when the session was given any, by its session
/// policies (the inline `Policy` and the managed `PolicyArns`, evaluated together
/// as one set: an explicit Deny in any of them wins, an Allow in any of them counts).
/// <https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies.html#policies_session>
pub fn is_allowed(
    identity: &[PolicyDocument],
    session: Option<&[PolicyDocument]>,
    action: &str,
    resource: &str,
) -> bool {
    authorize(identity, session, action, resource).is_ok()
}

/// [`is_allowed`] for policies that use IoT policy variables, with their values.
pub fn is_allowed_with(identity: &[PolicyDocument], vars: &Variables, action: &str, resource: &str) -> bool {
    authorize_with(identity, vars, action, resource).is_ok()
}

/// One request's evaluation with everything the local gateway knows: the
/// identity's policies and any its role gained since the session began (both
/// identity policies, taken together), the session policies, the values of IoT
/// policy variables, and the condition keys' context.
#[derive(Debug, Clone, Copy, Default)]
pub struct Evaluation<'a> {
    pub identity: &'a [PolicyDocument],
    /// Inline policies put on the role after the session was issued: they apply
    /// to the session at once, as on AWS.
    pub role_since: Option<&'a [PolicyDocument]>,
    pub session: Option<&'a [PolicyDocument]>,
    pub vars: Option<&'a Variables>,
    pub context: Option<&'a Context<'a>>,
}

impl Evaluation<'_> {
    /// Whether `action` on `resource` is allowed, or which rule refused it.
    pub fn authorize(&self, action: &str, resource: &str) -> Result<(), Denial> {
        let denial = |decision: Decision, by_session_policy: bool| Denial {
            action: action.to_owned(),
            resource: resource.to_owned(),
            explicit: decision == Decision::Deny,
            by_session_policy,
        };
        let one = |policies: &[PolicyDocument]| evaluate_in(policies, action, resource, self.vars, self.context);
        let identity = match (one(self.identity), self.role_since.map(one)) {
            (Decision::Deny, _) | (_, Some(Decision::Deny)) => Decision::Deny,
            (Decision::Allow, _) | (_, Some(Decision::Allow)) => Decision::Allow,
            _ => Decision::NotApplicable,
        };
        if identity != Decision::Allow {
            return Err(denial(identity, false));
        }
        match self.session.map(one) {
            None | Some(Decision::Allow) => Ok(()),
            Some(other) => Err(denial(other, true)),
        }
    }
}

/// Why a request was refused: the action, the resource, and which rule decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub action: String,
    pub resource: String,
    /// `true`: a `Deny` statement matched; `false`: no statement allowed it.
    pub explicit: bool,
    /// `true` when the session policy decided (the role's own policies allowed it).
    pub by_session_policy: bool,
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rule = if self.explicit {
            "an explicit Deny matched"
        } else {
            "no statement allows it"
        };
        let policies = if self.by_session_policy {
            "the session policy"
        } else {
            "the identity's policies"
        };
        write!(f, "{} on {} refused: {rule} in {policies}", self.action, self.resource)
    }
}

/// [`is_allowed`], saying which rule refused.
pub fn authorize(
    identity: &[PolicyDocument],
    session: Option<&[PolicyDocument]>,
    action: &str,
    resource: &str,
) -> Result<(), Denial> {
    Evaluation {
        identity,
        session,
        ..Evaluation::default()
    }
    .authorize(action, resource)
}

/// [`authorize`] for policies that use IoT policy variables, with their values.
pub fn authorize_with(
    identity: &[PolicyDocument],
    vars: &Variables,
    action: &str,
    resource: &str,
) -> Result<(), Denial> {
    Evaluation {
        identity,
        vars: Some(vars),
        ..Evaluation::default()
    }
    .authorize(action, resource)
}

fn applies(statement: &Statement, action: &str, resource: &str, vars: Option<&Variables>) -> bool {
    let resource_glob = |pattern: &String| match vars {
        Some(vars) if pattern.contains('$') => vars.glob(pattern, resource),
        _ => glob(pattern, resource, false),
    };
    let action_matches = match (&statement.action, &statement.not_action) {
        (Some(actions), _) => actions.as_slice().iter().any(|p| glob(p, action, true)),
        (None, Some(actions)) => !actions.as_slice().iter().any(|p| glob(p, action, true)),
        (None, None) => false,
    };
    let resource_matches = match (&statement.resource, &statement.not_resource) {
        (Some(resources), _) => resources.as_slice().iter().any(resource_glob),
        (None, Some(resources)) => !resources.as_slice().iter().any(resource_glob),
        (None, None) => false,
    };
    action_matches && resource_matches
}

/// Width in bytes of the UTF-8 character that starts with `lead`.
fn char_width(lead: u8) -> usize {
    match lead {
        0x00..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

/// IAM wildcard match: `*` matches any run of characters, `?` exactly one.
/// Linear-time greedy matching with one backtrack point, no allocation: it runs
/// on every delivery in the local gateway.
pub fn glob(pattern: &str, text: &str, ignore_ascii_case: bool) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // Where to resume after the most recent `*`: (pattern index after it, text index).
    let mut resume: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() {
            match p[pi] {
                b'*' => {
                    pi += 1;
                    resume = Some((pi, ti));
                    continue;
                }
                b'?' => {
                    pi += 1;
                    ti += char_width(t[ti]);
                    continue;
                }
                lead => {
                    let (pw, tw) = (char_width(lead), char_width(t[ti]));
                    let (pc, tc) = (&p[pi..(pi + pw).min(p.len())], &t[ti..(ti + tw).min(t.len())]);
                    let same = if ignore_ascii_case {
                        pc.eq_ignore_ascii_case(tc)
                    } else {
                        pc == tc
                    };
                    if same {
                        pi += pw;
                        ti += tw;
                        continue;
                    }
                }
            }
        }
        match resume {
            Some((after_star, from)) => {
                let next = from + char_width(t[from]);
                resume = Some((after_star, next));
                pi = after_star;
                ti = next;
            }
            None => return false,
        }
    }
    p[pi.min(p.len())..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(json: &str) -> PolicyDocument {
        PolicyDocument::parse(json).unwrap()
    }

    const ARN: &str = "arn:aws:iot:us-east-1:123456789012";

    #[test]
    fn a_refusal_says_whether_a_deny_matched_or_nothing_allowed_and_in_which_policy() {
        let role = doc(&format!(
            r#"{{"Statement":[{{"Effect":"Allow","Action":"iot:*","Resource":"*"}},{{"Effect":"Deny","Action":"iot:Publish","Resource":"{ARN}:topic/secret"}}]}}"#
        ));
        let session = doc(&format!(
            r#"{{"Statement":{{"Effect":"Allow","Action":"iot:Publish","Resource":"{ARN}:topic/*"}}}}"#
        ));
        let (role, session) = (std::slice::from_ref(&role), std::slice::from_ref(&session));
        let denied = authorize(role, Some(session), "iot:Publish", &format!("{ARN}:topic/secret")).unwrap_err();
        assert!(denied.explicit && !denied.by_session_policy, "{denied:?}");
        let denied = authorize(role, Some(session), "iot:Connect", &format!("{ARN}:client/c")).unwrap_err();
        assert!(!denied.explicit && denied.by_session_policy, "{denied:?}");
        assert_eq!(
            denied.to_string(),
            format!("iot:Connect on {ARN}:client/c refused: no statement allows it in the session policy")
        );
        assert!(authorize(role, Some(session), "iot:Publish", &format!("{ARN}:topic/open")).is_ok());
    }

    #[test]
    fn glob_follows_iam_wildcard_rules() {
        let cases: &[(&str, &str, bool)] = &[
            ("abc", "abc", true),
            ("abc", "abd", false),
            ("abc", "ab", false),
            ("ab", "abc", false),
            ("*", "", true),
            ("*", "anything/at/all", true),
            ("a*", "a", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbbd", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a?c", "abbc", false),
            ("topic/allowed/*", "topic/allowed/x/y", true),
            ("topic/allowed/*", "topic/allowed", false),
            ("*/x", "a/b/x", true),
            ("a*b*c", "a-b-b-c", true),
            ("a*b*c", "a-c-b", false),
            ("??", "é1", true),
            ("allowed/#", "allowed/#", true),
            ("allowed/#", "allowed/abc", false),
            ("allowed/+", "allowed/abc", false),
        ];
        for &(pattern, text, expected) in cases {
            assert_eq!(glob(pattern, text, false), expected, "{pattern:?} vs {text:?}");
        }
    }

    #[test]
    fn actions_match_case_insensitively_and_resources_do_not() {
        let policy = doc(&format!(
            r#"{{"Statement":{{"Effect":"Allow","Action":"IOT:connect","Resource":"{ARN}:client/Abc"}}}}"#
        ));
        let p = std::slice::from_ref(&policy);
        assert_eq!(
            evaluate(p, "iot:Connect", &format!("{ARN}:client/Abc")),
            Decision::Allow
        );
        assert_eq!(
            evaluate(p, "iot:Connect", &format!("{ARN}:client/abc")),
            Decision::NotApplicable
        );
    }

    #[test]
    fn evaluator_table() {
        let policies = [doc(&format!(
            r#"{{"Version":"2012-10-17","Statement":[
                    {{"Effect":"Allow","Action":["iot:Subscribe","iot:Receive"],"Resource":["{ARN}:topicfilter/allowed/*","{ARN}:topic/allowed/*"]}},
                    {{"Effect":"Deny","Action":"iot:Receive","Resource":"{ARN}:topic/allowed/secret"}},
                    {{"Effect":"Allow","Action":"iot:*","Resource":"{ARN}:client/c-?"}},
                    {{"Effect":"Allow","NotAction":"iot:Publish","Resource":"{ARN}:topic/open/*"}},
                    {{"Effect":"Allow","Action":"iot:Publish","NotResource":"{ARN}:topic/open/*"}},
                    {{"Effect":"Allow","Action":"iot:Connect","Resource":"{ARN}:client/conditional","Condition":{{"Bool":{{"iot:Connection.Thing.IsAttached":"true"}}}}}}
                ]}}"#
        ))];
        use Decision::*;
        let cases: &[(&str, &str, Decision)] = &[
            ("iot:Subscribe", "topicfilter/allowed/a", Allow),
            ("iot:Subscribe", "topicfilter/allowed/#", Allow),
            ("iot:Subscribe", "topicfilter/other/a", NotApplicable),
            ("iot:Receive", "topic/allowed/a", Allow),
            ("iot:Receive", "topic/allowed/secret", Deny),
            ("iot:Connect", "client/c-1", Allow),
            ("iot:Connect", "client/c-12", NotApplicable),
            ("iot:Connect", "client/conditional", NotApplicable),
            ("iot:Receive", "topic/open/x", Allow),
            ("iot:Publish", "topic/open/x", NotApplicable),
            ("iot:Publish", "topic/closed/x", Allow),
            ("iot:RetainPublish", "topic/allowed/a", NotApplicable),
        ];
        for &(action, resource, expected) in cases {
            let resource = format!("{ARN}:{resource}");
            assert_eq!(evaluate(&policies, action, &resource), expected, "{action} {resource}");
        }
    }

    #[test]
    fn no_policies_means_implicit_deny() {
        assert_eq!(evaluate(&[], "iot:Connect", "x"), Decision::NotApplicable);
        assert!(!is_allowed(&[], None, "iot:Connect", "x"));
    }

    #[test]
    fn a_session_policy_narrows_but_never_widens_the_role() {
        let role = doc(r#"{"Statement":{"Effect":"Allow","Action":"iot:Connect","Resource":"client/*"}}"#);
        let session = doc(
            r#"{"Statement":{"Effect":"Allow","Action":["iot:Connect","iot:Publish"],"Resource":["client/me","topic/x"]}}"#,
        );
        let role = std::slice::from_ref(&role);
        assert!(is_allowed(
            role,
            Some(std::slice::from_ref(&session)),
            "iot:Connect",
            "client/me"
        ));
        assert!(!is_allowed(
            role,
            Some(std::slice::from_ref(&session)),
            "iot:Connect",
            "client/you"
        ));
        assert!(
            !is_allowed(role, Some(std::slice::from_ref(&session)), "iot:Publish", "topic/x"),
            "role lacks Publish"
        );
        assert!(
            is_allowed(role, None, "iot:Connect", "client/you"),
            "no session policy: the role decides"
        );
    }

    #[test]
    fn an_explicit_deny_in_the_session_policy_wins() {
        let role = doc(r#"{"Statement":{"Effect":"Allow","Action":"iot:*","Resource":"*"}}"#);
        let session = doc(
            r#"{"Statement":[{"Effect":"Allow","Action":"iot:*","Resource":"*"},{"Effect":"Deny","Action":"iot:Publish","Resource":"*"}]}"#,
        );
        assert!(!is_allowed(
            std::slice::from_ref(&role),
            Some(std::slice::from_ref(&session)),
            "iot:Publish",
            "topic/a"
        ));
        assert!(is_allowed(
            std::slice::from_ref(&role),
            Some(std::slice::from_ref(&session)),
            "iot:Receive",
            "topic/a"
        ));
    }
}
