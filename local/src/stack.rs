//! The local stack behind `serverless-websockets local`: the vending API, an STS
//! emulator and an IoT device-gateway emulator in one process,
//! so the whole system runs and is tested on one machine with no AWS account.
//!
//! The vending API is the same [`serverless_websockets_vending::api::router`] as in Lambda and reaches the
//! local STS through the same `aws-sdk-sts` code, only with the endpoint
//! overridden and the local admin credentials standing in for the Lambda
//! execution role. The emulators share one [`crate::identity::IdentityStore`]: what STS
//! issues, the gateway authenticates and authorizes.
//!
//! [`LocalStack::start`] binds every listener before it returns, so the addresses
//! it reports (port 0 resolved) already accept connections.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::gateway::{Gateway, GatewayOptions};
use crate::identity::{Identity, IdentityStore};
use crate::listen::{Addresses, BindError, Listeners, Ports, serve};
use crate::sts::{LocalRole, StsEmulator};
use serverless_websockets_core::arn::IotArns;
use serverless_websockets_core::policy::{PolicyDocument, backend_policy, client_role_policy};
use serverless_websockets_vending::config::{AuthSettings, Config, ConfigError};

/// The name of the local client role.
pub const CLIENT_ROLE_NAME: &str = "serverless-websockets-client";

/// What `serverless-websockets local` is asked to run.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    pub host: IpAddr,
    pub api_port: u16,
    pub sts_port: u16,
    pub iot_port: u16,
    pub region: String,
    pub account_id: String,
    pub admin_access_key_id: String,
    pub admin_secret_access_key: String,
    /// The local backend identity: the template's backend policy, least privilege.
    pub backend_access_key_id: String,
    pub backend_secret_access_key: String,
    /// Serve the gateway over TLS with a throwaway CA written to `ca_cert_path`.
    pub tls: bool,
    /// Where `--tls` writes the CA certificate; a fresh temporary file when `None`.
    pub ca_cert_path: Option<PathBuf>,
    pub gateway: GatewayOptions,
    /// Header, body and TLS deadlines of every listener.
    pub timeouts: serverless_websockets_vending::server::Timeouts,
    /// Vending-API settings (`AUTH_MODE`, `SUBSCRIBE_TOPICS`, …) that take
    /// precedence over the environment.
    pub settings: Vec<(String, String)>,
    /// Where the rules engine's Lambda actions invoke functions: the Lambda
    /// Invoke API's base URL (`cargo lambda watch`: `http://127.0.0.1:9000`).
    pub lambda_endpoint: Option<String>,
    /// How long a Lambda action waits for the function before it counts as
    /// failed (the local endpoints answer when the function has returned).
    pub lambda_timeout: Duration,
    /// Topic rules to create at start-up: a JSON array of CreateTopicRule
    /// inputs (`{"ruleName", "topicRulePayload"}`).
    pub rules_file: Option<PathBuf>,
    /// Host names answered besides `localhost` and IP addresses (see `door`).
    pub allowed_hosts: Vec<String>,
}

impl LocalOptions {
    /// Loopback, every port picked by the OS, default identity: for tests.
    pub fn ephemeral() -> Self {
        Self {
            host: IpAddr::from([127, 0, 0, 1]),
            api_port: 0,
            sts_port: 0,
            iot_port: 0,
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
            admin_access_key_id: "AKIALOCALADMIN000000".into(),
            admin_secret_access_key: "local-admin-secret".into(),
            backend_access_key_id: "AKIALOCALBACKEND0000".into(),
            backend_secret_access_key: "local-backend-secret".into(),
            tls: false,
            ca_cert_path: None,
            gateway: GatewayOptions::default(),
            timeouts: serverless_websockets_vending::server::Timeouts::default(),
            settings: Vec::new(),
            lambda_endpoint: None,
            lambda_timeout: crate::rules::invoke::DEFAULT_TIMEOUT,
            rules_file: None,
            allowed_hosts: Vec::new(),
        }
    }
}

