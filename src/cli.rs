//! The `local` command's flags, how they map to [`LocalOptions`], and the banner
//! it prints once every listener is up.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serverless_websockets_vending::entry::shutdown_signal;
use serverless_websockets_vending::server::Timeouts;

use serverless_websockets_local::gateway::{DenyMode, GatewayOptions, Limits};
use serverless_websockets_local::stack::{LocalOptions, LocalStack, ReadyInfo};

#[derive(clap::Args)]
pub struct LocalArgs {
    /// Address every listener binds to.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port of the vending API (0: any free port).
    #[arg(long, default_value_t = 4601)]
    pub api_port: u16,
    /// Port of the STS emulator (0: any free port).
    #[arg(long, default_value_t = 4600)]
    pub sts_port: u16,
    /// Port of the IoT device gateway (0: any free port).
    #[arg(long, default_value_t = 8443)]
    pub iot_port: u16,
    /// Serve the IoT gateway over TLS (wss://, https://) with a throwaway local CA.
    #[arg(long)]
    pub tls: bool,
    /// With --tls: where to write the local CA certificate (PEM) for clients to trust.
    #[arg(long, requires = "tls")]
    pub ca_cert: Option<PathBuf>,
    /// Once every listener accepts connections, write their addresses here as JSON.
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
    /// Answer an unauthorized CONNECT with CONNACK return code 5 before closing
    /// (IoT Core just closes the connection).
    #[arg(long)]
    pub connack_on_deny: bool,
    /// Answer an unauthorized SUBSCRIBE filter with SUBACK 0x80 instead of
    /// disconnecting (IoT Core disconnects).
    #[arg(long)]
    pub suback_on_deny: bool,
    /// Smallest keep-alive the gateway accepts, in seconds; lower values are raised
    /// to it (IoT Core: 30).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=1200))]
    pub min_keep_alive: u64,
    /// Caller authentication of the local vending API: none or jwt (sets AUTH_MODE;
    /// jwt defaults to a local issuer and HS256 secret, see --print-token).
    #[arg(long, value_parser = ["none", "jwt"])]
    pub auth: Option<String>,
    /// Print a token for this sub that the local API accepts in jwt mode, and exit.
    #[arg(long, value_name = "SUB")]
    pub print_token: Option<String>,
    /// With --print-token: more claims for the token, as a JSON object, e.g.
    /// '{"rooms": ["42", "7"]}' for `{claims.rooms}` grants.
    #[arg(long, value_name = "JSON", requires = "print_token")]
    pub claims: Option<String>,
    /// Region the local services claim to be in.
    #[arg(long, env = "LOCAL_REGION", default_value = "us-east-1")]
    pub region: String,
    /// Account ID in local ARNs.
    #[arg(long, env = "LOCAL_ACCOUNT_ID", default_value = "000000000000")]
    pub account_id: String,
    /// Access key ID of the local admin (stands in for the Lambda execution role).
    #[arg(long, env = "LOCAL_ADMIN_ACCESS_KEY_ID", default_value = "AKIALOCALADMIN000000")]
    pub admin_access_key_id: String,
    /// Secret access key of the local admin (random per start unless set).
    #[arg(long, env = "LOCAL_ADMIN_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub admin_secret_access_key: Option<String>,
    /// Access key ID of the local backend identity (least privilege: publish to
    /// client topics, direct messages, presence, kick — the template's BackendPolicy).
    #[arg(long, env = "LOCAL_BACKEND_ACCESS_KEY_ID", default_value = "AKIALOCALBACKEND0000")]
    pub backend_access_key_id: String,
    /// Secret access key of the local backend identity (random per start unless set).
    #[arg(long, env = "LOCAL_BACKEND_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub backend_secret_access_key: Option<String>,
    /// Also answer requests for this host name (repeatable): by default only
    /// localhost and IP addresses are answered, which stops DNS rebinding.
    #[arg(long = "allow-host", value_name = "NAME")]
    pub allow_hosts: Vec<String>,
    /// Print `export AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… AWS_DEFAULT_REGION=…`
    /// for the running stack's admin or backend (from its ready file) and exit:
    /// `eval "$(serverless-websockets local --print-env backend)"`.
    #[arg(long, value_name = "WHO", value_parser = ["admin", "backend"])]
    pub print_env: Option<String>,
    /// The key that signs resume tokens (at least 32 bytes; sets RESUME_KEY). By
    /// default a random key per start: tokens from an earlier run are refused.
    #[arg(long, env = "RESUME_KEY", hide_env_values = true)]
    pub resume_key: Option<String>,
    /// The Lambda Invoke API that topic rules' Lambda actions call (`cargo lambda
    /// watch` serves it at http://127.0.0.1:9000; `sam local start-lambda` at :3001).
    #[arg(long, env = "AWS_ENDPOINT_URL_LAMBDA", value_name = "URL")]
    pub lambda_endpoint: Option<String>,
    /// How long a Lambda action waits for the function, in seconds, before the
    /// message goes to the rule's error action. The local endpoints answer when
    /// the function has returned, and cargo lambda watch first builds a changed
    /// function. Default: Lambda's longest function timeout.
    #[arg(long, value_name = "SECONDS", default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..=900))]
    pub lambda_timeout: u64,
    /// Topic rules to create at start-up: a JSON array of
    /// {"ruleName", "topicRulePayload"} (CreateTopicRule's input).
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// How long a persistent session (cleanSession = 0) outlives its client's
    /// disconnect, in seconds (IoT Core's default: 3600).
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=604_800))]
    pub session_expiry: u64,
    /// How long one WebSocket connection lasts before the gateway closes it
    /// (`WEBSOCKET_TTL_EXPIRATION`), in seconds (IoT Core: 86400, 24 hours). Lower
    /// it to see your client reconnect in seconds.
    #[arg(long, default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub max_connection_duration: u64,
    /// CONNECTs per second per client ID; a faster one is refused (MQTT 5: CONNACK
    /// 0x9F). IoT Core: 1. 0: no limit.
    #[arg(long, default_value_t = 1)]
    pub client_id_connects_per_second: u32,
    /// Inbound PUBLISHes per second per connection; faster ones are dropped. IoT
    /// Core: 100. 0: no limit.
    #[arg(long, default_value_t = 100)]
    pub publishes_per_second: u32,
    /// Inbound payload bytes per second per connection; publishes past it are
    /// dropped. IoT Core: 524288 (512 KiB). 0: no limit.
    #[arg(long, default_value_t = 524_288)]
    pub publish_bytes_per_second: u32,
    /// MQTT 5 user properties of one message, in bytes as encoded. IoT Core: 8192.
    #[arg(long, default_value_t = 8192)]
    pub max_user_properties_bytes: usize,
    /// Grant a SUBSCRIBE asking for QoS 2 as QoS 1, as generic MQTT brokers do
    /// (IoT Core closes the connection without SUBACK).
    #[arg(long)]
    pub grant_qos2_as_qos1: bool,
}

