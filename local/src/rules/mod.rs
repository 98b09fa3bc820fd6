//! The local rules engine: AWS IoT topic rules that send client messages and
//! connection events to functions, run on every message the gateway routes
//! (<https://docs.aws.amazon.com/iot/latest/developerguide/iot-rules.html>).
//!
//! * [`sql`] — the rule SQL: parsed at creation, evaluated per message.
//! * [`rule`] — a rule as the control plane takes it, checked.
//! * [`invoke`] — the Lambda action, through the real Lambda Invoke API.
//!
//! Sources are what the gateway hands to [`Engine::on_message`]: MQTT and HTTPS
//! publishes, Last Wills, lifecycle events, republished messages, and Basic
//! Ingest (`$aws/rules/<name>/…`: that rule only, `topic()` without the prefix,
//! never a subscriber). A rule runs when it is enabled, its FROM matches and its
//! WHERE is true; its actions then run in the background and a failure goes to its
//! error action in IoT's shape. A republish re-enters the engine, at most
//! [`MAX_REPUBLISH_DEPTH`] times, so a rule that feeds itself stops (and says so).
//!
//! Not here: the HTTP control plane (`gateway::control`), routing to subscribers
//! (the broker); the engine hands republished messages back through a sink.

pub mod invoke;
pub mod rule;
pub mod sql;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};

use base64::Engine as _;
use serde_json::json;
use serverless_websockets_core::topic::matches;

use invoke::{InvokeError, Invoker};
use rule::{Action, Rule};
use sql::{Context, Output, payload_json};

/// A republish chain longer than this is a loop: the message is dropped.
pub const MAX_REPUBLISH_DEPTH: u8 = 8;

/// The Basic Ingest prefix.
pub const BASIC_INGEST: &str = "$aws/rules/";

/// What the rules made of a message: how many rules it reached (enabled or
/// not), and whether it was Basic Ingest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reached {
    pub rules: usize,
    pub ingest: bool,
}

/// A message as the engine sees it.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    /// As published (with a Basic Ingest prefix, if any).
    pub topic: &'a str,
    pub payload: &'a [u8],
    pub client_id: Option<&'a str>,
    pub principal: Option<&'a str>,
    /// How many republishes led to this message.
    pub depth: u8,
}

/// A message a republish action sends, for the gateway to route.
#[derive(Debug, Clone, PartialEq)]
pub struct Republish {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: u8,
    /// MQTT 5 headers, as the action gives them (templates not expanded).
    pub headers: Option<serde_json::Value>,
    pub depth: u8,
}

type Sink = Box<dyn Fn(Republish) + Send + Sync>;

/// The rules, and what their actions need.
pub struct Engine {
    rules: RwLock<BTreeMap<String, Arc<Rule>>>,
    invoker: Option<Arc<Invoker>>,
    account_id: String,
    sink: OnceLock<Sink>,
    /// What AWS would bill: rules triggered and actions run.
    usage: OnceLock<Arc<crate::usage::Usage>>,
}

impl Engine {
    /// An engine with no rules; Lambda actions go to `invoker` (none: each Lambda
    /// action fails with a log line that says to pass `--lambda-endpoint`).
    pub fn new(account_id: &str, invoker: Option<Invoker>) -> Self {
        Self {
            rules: RwLock::default(),
            invoker: invoker.map(Arc::new),
            account_id: account_id.to_owned(),
            sink: OnceLock::new(),
            usage: OnceLock::new(),
        }
    }

    /// Where republished messages go (the gateway's router); set once.
    pub fn set_sink(&self, sink: impl Fn(Republish) + Send + Sync + 'static) {
        let _ = self.sink.set(Box::new(sink));
    }

    /// Meters rules triggered and actions run on `usage`.
    pub fn set_usage(&self, usage: Arc<crate::usage::Usage>) {
        let _ = self.usage.set(usage);
    }

    /// The Lambda endpoint's invoker, shared with the custom authorizers.
    pub fn invoker(&self) -> Option<Arc<Invoker>> {
        self.invoker.clone()
    }

    pub fn lambda_endpoint(&self) -> Option<&str> {
        self.invoker.as_deref().map(Invoker::endpoint)
    }

    pub fn get(&self, name: &str) -> Option<Arc<Rule>> {
        self.read().get(name).cloned()
    }

    /// Every rule, in name order.
    pub fn list(&self) -> Vec<Arc<Rule>> {
        self.read().values().cloned().collect()
    }

    /// Adds a rule; false if one of that name exists.
    pub fn create(&self, rule: Rule) -> bool {
        let mut rules = self.write();
        if rules.contains_key(&rule.name) {
            return false;
        }
        tracing::info!(rule = %rule.name, sql = %rule.payload.sql, "topic rule created");
        rules.insert(rule.name.clone(), Arc::new(rule));
        true
    }