/// The ready file of a stack started without `--ready-file`: private to the
/// user (`$XDG_RUNTIME_DIR`, else a 0700 directory in the temporary directory),
/// named after the API port.
pub fn default_ready_file(api_port: u16) -> PathBuf {
    let dir = match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("serverless-websockets"),
        _ => {
            let user = std::env::var("USER").unwrap_or_else(|_| "user".to_owned());
            std::env::temp_dir().join(format!("serverless-websockets-{user}"))
        }
    };
    dir.join(format!("local-{api_port}.json"))
}

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Auth(#[from] serverless_websockets_vending::auth::SetupError),
    #[error("invalid local setting: {0}")]
    Setting(String),
    #[error("cannot write the ready file {path}: {source}")]
    ReadyFile { path: String, source: std::io::Error },
    #[error("cannot read the ready file {path}: {problem}")]
    ReadyFileRead { path: String, problem: String },
    #[error(transparent)]
    Tls(#[from] crate::gateway::tls::TlsError),
    #[error("cannot load the rules file {path}: {problem}")]
    Rules { path: String, problem: String },
}

/// Where everything is, as written to the ready file.
#[derive(Debug, Clone, Serialize)]
pub struct ReadyInfo {
    pub api_url: String,
    /// The browser demo page, and the browser client it loads.
    pub demo_url: String,
    pub client_js_url: String,
    /// What AWS would bill for the traffic so far, as JSON (`GET`).
    pub usage_url: String,
    pub sts_endpoint: String,
    /// `ws://host:port` (or `wss://` with `--tls`): MQTT over WebSocket at `/mqtt`.
    pub iot_endpoint: String,
    /// `http://host:port` (or `https://`): the HTTPS publish API, same port.
    pub iot_data_endpoint: String,
    /// The IoT control plane's topic-rule operations (`aws iot create-topic-rule
    /// --endpoint-url …`): the gateway's port too.
    pub iot_control_endpoint: String,
    /// Where Lambda actions invoke functions, if anywhere.
    pub lambda_endpoint: Option<String>,
    pub region: String,
    pub account_id: String,
    pub client_role_arn: String,
    pub admin: AdminCredentials,
    /// Least privilege for a backend: publish to client topics, direct messages,
    /// presence, subscriptions, kick (the template's `BackendPolicy`).
    pub backend: BackendCredentials,
    /// Path of the PEM file of the gateway's local CA with `--tls`; `null` otherwise.
    pub ca_cert: Option<String>,
    /// With `AUTH_MODE=jwt` and an HS256 secret: what a test token needs.
    pub jwt: Option<LocalJwt>,
    /// With `AUTH_MODE=jwt`: the built-in JWT custom authorizer, which MQTT
    /// clients name to connect with a token instead of vended credentials.
    pub authorizer: Option<LocalAuthorizer>,
    /// The grant templates in effect.
    pub grants: LocalGrants,
}

/// The built-in custom authorizer, as a client names it.
#[derive(Debug, Clone, Serialize)]
pub struct LocalAuthorizer {
    /// `x-amz-customauthorizer-name`.
    pub name: String,
    /// The query parameter (or header) that carries the token.
    pub token_key_name: String,
}

/// The built-in authorizer's name and token parameter.
pub const BUILTIN_AUTHORIZER: &str = "serverless-websockets-jwt";
pub const BUILTIN_TOKEN_KEY: &str = "token";

/// The local JWT settings, so scripts can mint tokens the local API accepts.
#[derive(Debug, Clone, Serialize)]
pub struct LocalJwt {
    pub issuer: String,
    pub audience: Option<String>,
    pub hs256_secret: String,
}

impl LocalJwt {
    /// What a client needs to mint tokens the API accepts, when it verifies HS256 tokens.
    fn of(config: &Config) -> Option<Self> {
        match &config.auth {
            AuthSettings::Jwt(jwt) => jwt.hs256_secret.as_ref().map(|secret| Self {
                issuer: jwt.issuer.clone(),
                audience: jwt.audience.clone(),
                hs256_secret: secret.expose().to_owned(),
            }),
            AuthSettings::None => None,
        }
    }
}

/// Defaults for `AUTH_MODE=jwt` in the local stack (override with the JWT_* variables).
pub const LOCAL_JWT_ISSUER: &str = "serverless-websockets-local";
pub const LOCAL_JWT_AUDIENCE: &str = "serverless-websockets-local";
pub const LOCAL_JWT_SECRET: &str = "local-development-secret-never-use-in-production";

impl LocalOptions {
    /// The ports asked for.
    fn ports(&self) -> Ports {
        Ports {
            sts: self.sts_port,
            api: self.api_port,
            iot: self.iot_port,
        }
    }

    /// A vending-API setting as the local stack sees it: the explicit settings, then
    /// the environment, then the local defaults (`AUTH_MODE=none`; in jwt mode a
    /// local issuer, audience and HS256 secret unless JWKS or others are given).
    pub fn setting(&self, name: &str) -> Option<String> {
        let explicit = |n: &str| {
            self.settings
                .iter()
                .rev()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
                .or_else(|| std::env::var(n).ok())
        };
        if let Some(value) = explicit(name) {
            return Some(value);
        }
        let jwt = explicit("AUTH_MODE").as_deref() == Some("jwt");
        let has_jwks = explicit("JWT_JWKS_URL").is_some() || explicit("JWT_JWKS_FILE").is_some();
        match name {
            "AUTH_MODE" => Some("none".into()),
            "JWT_ISSUER" if jwt => Some(LOCAL_JWT_ISSUER.into()),
            "JWT_AUDIENCE" if jwt => Some(LOCAL_JWT_AUDIENCE.into()),
            "JWT_HS256_SECRET" if jwt && !has_jwks => Some(LOCAL_JWT_SECRET.into()),
            _ => None,
        }
    }

    /// A token the local stack accepts in jwt mode, for `sub`, valid for `ttl`.
    pub fn mint_token(&self, sub: &str, ttl: Duration) -> Result<String, LocalError> {
        self.mint_token_with(sub, &serde_json::Map::new(), ttl)
    }

    /// The same with more claims (`rooms`, `tenant`, … for `{claims.NAME}` grants);
    /// `sub`, `iss`, `aud`, `iat` and `exp` are the stack's.
    pub fn mint_token_with(
        &self,
        sub: &str,
        extra: &serde_json::Map<String, serde_json::Value>,
        ttl: Duration,
    ) -> Result<String, LocalError> {
        let secret = self
            .setting("JWT_HS256_SECRET")
            .ok_or_else(|| LocalError::Setting("minting a token needs AUTH_MODE=jwt with an HS256 secret".into()))?;
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut claims = serde_json::json!({
            "sub": sub,
            "iss": self.setting("JWT_ISSUER").unwrap_or_else(|| LOCAL_JWT_ISSUER.into()),
            "iat": now,
            "exp": now + ttl.as_secs(),
        });
        if let Some(object) = claims.as_object_mut() {
            for (name, value) in extra {
                object.entry(name.clone()).or_insert_with(|| value.clone());
            }
        }
        if let Some(audience) = self.setting("JWT_AUDIENCE") {
            claims["aud"] = audience.into();
        }
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .map_err(|e| LocalError::Setting(format!("cannot sign the token: {e}")))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AdminCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct BackendCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub arn: String,
}

/// A running local stack. Dropping it does not stop it; call [`LocalStack::shutdown`].
pub struct LocalStack {
    info: ReadyInfo,
    store: Arc<IdentityStore>,
    gateway: Arc<Gateway>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    /// The CA certificate written to the temporary directory for `--tls` without
    /// `--ca-cert`: removed at shutdown.
    temp_ca: Option<PathBuf>,
}

/// The three listeners' routers, each behind the door.
struct Routers {
    sts: axum::Router,
    iot: axum::Router,
    api: axum::Router,
}

/// Serves each listener with its router until `stopped` turns true.
fn spawn_listeners(
    listeners: Listeners,
    routers: Routers,
    tls: Option<Arc<rustls::ServerConfig>>,
    timeouts: serverless_websockets_vending::server::Timeouts,
    stopped: &watch::Receiver<bool>,
) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    tasks.spawn(serve(listeners.sts, routers.sts, None, timeouts, stopped.clone()));
    tasks.spawn(serve(listeners.iot, routers.iot, tls, timeouts, stopped.clone()));
    tasks.spawn(serve(listeners.api, routers.api, None, timeouts, stopped.clone()));
    tasks
}

impl LocalStack {
    /// Binds all listeners, then serves them in the background: bind → decide
    /// the addresses, identities and settings (no I/O) → build the vending API →
    /// spawn.
    pub async fn start(options: LocalOptions) -> Result<Self, LocalError> {
        let listeners = Listeners::bind(options.host, options.ports(), options.tls).await?;
        let addresses = listeners.addresses()?;
        let (tls, ca_cert) = gateway_tls(&options, addresses.iot)?;
        let temp_ca = ca_cert
            .as_ref()
            .filter(|_| options.ca_cert_path.is_none())
            .map(PathBuf::from);
        let plan = Plan::new(&options, &addresses)?;
        let (issuer, grants_fn) = local_issuer(&options, &plan.sts_endpoint, &plan.config).await?;
        let grants = LocalGrants::of(&plan.config.grants);
        let demo = crate::demo::router(plan.demo_config(&options));
        let jwt = LocalJwt::of(&plan.config);
        let jwt_mode = matches!(plan.config.auth, AuthSettings::Jwt(_));
        let door = Arc::new(crate::door::Door::new(
            options.host,
            &[addresses.api.port(), addresses.iot.port()],
            &options.allowed_hosts,
            plan.config.cors_allow_origins.clone(),
        ));
        let (stop, stopped) = watch::channel(false);
        let rules = rules_engine(&options)?;
        let gateway = Arc::new(Gateway::with_rules(
            plan.store.clone(),
            plan.arns,
            options.gateway.clone(),
            rules,
            stopped.clone(),
        ));
        gateway.attach_rules();
        let api = serverless_websockets_vending::api::build_with(plan.config, issuer, grants_fn)?;
        let api = crate::door::guard(with_usage(api, demo, &gateway.usage), &door, false);
        let authorizer = jwt_mode.then(|| builtin_authorizer(&options, &gateway)).transpose()?;
        let emulator = StsEmulator::new(&options.account_id, vec![plan.client_role], plan.store.clone());
        let routers = Routers {
            sts: crate::door::guard(Arc::new(emulator).router(), &door, true),
            iot: crate::door::guard(gateway.clone().router(), &door, true),
            api,
        };
        let tasks = spawn_listeners(listeners, routers, tls, options.timeouts, &stopped);
        let mut info = ReadyInfo::new(
            options,
            &addresses,
            plan.client_role_arn,
            plan.backend_arn,
            ca_cert,
            jwt,
            authorizer,
        );
        info.grants = grants;
        Ok(Self {
            info,
            store: plan.store,
            gateway,
            stop,
            tasks,
            temp_ca,
        })
    }

    pub fn info(&self) -> &ReadyInfo {
        &self.info
    }

    /// The identities the emulators know, shared with the gateway.
    pub fn identities(&self) -> &Arc<IdentityStore> {
        &self.store
    }

    /// What AWS would bill for the traffic so far.
    pub fn usage(&self) -> crate::usage::Report {
        self.gateway.usage.report()
    }

    /// The IoT gateway, for tests that inspect the broker.
    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gateway
    }

    /// Writes [`ReadyInfo`] as JSON to `path` atomically (temp file, then rename).
    pub fn write_ready_file(&self, path: &Path) -> Result<(), LocalError> {
        let err = |source| LocalError::ReadyFile {
            path: path.display().to_string(),
            source,
        };
        let json = serde_json::to_string_pretty(&self.info).map_err(|e| err(std::io::Error::other(e)))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            private_dir(dir).map_err(err)?;
        }
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        write_private(&tmp, json.as_bytes()).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }

    /// Stops accepting, lets in-flight requests finish, and waits for every server.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
        if let Some(path) = self.temp_ca.take() {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Resolves when any server stops on its own (an error); for the command's main loop.
    pub async fn wait(&mut self) {
        self.tasks.join_next().await;
    }
}