impl LocalArgs {
    /// The stack these flags describe.
    fn options(&self) -> LocalOptions {
        let deny = |reply: bool| if reply { DenyMode::Reply } else { DenyMode::Close };
        LocalOptions {
            host: self.host,
            api_port: self.api_port,
            sts_port: self.sts_port,
            iot_port: self.iot_port,
            region: self.region.clone(),
            account_id: self.account_id.clone(),
            admin_access_key_id: self.admin_access_key_id.clone(),
            admin_secret_access_key: self
                .admin_secret_access_key
                .clone()
                .unwrap_or_else(serverless_websockets_local::stack::random_secret),
            backend_access_key_id: self.backend_access_key_id.clone(),
            backend_secret_access_key: self
                .backend_secret_access_key
                .clone()
                .unwrap_or_else(serverless_websockets_local::stack::random_secret),
            allowed_hosts: self.allow_hosts.clone(),
            tls: self.tls,
            ca_cert_path: self.ca_cert.clone(),
            gateway: GatewayOptions {
                min_keep_alive: Duration::from_secs(self.min_keep_alive),
                connect_deny: deny(self.connack_on_deny),
                subscribe_deny: deny(self.suback_on_deny),
                session_expiry: Duration::from_secs(self.session_expiry),
                limits: Limits {
                    max_connection_duration: Duration::from_secs(self.max_connection_duration),
                    connects_per_second: self.client_id_connects_per_second,
                    publishes_per_second: self.publishes_per_second,
                    publish_bytes_per_second: self.publish_bytes_per_second,
                    max_user_properties_bytes: self.max_user_properties_bytes,
                    grant_qos2_as_qos1: self.grant_qos2_as_qos1,
                },
                ..GatewayOptions::default()
            },
            timeouts: Timeouts::default(),
            lambda_endpoint: self.lambda_endpoint.clone(),
            lambda_timeout: Duration::from_secs(self.lambda_timeout),
            rules_file: self.rules.clone(),
            settings: self
                .auth
                .iter()
                .map(|mode| ("AUTH_MODE".to_owned(), mode.clone()))
                .chain(self.resume_key.iter().map(|key| ("RESUME_KEY".to_owned(), key.clone())))
                .collect(),
        }
    }
}