    /// Replaces a rule; false if there is none of that name.
    pub fn replace(&self, rule: Rule) -> bool {
        let mut rules = self.write();
        match rules.get_mut(&rule.name) {
            Some(slot) => {
                *slot = Arc::new(rule);
                true
            }
            None => false,
        }
    }

    /// Creates the rules of a JSON array of CreateTopicRule inputs
    /// (`{"ruleName", "topicRulePayload"}`), as `--rules FILE` holds them.
    pub fn load(&self, json: &str) -> Result<(), String> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Input {
            rule_name: String,
            topic_rule_payload: rule::TopicRulePayload,
        }
        let inputs: Vec<Input> = serde_json::from_str(json)
            .map_err(|e| format!("expected a JSON array of {{\"ruleName\", \"topicRulePayload\"}}: {e}"))?;
        let now = unix_seconds();
        for input in inputs {
            let rule = Rule::new(&input.rule_name, input.topic_rule_payload, now)
                .map_err(|e| format!("rule {}: {} ({})", input.rule_name, e, e.kind()))?;
            if !self.create(rule) {
                return Err(format!("rule {} is defined twice", input.rule_name));
            }
        }
        Ok(())
    }

    pub fn delete(&self, name: &str) -> bool {
        self.write().remove(name).is_some()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Rule>>> {
        self.rules.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Rule>>> {
        self.rules.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs every rule `message` reaches. Returns how many it reached, and
    /// whether it was Basic Ingest (then it goes to no subscriber).
    pub fn on_message(self: &Arc<Self>, message: Inbound<'_>) -> Reached {
        let ingest = basic_ingest(message.topic);
        let rules = self.reached(message.topic, ingest.map(|(name, _)| name));
        let reached = Reached {
            rules: rules.len(),
            ingest: ingest.is_some(),
        };
        if rules.is_empty() {
            if let Some((name, _)) = ingest {
                tracing::warn!(rule = %name, "Basic Ingest message for no such rule: dropped (IoT counts RuleNotFound)");
            }
            return reached;
        }
        let topic = ingest.map_or(message.topic, |(_, rest)| rest);
        // Once per message, whatever the number of rules.
        let json = payload_json(message.payload);
        for rule in rules.iter().filter(|r| !r.disabled()) {
            self.run(rule, &message, topic, json.as_ref());
        }
        reached
    }

    /// The rules a message on `topic` reaches: the one Basic Ingest names, or
    /// those whose FROM matches.
    fn reached(&self, topic: &str, ingest: Option<&str>) -> Vec<Arc<Rule>> {
        let rules = self.read();
        match ingest {
            Some(name) => rules.get(name).cloned().into_iter().collect(),
            None => rules
                .values()
                .filter(|r| r.sql.from().is_some_and(|from| matches(from, topic)))
                .cloned()
                .collect(),
        }
    }

    fn run(self: &Arc<Self>, rule: &Arc<Rule>, message: &Inbound<'_>, topic: &str, json: Option<&serde_json::Value>) {
        let context = Context {
            version: rule.sql.version(),
            topic,
            client_id: message.client_id,
            principal: message.principal,
            timestamp_ms: unix_millis(),
            account_id: &self.account_id,
            trace_id: None,
            payload: message.payload,
            json,
        };
        let output = rule.sql.evaluate(&context);
        if let Some(usage) = self.usage.get() {
            // A rule the message reaches is triggered; the pricing page bills at
            // least one action per triggered rule.
            let actions = if output.is_some() { rule.actions.len() } else { 0 };
            usage.rule(topic.len() + message.payload.len(), actions);
        }
        let Some(output) = output else {
            return;
        };
        tracing::debug!(rule = %rule.name, topic = %topic, "rule matched");
        let source = Source {
            rule,
            topic,
            client_id: message.client_id,
            payload: message.payload,
            depth: message.depth,
            report: true,
        };
        for action in &rule.actions {
            self.act(action, &output, &context, source);
        }
    }

    /// Runs one action; a failure goes to the rule's error action (when `source`
    /// says to report it).
    fn act(self: &Arc<Self>, action: &Action, output: &Output, context: &Context<'_>, source: Source<'_>) {
        match action {
            Action::Lambda { function_arn } => {
                let event = match output {
                    Output::Json(json) => json.to_string().into_bytes(),
                    Output::Bytes(_) => {
                        let why =
                            "the Lambda action takes JSON: select encode(*, 'base64') AS data for a binary payload";
                        return self.failed(source.owned(), action, why);
                    }
                };
                let Some(invoker) = &self.invoker else {
                    let why = "no Lambda endpoint: start the local stack with --lambda-endpoint URL (e.g. http://127.0.0.1:9000 for cargo lambda watch) or AWS_ENDPOINT_URL_LAMBDA";
                    return self.failed(source.owned(), action, why);
                };
                // Owned: the invocation finishes after this message is gone.
                let failure = source.owned();
                let engine = self.clone();
                let failed_action = action.clone();
                invoker.invoke(function_arn, event, move |error: InvokeError| {
                    engine.failed(failure, &failed_action, &error.to_string());
                });
            }
            Action::Republish {
                template, qos, headers, ..
            } => match template.render(context) {
                Some(topic) => self.republish(Republish {
                    topic,
                    payload: output.to_bytes(),
                    qos: *qos,
                    headers: headers.clone(),
                    depth: source.depth.saturating_add(1),
                }),
                None => self.failed(source.owned(), action, "the topic template has an Undefined expression"),
            },
        }
    }
}

impl Engine {
    /// Hands a republished message to the gateway, unless the chain is a loop.
    fn republish(&self, message: Republish) {
        if message.depth > MAX_REPUBLISH_DEPTH {
            tracing::warn!(topic = %message.topic, "republish dropped: {MAX_REPUBLISH_DEPTH} republishes in a row (a rule that feeds itself?)");
            return;
        }
        match self.sink.get() {
            Some(sink) => sink(message),
            None => tracing::warn!(topic = %message.topic, "republish dropped: the engine has no router"),
        }
    }

    /// Logs a failed action and runs the rule's error action with IoT's error
    /// message (<https://docs.aws.amazon.com/iot/latest/developerguide/rule-error-handling.html>).
    fn failed(self: &Arc<Self>, failure: Failure, action: &Action, why: &str) {
        tracing::warn!(rule = %failure.rule.name, action = action.kind(), resource = action.resource(), "rule action failed: {why}");
        let Some(error_action) = failure.rule.error_action.as_ref().filter(|_| failure.report) else {
            return;
        };
        let message = json!({
            "ruleName": failure.rule.name,
            "topic": failure.topic,
            "cloudwatchTraceId": serverless_websockets_core::random::hex::<16>(),
            "clientId": failure.client_id.as_deref().unwrap_or("n/a"),
            "base64OriginalPayload": base64::engine::general_purpose::STANDARD.encode(&failure.payload),
            "failures": [{"failedAction": action.kind(), "failedResource": action.resource(), "errorMessage": why}],
        });
        let output = Output::Json(message);
        let context = Context {
            version: failure.rule.sql.version(),
            topic: &failure.topic,
            client_id: failure.client_id.as_deref(),
            principal: None,
            timestamp_ms: unix_millis(),
            account_id: &self.account_id,
            trace_id: None,
            payload: &failure.payload,
            json: None,
        };
        // An error action's own failure is only logged.
        let source = Source {
            report: false,
            ..failure.borrowed()
        };
        self.act(error_action, &output, &context, source);
    }
}

/// The message a rule ran on, borrowed while it runs: what an error action
/// reports if an action fails.
#[derive(Clone, Copy)]
struct Source<'a> {
    rule: &'a Arc<Rule>,
    topic: &'a str,
    client_id: Option<&'a str>,
    payload: &'a [u8],
    depth: u8,
    /// Whether a failure runs the rule's error action (not for the error action's own).
    report: bool,
}

impl Source<'_> {
    /// Copied, only when a failure is reported or an invocation outlives the message.
    fn owned(&self) -> Failure {
        Failure {
            rule: self.rule.clone(),
            topic: self.topic.to_owned(),
            client_id: self.client_id.map(str::to_owned),
            payload: self.payload.to_vec(),
            depth: self.depth,
            report: self.report,
        }
    }
}

/// [`Source`], owned.
struct Failure {
    rule: Arc<Rule>,
    topic: String,
    client_id: Option<String>,
    payload: Vec<u8>,
    depth: u8,
    report: bool,
}

impl Failure {
    fn borrowed(&self) -> Source<'_> {
        Source {
            rule: &self.rule,
            topic: &self.topic,
            client_id: self.client_id.as_deref(),
            payload: &self.payload,
            depth: self.depth,
            report: self.report,
        }
    }
}

/// `$aws/rules/<name>/<rest>`: the rule's name and the topic without the prefix.
pub fn basic_ingest(topic: &str) -> Option<(&str, &str)> {
    let rest = topic.strip_prefix(BASIC_INGEST)?;
    let (name, topic) = rest.split_once('/')?;
    (!name.is_empty() && !topic.is_empty()).then_some((name, topic))
}

/// Now, in Unix seconds: when a rule was created (`createdAt`).
pub(crate) fn unix_seconds() -> u64 {
    unix_millis() / 1000
}

fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