impl Drop for LocalStack {
    /// A stack dropped without [`LocalStack::shutdown`] (a test that ends early)
    /// still removes its temporary CA file.
    fn drop(&mut self) {
        if let Some(path) = self.temp_ca.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// What the stack is made of, decided from the options and the addresses
/// without I/O: the vending API's settings, the IoT ARNs, the identities the
/// emulators share and the client role.
struct Plan {
    config: Config,
    arns: IotArns,
    store: Arc<IdentityStore>,
    client_role: LocalRole,
    client_role_arn: String,
    backend_arn: String,
    sts_endpoint: String,
    api_base: String,
    iot_data_endpoint: String,
}

/// A secret access key for a local identity: 40 random hex characters.
pub fn random_secret() -> String {
    serverless_websockets_core::random::hex::<20>()
}

/// `export AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… AWS_DEFAULT_REGION=…` for
/// `who` (`admin` or `backend`) of the stack whose ready file is `path`.
pub fn export_line(path: &Path, who: &str) -> Result<String, LocalError> {
    let problem = |problem: String| LocalError::ReadyFileRead {
        path: path.display().to_string(),
        problem,
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        problem(format!(
            "{e}; start the stack first (serverless-websockets local), with the same --api-port or --ready-file"
        ))
    })?;
    let info: serde_json::Value = serde_json::from_str(&text).map_err(|e| problem(e.to_string()))?;
    let field = |name: &str| info[who][name].as_str();
    match (
        field("access_key_id"),
        field("secret_access_key"),
        info["region"].as_str(),
    ) {
        (Some(key), Some(secret), Some(region)) => Ok(format!(
            "export AWS_ACCESS_KEY_ID={key} AWS_SECRET_ACCESS_KEY={secret} AWS_DEFAULT_REGION={region}"
        )),
        _ => Err(problem(format!("no {who} credentials in it"))),
    }
}

/// Creates `dir` readable by its owner only.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Writes `bytes` to a new file readable by its owner only: the ready file
/// holds the local secrets.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

impl Plan {
    fn new(options: &LocalOptions, addresses: &Addresses) -> Result<Self, LocalError> {
        let iot = addresses.iot_endpoint();
        let client_role_arn = format!("arn:aws:iam::{}:role/{CLIENT_ROLE_NAME}", options.account_id);
        let config = vending_config(options, &client_role_arn, &iot.websocket_base())?;
        let arns = IotArns::new("aws", &options.region, &options.account_id)
            .map_err(|e| LocalError::Setting(e.to_string()))?;
        let store = Arc::new(IdentityStore::new());
        let admin_arn = seed_admin(&store, options);
        let backend_arn = seed_backend(&store, options, &arns, &config.grants);
        let client_role = LocalRole {
            arn: client_role_arn.clone(),
            name: CLIENT_ROLE_NAME.into(),
            role_id: format!("AROA{}", crate::sts::random_base32(17)),
            max_session: Duration::from_secs(3600),
            policies: Arc::from(vec![client_role_policy(&arns, &config.grants)]),
            trusted: vec![admin_arn],
            inline: Arc::default(),
        };
        Ok(Self {
            config,
            arns,
            store,
            client_role,
            client_role_arn,
            backend_arn,
            sts_endpoint: addresses.sts_endpoint(),
            api_base: addresses.api_base(),
            iot_data_endpoint: iot.https_base(),
        })
    }

