//! The `serverless-websockets` binary: the vending API in AWS Lambda (the default
//! when `AWS_LAMBDA_RUNTIME_API` is set) or as a plain HTTP server (`serve`).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use serverless_websockets::api;
use serverless_websockets::config::{AuthSettings, Config};
use serverless_websockets::local::gateway::{DenyMode, GatewayOptions};
use serverless_websockets::local::{LocalOptions, LocalStack, ReadyInfo};
use serverless_websockets::sts::{AssumeRoleIssuer, load_sdk_config};

#[derive(Parser)]
#[command(name = "serverless-websockets", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the credential-vending API over plain HTTP (outside Lambda).
    Serve {
        /// Address to listen on.
        #[arg(long, env = "LISTEN", default_value = "127.0.0.1:3000")]
        listen: SocketAddr,
    },
    /// Run as an AWS Lambda function behind API Gateway (the default inside Lambda).
    Lambda,
    /// Run the local stack: the vending API, an STS emulator and an IoT gateway on this machine.
    Local(LocalArgs),
}

#[derive(clap::Args)]
struct LocalArgs {
    /// Address every listener binds to.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port of the vending API (0: any free port).
    #[arg(long, default_value_t = 3000)]
    api_port: u16,
    /// Port of the STS emulator (0: any free port).
    #[arg(long, default_value_t = 4600)]
    sts_port: u16,
    /// Port of the IoT device gateway (0: any free port).
    #[arg(long, default_value_t = 8443)]
    iot_port: u16,
    /// Serve the IoT gateway over TLS (wss://, https://) with a throwaway local CA.
    #[arg(long)]
    tls: bool,
    /// With --tls: where to write the local CA certificate (PEM) for clients to trust.
    #[arg(long, requires = "tls")]
    ca_cert: Option<PathBuf>,
    /// Once every listener accepts connections, write their addresses here as JSON.
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// Answer an unauthorized CONNECT with CONNACK return code 5 before closing
    /// (IoT Core just closes the connection).
    #[arg(long)]
    connack_on_deny: bool,
    /// Answer an unauthorized SUBSCRIBE filter with SUBACK 0x80 instead of
    /// disconnecting (IoT Core disconnects).
    #[arg(long)]
    suback_on_deny: bool,
    /// Smallest keep-alive the gateway accepts, in seconds; lower values are raised
    /// to it (IoT Core: 30).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=1200))]
    min_keep_alive: u64,
    /// Caller authentication of the local vending API: none or jwt (sets AUTH_MODE;
    /// jwt defaults to a local issuer and HS256 secret, see --print-token).
    #[arg(long, value_parser = ["none", "jwt"])]
    auth: Option<String>,
    /// Print a token for this sub that the local API accepts in jwt mode, and exit.
    #[arg(long, value_name = "SUB")]
    print_token: Option<String>,
    /// Region the local services claim to be in.
    #[arg(long, env = "LOCAL_REGION", default_value = "us-east-1")]
    region: String,
    /// Account ID in local ARNs.
    #[arg(long, env = "LOCAL_ACCOUNT_ID", default_value = "000000000000")]
    account_id: String,
    /// Access key ID of the local admin (stands in for the Lambda execution role).
    #[arg(long, env = "LOCAL_ADMIN_ACCESS_KEY_ID", default_value = "AKIALOCALADMIN000000")]
    admin_access_key_id: String,
    /// Secret access key of the local admin.
    #[arg(
        long,
        env = "LOCAL_ADMIN_SECRET_ACCESS_KEY",
        default_value = "local-admin-secret",
        hide_env_values = true
    )]
    admin_secret_access_key: String,
}