/// Where the ready file goes: `--ready-file`, or a private per-user file named
/// after the API port, which `--print-env` reads.
fn ready_file(args: &LocalArgs) -> PathBuf {
    args.ready_file
        .clone()
        .unwrap_or_else(|| serverless_websockets_local::stack::default_ready_file(args.api_port))
}

/// `--print-env WHO`: the running stack's credentials as a shell `export` line.
fn print_env(args: &LocalArgs, who: &str) -> anyhow::Result<()> {
    println!(
        "{}",
        serverless_websockets_local::stack::export_line(&ready_file(args), who)?
    );
    Ok(())
}

/// `serverless-websockets local`: prints a token or the credentials and exits
/// (`--print-token`, `--print-env`), or runs the stack until Ctrl-C or SIGTERM.
pub async fn run(args: LocalArgs) -> anyhow::Result<()> {
    if let Some(who) = &args.print_env {
        return print_env(&args, who);
    }
    let mut options = args.options();
    if let Some(sub) = &args.print_token {
        options.settings.push(("AUTH_MODE".into(), "jwt".into()));
        let claims = match &args.claims {
            None => serde_json::Map::new(),
            Some(json) => match serde_json::from_str::<serde_json::Value>(json) {
                Ok(serde_json::Value::Object(claims)) => claims,
                _ => anyhow::bail!("--claims must be a JSON object, e.g. '{{\"rooms\": [\"42\", \"7\"]}}'"),
            },
        };
        println!("{}", options.mint_token_with(sub, &claims, Duration::from_secs(3600))?);
        return Ok(());
    }
    if options.setting("AUTH_MODE").as_deref() == Some("none") {
        tracing::warn!("AUTH_MODE=none: anyone who can reach the vending API gets credentials");
    }
    // Installed before anything is printed: Ctrl-C right after the banner stops
    // the stack cleanly instead of killing the process.
    let shutdown = shutdown_signal();
    match serverless_websockets_local::listen::raise_file_limit(0) {
        Ok((before, after)) if before != after => {
            tracing::debug!(before, after, "open-file limit raised (one file per connection)");
        }
        Ok((limit, _)) => tracing::debug!(limit, "open-file limit"),
        Err(err) => tracing::warn!("could not read or raise the open-file limit: {err}"),
    }
    let host = options.host;
    let mut stack = LocalStack::start(options).await?;
    let ready = ready_file(&args);
    stack.write_ready_file(&ready)?;
    print_banner(stack.info());
    if let Some(warning) = serverless_websockets_local::door::exposure_warning(host) {
        tracing::warn!("{warning}");
    }
    tracing::info!(api = %stack.info().api_url, "local stack ready");
    tokio::select! {
        () = shutdown => {}
        _ = stack.wait() => anyhow::bail!("a local server stopped unexpectedly"),
    }
    // Read after the shutdown, which ends every connection and so its minutes.
    let usage = stack.gateway().usage.clone();
    stack.shutdown().await;
    print_lines(&usage.report().summary());
    if args.ready_file.is_none() {
        let _ = std::fs::remove_file(&ready);
    }
    tracing::info!("local stack shut down");
    Ok(())
}

/// Prints the banner in one write. A closed stdout (the banner piped into a
/// program that stopped reading) must not stop the stack, so a failed write is
/// ignored rather than a panic, as `println!` would have it.
fn print_banner(info: &ReadyInfo) {
    use std::io::Write as _;
    let banner = format!("{}\n{}\n", addresses(info), next_steps(info));
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(banner.as_bytes()).and_then(|()| stdout.flush());
}

/// Prints `text` and a newline, ignoring a closed stdout.
fn print_lines(text: &str) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{text}").and_then(|()| stdout.flush());
}

/// `AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… AWS_DEFAULT_REGION=…` for a shell.
fn credentials_env(info: &ReadyInfo, key: &str, secret: &str) -> String {
    format!(
        "AWS_ACCESS_KEY_ID={key} AWS_SECRET_ACCESS_KEY={secret} AWS_DEFAULT_REGION={}",
        info.region
    )
}