    /// The demo page's settings.
    fn demo_config(&self, options: &LocalOptions) -> crate::demo::DemoConfig {
        crate::demo::DemoConfig {
            credentials_url: format!("{}/credentials", self.api_base),
            iot_data_endpoint: self.iot_data_endpoint.clone(),
            region: options.region.clone(),
            backend: crate::demo::DemoBackend {
                access_key_id: options.backend_access_key_id.clone(),
                secret_access_key: Some(options.backend_secret_access_key.clone()),
            },
            jwt: matches!(self.config.auth, AuthSettings::Jwt(_)),
        }
    }
}

impl ReadyInfo {
    fn new(
        options: LocalOptions,
        addresses: &Addresses,
        client_role_arn: String,
        backend_arn: String,
        ca_cert: Option<String>,
        jwt: Option<LocalJwt>,
        authorizer: Option<LocalAuthorizer>,
    ) -> Self {
        let api_base = addresses.api_base();
        let iot = addresses.iot_endpoint();
        Self {
            demo_url: format!("{api_base}/demo"),
            client_js_url: format!("{api_base}/client.js"),
            usage_url: format!("{api_base}/usage"),
            api_url: format!("{api_base}/credentials"),
            sts_endpoint: addresses.sts_endpoint(),
            iot_endpoint: iot.websocket_base(),
            iot_data_endpoint: iot.https_base(),
            iot_control_endpoint: iot.https_base(),
            lambda_endpoint: options.lambda_endpoint,
            region: options.region,
            account_id: options.account_id,
            client_role_arn,
            admin: AdminCredentials {
                access_key_id: options.admin_access_key_id,
                secret_access_key: options.admin_secret_access_key,
            },
            backend: BackendCredentials {
                access_key_id: options.backend_access_key_id,
                secret_access_key: options.backend_secret_access_key,
                arn: backend_arn,
            },
            ca_cert,
            jwt,
            authorizer,
            grants: LocalGrants::default(),
        }
    }
}

/// The grant templates in effect, as the banner and the ready file show them.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct LocalGrants {
    pub subscribe: Vec<String>,
    pub publish: Vec<String>,
    /// The template of each client's own topic (`TOPIC_PREFIX/{clientId}` by default).
    pub own_topic: String,
}

