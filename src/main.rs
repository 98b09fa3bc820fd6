//! The `serverless-websockets` binary: the vending API in AWS Lambda (the default
//! when `AWS_LAMBDA_RUNTIME_API` is set) or as a plain HTTP server (`serve`).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use serverless_websockets::api;
use serverless_websockets::config::Config;
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
    let config = Config::from_env()?;
    let sdk_config = load_sdk_config().await;
    let issuer = Arc::new(AssumeRoleIssuer::new(&sdk_config, config.client_role_arn.as_str()));
    let router = api::router(config, issuer);
    match command {
        Command::Lambda => lambda_http::run(router)
            .await
            .map_err(|e| anyhow::anyhow!("Lambda runtime: {e}")),
        Command::Serve { listen } => {
            let listener = tokio::net::TcpListener::bind(listen).await?;
            tracing::info!("vending API listening on http://{}/credentials", listener.local_addr()?);
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown_signal())
                .await?;
            tracing::info!("shut down");
            Ok(())
        }
    }
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