fn in_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some()
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        // CloudWatch adds its own timestamp and request ID; keep lines compact.
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .without_time()
            .with_ansi(false)
            .init();
    } else {
        builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = match cli.command {
        Some(command) => command,
        None if in_lambda() => Command::Lambda,
        None => {
            eprintln!(
                "error: no command given and AWS_LAMBDA_RUNTIME_API is not set; try `serverless-websockets serve` or --help"
            );
            return ExitCode::from(2);
        }
    };
    init_tracing(matches!(command, Command::Lambda));
    match run(command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    if let Command::Local(args) = command {
        return run_local(args).await;
    }
    let mut config = Config::from_env()?;
    match &config.auth {
        AuthSettings::None => tracing::warn!("AUTH_MODE=none: anyone who can reach the API gets credentials"),
        AuthSettings::Jwt(jwt) => {
            if jwt.audience.is_none() && jwt.client_id.is_none() {
                tracing::warn!(
                    "neither JWT_AUDIENCE nor JWT_CLIENT_ID is set: any token of the issuer is accepted, whichever app it was issued to"
                );
            }
            if jwt.hs256_secret.is_some() && in_lambda() {
                tracing::warn!("JWT_HS256_SECRET is a plain environment variable: use JWT_HS256_SECRET_ARN in AWS");
            }
        }
    }
    for warning in config.grants.warnings() {
        tracing::warn!("{warning}");
    }
    let sdk_config = load_sdk_config().await;
    config
        .fetch_secrets(&serverless_websockets::secret::SecretsManager::new(&sdk_config))
        .await?;
    let issuer = Arc::new(AssumeRoleIssuer::new(&sdk_config, config.client_role_arn.as_str()));
    let router = api::router(config, issuer);
    match command {
        Command::Lambda => lambda_http::run(router)
            .await
            .map_err(|e| anyhow::anyhow!("Lambda runtime: {e}")),
        Command::Serve { listen } => {
            let listener = tokio::net::TcpListener::bind(listen).await?;
            tracing::info!("vending API listening on http://{}/credentials", listener.local_addr()?);
            serverless_websockets::server::serve(
                listener,
                router,
                None,
                serverless_websockets::server::Timeouts::default(),
                shutdown_signal(),
            )
            .await;
            tracing::info!("shut down");
            Ok(())
        }
        Command::Local(_) => unreachable!("handled above"),
    }
}

async fn run_local(args: LocalArgs) -> anyhow::Result<()> {
    let options = LocalOptions {
        host: args.host,
        api_port: args.api_port,
        sts_port: args.sts_port,
        iot_port: args.iot_port,
        region: args.region,
        account_id: args.account_id,
        admin_access_key_id: args.admin_access_key_id,
        admin_secret_access_key: args.admin_secret_access_key,
        tls: args.tls,
        ca_cert_path: args.ca_cert,
        gateway: GatewayOptions {
            min_keep_alive: std::time::Duration::from_secs(args.min_keep_alive),
            connect_deny: if args.connack_on_deny {
                DenyMode::Reply
            } else {
                DenyMode::Close
            },
            subscribe_deny: if args.suback_on_deny {
                DenyMode::Reply
            } else {
                DenyMode::Close
            },
            ..GatewayOptions::default()
        },
        timeouts: serverless_websockets::server::Timeouts::default(),
        settings: match &args.auth {
            Some(mode) => vec![("AUTH_MODE".into(), mode.clone())],
            None => Vec::new(),
        },
    };
    if let Some(sub) = &args.print_token {
        let mut options = options;
        options.settings.push(("AUTH_MODE".into(), "jwt".into()));
        println!("{}", options.mint_token(sub, std::time::Duration::from_secs(3600))?);
        return Ok(());
    }
    if options.setting("AUTH_MODE").as_deref() == Some("none") {
        tracing::warn!("AUTH_MODE=none: anyone who can reach the vending API gets credentials");
    }
    let mut stack = LocalStack::start(options).await?;
    if let Some(path) = &args.ready_file {
        stack.write_ready_file(path)?;
    }
    print_banner(stack.info());
    tokio::select! {
        _ = shutdown_signal() => {}
        _ = stack.wait() => anyhow::bail!("a local server stopped unexpectedly"),
    }
    stack.shutdown().await;
    tracing::info!("local stack shut down");
    Ok(())
}

fn print_banner(info: &ReadyInfo) {
    let admin = &info.admin;
    let env = format!(
        "AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={} AWS_DEFAULT_REGION={}",
        admin.access_key_id, admin.secret_access_key, info.region
    );
    println!(
        "serverless-websockets local stack (region {region}, account {account})

  vending API    {api}
  STS emulator   {sts}
  IoT gateway    {iot}/mqtt  (HTTPS publish: {data}){ca}
  client role    {role}
  admin          {env}
  callers        {auth}

Get credentials (note the clientId):
  {token_step}curl -s -X POST {api}{curl_auth}
Or connect the example client, which prints what arrives:
  cargo run -p client-example -- --api {api}{ca_client}{client_auth}
Push to that client as your backend would:
  {env} aws iot-data publish --endpoint-url {data}{ca_flag} --topic allowed/<clientId> --payload hello
Check the admin identity with the AWS CLI:
  {env} aws sts get-caller-identity --endpoint-url {sts}
",
        iot = info.iot_endpoint,
        data = info.iot_data_endpoint,
        auth = match &info.jwt {
            None => "AUTH_MODE=none: anyone who can reach the API gets credentials".to_owned(),
            Some(jwt) => format!("AUTH_MODE=jwt, HS256, iss {}", jwt.issuer),
        },
        token_step = if info.jwt.is_some() {
            "TOKEN=$(serverless-websockets local --print-token alice)\n  "
        } else {
            ""
        },
        curl_auth = if info.jwt.is_some() {
            " -H \"Authorization: Bearer $TOKEN\""
        } else {
            ""
        },
        client_auth = if info.jwt.is_some() { " --token \"$TOKEN\"" } else { "" },
        ca = info
            .ca_cert
            .as_deref()
            .map(|p| format!("\n  local CA       {p}"))
            .unwrap_or_default(),
        ca_flag = info
            .ca_cert
            .as_deref()
            .map(|p| format!(" --ca-bundle {p}"))
            .unwrap_or_default(),
        ca_client = info
            .ca_cert
            .as_deref()
            .map(|p| format!(" --ca-cert {p}"))
            .unwrap_or_default(),
        region = info.region,
        account = info.account_id,
        api = info.api_url,
        sts = info.sts_endpoint,
        role = info.client_role_arn,
    );
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
}