impl LocalGrants {
    /// The templates in effect; what `serve` and the Lambda warn about (a
    /// wildcard template) is logged here too.
    fn of(templates: &serverless_websockets_core::grants::GrantTemplates) -> Self {
        for warning in templates.warnings() {
            tracing::warn!("{warning}");
        }
        let strings = |list: &[serverless_websockets_core::grants::GrantTemplate]| {
            list.iter().map(|t| t.as_str().to_owned()).collect::<Vec<_>>()
        };
        let own_topic = templates
            .subscribe
            .iter()
            .find(|t| t.uses_client_id())
            .or_else(|| templates.subscribe.first())
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default();
        Self {
            subscribe: strings(&templates.subscribe),
            publish: strings(&templates.publish),
            own_topic,
        }
    }
}

/// Our JWT authorizer, running in this process as the function of the
/// authorizer [`BUILTIN_AUTHORIZER`] (signing disabled: the JWT is signed).
struct InProcessJwt(serverless_websockets_authorizer::JwtAuthorizer);

impl crate::authorizers::InProcess for InProcessJwt {
    fn invoke(
        &self,
        event: serde_json::Value,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<serde_json::Value, String>> + Send + '_>> {
        Box::pin(self.0.invoke_json(event))
    }
}

/// Registers the built-in JWT authorizer with the gateway: the same handler as
/// the Lambda, configured from the same settings as the local vending API.
fn builtin_authorizer(options: &LocalOptions, gateway: &Gateway) -> Result<LocalAuthorizer, LocalError> {
    let lookup = |name: &str| match name {
        "AWS_REGION" => Some(options.region.clone()),
        "IOT_ACCOUNT_ID" => Some(options.account_id.clone()),
        "IOT_PARTITION" => Some("aws".into()),
        other => options.setting(other),
    };
    let mut settings = serverless_websockets_authorizer::Settings::from_lookup(lookup)?;
    settings.min_interval = options.gateway.authorizer_min_interval;
    let handler = serverless_websockets_authorizer::JwtAuthorizer::new(settings)?;
    let function_arn = format!(
        "arn:aws:lambda:{}:{}:function:serverless-websockets-authorizer",
        options.region, options.account_id
    );
    gateway
        .authorizers
        .register_in_process(&function_arn, Arc::new(InProcessJwt(handler)));
    let request = crate::authorizers::AuthorizerRequest {
        authorizer_function_arn: Some(function_arn),
        token_key_name: Some(BUILTIN_TOKEN_KEY.into()),
        signing_disabled: Some(true),
        ..Default::default()
    };
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let authorizer =
        crate::authorizers::Authorizer::create(BUILTIN_AUTHORIZER, request, now).map_err(LocalError::Setting)?;
    gateway.authorizers.create(authorizer);
    Ok(LocalAuthorizer {
        name: BUILTIN_AUTHORIZER.into(),
        token_key_name: BUILTIN_TOKEN_KEY.into(),
    })
}