/// The banner's first half: where everything is, and who may call.
/// Grant templates as the banner lists them.
fn list(templates: &[String]) -> String {
    if templates.is_empty() {
        "nothing".to_owned()
    } else {
        templates.join(", ")
    }
}

fn addresses(info: &ReadyInfo) -> String {
    let ca = info
        .ca_cert
        .as_deref()
        .map(|p| format!("\n  local CA       {p}"))
        .unwrap_or_default();
    let auth = match &info.jwt {
        None => "AUTH_MODE=none: anyone who can reach the API gets credentials".to_owned(),
        Some(jwt) => format!("AUTH_MODE=jwt, HS256, iss {}", jwt.issuer),
    };
    let authorizer = info
        .authorizer
        .as_ref()
        .map(|a| {
            format!(
                "\n  authorizer     {name}  (connect with a token: {iot}/mqtt?x-amz-customauthorizer-name={name}&{key}=<JWT>)",
                name = a.name,
                key = a.token_key_name,
                iot = info.iot_endpoint,
            )
        })
        .unwrap_or_default();
    format!(
        "serverless-websockets local stack (region {region}, account {account})

  vending API    {api}
  demo page      {demo}  (open it in a browser; the browser client is at {client_js})
  STS emulator   {sts}
  IoT gateway    {iot}/mqtt  (HTTPS data plane: {data}){ca}
  IoT rules      {data}  (aws iot create-topic-rule --endpoint-url …; Lambda actions: {lambda})
  client role    {role}
  admin          {admin}
  backend        {backend}
  callers        {auth}{authorizer}
  grants         subscribe {subscribe}; publish {publish}
  usage          {usage}  (what AWS would bill for this traffic; a summary prints at stop)
",
        region = info.region,
        account = info.account_id,
        api = info.api_url,
        demo = info.demo_url,
        client_js = info.client_js_url,
        usage = info.usage_url,
        sts = info.sts_endpoint,
        iot = info.iot_endpoint,
        data = info.iot_data_endpoint,
        role = info.client_role_arn,
        subscribe = list(&info.grants.subscribe),
        publish = list(&info.grants.publish),
        lambda = info.lambda_endpoint.as_deref().unwrap_or("off, see --lambda-endpoint"),
        admin = credentials_env(info, &info.admin.access_key_id, &info.admin.secret_access_key),
        backend = credentials_env(info, &info.backend.access_key_id, &info.backend.secret_access_key),
    )
}

/// The banner's second half: the commands to try next, as printed they run.
fn next_steps(info: &ReadyInfo) -> String {
    let jwt = info.jwt.is_some();
    let token_step = if jwt {
        "TOKEN=$(cargo run -q -- local --print-token alice)\n  "
    } else {
        ""
    };
    let curl_auth = if jwt {
        " -H \"Authorization: Bearer $TOKEN\""
    } else {
        ""
    };
    let client_auth = if jwt { " --token \"$TOKEN\"" } else { "" };
    let ca = |flag: &str| {
        info.ca_cert
            .as_deref()
            .map(|p| format!(" {flag} {p}"))
            .unwrap_or_default()
    };
    let (ca_flag, ca_client) = (ca("--ca-bundle"), ca("--ca-cert"));
    let backend = credentials_env(info, &info.backend.access_key_id, &info.backend.secret_access_key);
    let admin = credentials_env(info, &info.admin.access_key_id, &info.admin.secret_access_key);
    let (api, data, sts) = (&info.api_url, &info.iot_data_endpoint, &info.sts_endpoint);
    // The client's own topic as the templates make it (TOPIC_PREFIX, SUBSCRIBE_TOPICS).
    let topic = info.grants.own_topic.replace("{clientId}", "$ID");
    format!(
        "Get credentials (note the clientId):
  {token_step}curl -s -X POST {api}{curl_auth}
Or connect the example client, which prints what arrives:
  cargo run -p client-example -- --api {api}{ca_client}{client_auth}
Push to that client as your backend would, with the backend identity (the AWS CLI v1
>= 1.45.17 on your PATH, as the README installs it), ID set to its clientId:
  ID=the-client-id
  {backend} aws iot-data publish --endpoint-url {data}{ca_flag} --topic {topic} --payload hello
  {backend} aws iot-data send-direct-message --endpoint-url {data}{ca_flag} --client-id $ID --topic {topic} --confirmation --payload hello
  {backend} aws iot-data get-connection --endpoint-url {data}{ca_flag} --client-id $ID
Check the admin identity with the AWS CLI:
  {admin} aws sts get-caller-identity --endpoint-url {sts}
"
    )
}