/// The API port: the vending API (metered), the demo page and `/usage`.
fn with_usage(api: axum::Router, demo: axum::Router, usage: &Arc<crate::usage::Usage>) -> axum::Router {
    metered_api(api, usage).merge(demo).merge(usage_router(usage))
}

/// The vending API, each request metered as API Gateway and Lambda bill it.
fn metered_api(api: axum::Router, usage: &Arc<crate::usage::Usage>) -> axum::Router {
    let usage = usage.clone();
    api.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let usage = usage.clone();
            async move {
                let started = std::time::Instant::now();
                let response = next.run(request).await;
                usage.vend(started.elapsed());
                response
            }
        },
    ))
}

/// `GET /usage`: the meter's report as JSON.
fn usage_router(usage: &Arc<crate::usage::Usage>) -> axum::Router {
    let usage = usage.clone();
    axum::Router::new().route(
        "/usage",
        axum::routing::get(move || {
            let usage = usage.clone();
            async move { axum::Json(usage.report()) }
        }),
    )
}

/// The rules engine: Lambda actions invoke at `--lambda-endpoint` (signed as the
/// local admin), and the rules of `--rules FILE` are created.
fn rules_engine(options: &LocalOptions) -> Result<Arc<crate::rules::Engine>, LocalError> {
    let invoker = options.lambda_endpoint.as_deref().map(|endpoint| {
        let credentials = aws_credential_types::Credentials::new(
            &options.admin_access_key_id,
            &options.admin_secret_access_key,
            None,
            None,
            "local-admin",
        );
        crate::rules::invoke::Invoker::new(endpoint, &options.region, credentials, options.lambda_timeout)
    });
    let engine = Arc::new(crate::rules::Engine::new(&options.account_id, invoker));
    if let Some(path) = &options.rules_file {
        let problem = |problem: String| LocalError::Rules {
            path: path.display().to_string(),
            problem,
        };
        let text = std::fs::read_to_string(path).map_err(|e| problem(e.to_string()))?;
        engine.load(&text).map_err(problem)?;
    }
    Ok(engine)
}

/// The admin identity may do anything, like an account's administrator.
#[allow(
    clippy::expect_used,
    reason = "a constant document, parsed by the tests on every start"
)]
fn admin_policy() -> PolicyDocument {
    PolicyDocument::parse(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#)
        .expect("the admin policy is valid")
}

/// With `--tls`: the gateway's TLS configuration and where its CA certificate was written.
fn gateway_tls(
    options: &LocalOptions,
    iot_addr: SocketAddr,
) -> Result<(Option<Arc<rustls::ServerConfig>>, Option<String>), LocalError> {
    if !options.tls {
        return Ok((None, None));
    }
    let path = match &options.ca_cert_path {
        Some(path) => path.clone(),
        None => std::env::temp_dir().join(format!(
            "serverless-websockets-ca-{}-{}.pem",
            std::process::id(),
            iot_addr.port()
        )),
    };
    let config = crate::gateway::tls::server_config(&path, &options.host.to_string())?;
    Ok((Some(config), Some(path.display().to_string())))
}

/// The vending API's configuration. Its own settings (prefix, duration, CORS)
/// still come from the environment, as in Lambda; only what the local stack
/// decides is fixed here.
fn vending_config(options: &LocalOptions, client_role_arn: &str, iot_endpoint: &str) -> Result<Config, LocalError> {
    Ok(Config::from_lookup(|name| match name {
        "CLIENT_ROLE_ARN" => Some(client_role_arn.to_owned()),
        "AWS_REGION" => Some(options.region.clone()),
        "IOT_ENDPOINT" => Some(iot_endpoint.to_owned()),
        // A read of the local IAM is a loopback request: a ban bites at the
        // next vend, unless the setting asks to cache as in AWS.
        "BAN_CACHE_SECONDS" => options.setting(name).or_else(|| Some("0".to_owned())),
        other => options.setting(other),
    })?)
}

/// Records the local admin (the stand-in for the Lambda execution role); returns its ARN.
fn seed_admin(store: &IdentityStore, options: &LocalOptions) -> String {
    let admin_arn = format!("arn:aws:iam::{}:user/admin", options.account_id);
    store.insert(
        Identity {
            access_key_id: options.admin_access_key_id.clone(),
            secret_access_key: options.admin_secret_access_key.clone(),
            session_token: None,
            expiration: None,
            arn: admin_arn.clone(),
            user_id: format!("AIDA{}", crate::sts::random_base32(17)),
            account: options.account_id.clone(),
            policies: Arc::from(vec![admin_policy()]),
            session_policies: None,
            source_identity: None,
            variables: None,
            issued_at: None,
            role_since: None,
        },
        SystemTime::now(),
    );
    admin_arn
}

/// Records the local backend identity, with the template's backend policy; returns its ARN.
fn seed_backend(
    store: &IdentityStore,
    options: &LocalOptions,
    arns: &IotArns,
    grants: &serverless_websockets_core::grants::GrantTemplates,
) -> String {
    let arn = format!("arn:aws:iam::{}:user/backend", options.account_id);
    store.insert(
        Identity {
            access_key_id: options.backend_access_key_id.clone(),
            secret_access_key: options.backend_secret_access_key.clone(),
            session_token: None,
            expiration: None,
            arn: arn.clone(),
            user_id: format!("AIDA{}", crate::sts::random_base32(17)),
            account: options.account_id.clone(),
            policies: Arc::from(vec![backend_policy(arns, grants)]),
            session_policies: None,
            source_identity: None,
            variables: None,
            issued_at: None,
            role_since: None,
        },
        SystemTime::now(),
    );
    arn
}

/// The vending API's issuer: the same `aws-sdk-sts` code as in Lambda, pointed
/// at the local STS and signing as the local admin, reading the ban policy
/// from the local IAM.
async fn local_issuer(
    options: &LocalOptions,
    sts_endpoint: &str,
    config: &Config,
) -> Result<
    (
        Arc<serverless_websockets_vending::issuer::AssumeRoleIssuer>,
        Option<Arc<dyn serverless_websockets_vending::grants_fn::GrantsSource>>,
    ),
    LocalError,
> {
    let sdk_config = serverless_websockets_vending::issuer::sdk_config_loader()
        .region(aws_config::Region::new(options.region.clone()))
        .credentials_provider(aws_credential_types::Credentials::new(
            &options.admin_access_key_id,
            &options.admin_secret_access_key,
            None,
            None,
            "local-admin",
        ))
        .endpoint_url(sts_endpoint)
        .load()
        .await;
    // IAM (the ban policy) answers on the STS port, as the endpoint says.
    let bans = serverless_websockets_vending::bans::BanList::for_config(config, &sdk_config);
    let issuer = Arc::new(
        serverless_websockets_vending::issuer::AssumeRoleIssuer::new(&sdk_config, config.client_role_arn.as_str())
            .with_bans(bans),
    );
    // The grants function runs where the rules' functions do: --lambda-endpoint.
    let grants_fn = match (&config.grants_function, &options.lambda_endpoint) {
        (None, _) => None,
        (Some(_), None) => {
            return Err(LocalError::Setting(
                "GRANTS_FUNCTION needs a Lambda endpoint: start the stack with --lambda-endpoint URL (e.g. http://127.0.0.1:9000 for cargo lambda watch)".into(),
            ));
        }
        (Some(function), Some(endpoint)) => {
            let grants: Arc<dyn serverless_websockets_vending::grants_fn::GrantsSource> =
                Arc::new(serverless_websockets_vending::grants_fn::LambdaGrants::at(
                    &sdk_config,
                    endpoint,
                    function,
                    config.grants_function_timeout,
                ));
            Some(grants)
        }
    };
    Ok((issuer, grants_fn))
}
