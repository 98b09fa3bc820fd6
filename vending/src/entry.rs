//! The process entry of the vending service, shared by its own binary (the Lambda
//! artifact) and by `serverless-websockets serve`: read the configuration, fetch
//! the secrets, build the authenticator and the issuer once, then hand the router
//! to the Lambda runtime or to the HTTP accept loop.
//!
//! Not here: argument parsing (each binary's `main`), the local stack.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::api;
use crate::bans::BanList;
use crate::config::{AuthSettings, Config};
use crate::issuer::{AssumeRoleIssuer, load_sdk_config};
use crate::secret::SecretsManager;
use crate::server::{Timeouts, serve};

/// The commands that run the vending service, shared by both binaries' command lines.
#[derive(Debug, Clone, Copy, clap::Subcommand)]
pub enum ServiceCommand {
    /// Serve the credential-vending API over plain HTTP (outside Lambda).
    Serve {
        /// Address to listen on.
        #[arg(long, env = "LISTEN", default_value = "127.0.0.1:4601")]
        listen: SocketAddr,
    },
    /// Run as an AWS Lambda function behind API Gateway (the default inside Lambda).
    Lambda,
}

impl From<ServiceCommand> for Mode {
    fn from(command: ServiceCommand) -> Self {
        match command {
            ServiceCommand::Serve { listen } => Self::Serve { listen },
            ServiceCommand::Lambda => Self::Lambda,
        }
    }
}

/// The mode of a binary started without a command: Lambda inside Lambda, else
/// none (the binary then says what to run).
pub fn default_mode() -> Option<Mode> {
    in_lambda().then_some(Mode::Lambda)
}

/// Runs `mode` with tracing set up for it; the process's exit code.
pub async fn main(mode: Mode) -> std::process::ExitCode {
    init_tracing(matches!(mode, Mode::Lambda));
    exit_code(run(mode).await)
}

/// 0, or 1 with the error logged once (the log goes to stderr; in Lambda it is
/// the JSON line CloudWatch keeps).
pub fn exit_code(outcome: anyhow::Result<()>) -> std::process::ExitCode {
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            std::process::ExitCode::from(1)
        }
    }
}

/// How the vending service is served.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// Behind API Gateway, through the Lambda runtime API.
    Lambda,
    /// As a plain HTTP server on this address.
    Serve { listen: SocketAddr },
}

/// Whether this process runs inside AWS Lambda.
pub fn in_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some()
}

/// Logs to stderr, as JSON lines in Lambda (CloudWatch adds the timestamp and
/// request ID), as text elsewhere; `RUST_LOG` filters, `info` by default. Every
/// field of a text line is written escaped ([`escaped_fields`]): a client ID or
/// topic with a newline cannot forge a log line.
pub fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .without_time()
            .with_ansi(false)
            .init();
    } else {
        builder
            .fmt_fields(escaped_fields())
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
}

/// How a text log line writes its fields: `name=value`, space-delimited, with
/// every control character of a value (and of the message) escaped as Rust
/// escapes it (`\n`, `\u{1b}`), so one event is one line whatever a client sent.
pub fn escaped_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + Send + Sync + 'static {
    use tracing_subscriber::field::MakeExt;
    tracing_subscriber::fmt::format::debug_fn(|writer, field, value| {
        use std::fmt::Write;
        if field.name() != "message" {
            write!(writer, "{field}=")?;
        }
        write!(Escaping(writer), "{value:?}")
    })
    .delimited(" ")
}

/// Writes through, control characters escaped.
struct Escaping<W>(W);

impl<W: std::fmt::Write> std::fmt::Write for Escaping<W> {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        for piece in text.split_inclusive(char::is_control) {
            match piece.char_indices().last() {
                Some((at, last)) if last.is_control() => {
                    self.0.write_str(&piece[..at])?;
                    write!(self.0, "{}", last.escape_default())?;
                }
                _ => self.0.write_str(piece)?,
            }
        }
        Ok(())
    }
}

/// Runs the vending service until the Lambda runtime stops it or, for `Serve`,
/// until Ctrl-C or SIGTERM.
pub async fn run(mode: Mode) -> anyhow::Result<()> {
    let mut config = Config::from_env()?;
    warn_about(&config);
    let sdk_config = load_sdk_config().await;
    config.fetch_secrets(&SecretsManager::new(&sdk_config)).await?;
    let bans = BanList::for_config(&config, &sdk_config);
    let issuer = Arc::new(AssumeRoleIssuer::new(&sdk_config, config.client_role_arn.as_str()).with_bans(bans));
    let grants_fn = crate::grants_fn::LambdaGrants::for_config(&config, &sdk_config);
    let router = api::build_with(config, issuer, grants_fn)?;
    match mode {
        Mode::Lambda => lambda_http::run(router)
            .await
            .map_err(|e| anyhow::anyhow!("Lambda runtime: {e}")),
        Mode::Serve { listen } => {
            let listener = tokio::net::TcpListener::bind(listen).await?;
            tracing::info!("vending API listening on http://{}/credentials", listener.local_addr()?);
            serve(listener, router, None, Timeouts::default(), shutdown_signal()).await;
            tracing::info!("shut down");
            Ok(())
        }
    }
}

/// Start-up warnings for settings that work but are unsafe in production.
fn warn_about(config: &Config) {
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
    if config.resume.ephemeral {
        tracing::warn!(
            "neither RESUME_KEY_SECRET_ARN nor RESUME_KEY is set: resume tokens are signed with a key random to this process; they stop working at a restart, and other instances (other Lambda execution environments) refuse them"
        );
    } else if config.resume.key_arn.is_none() && in_lambda() {
        tracing::warn!("RESUME_KEY is a plain environment variable: use RESUME_KEY_SECRET_ARN in AWS");
    }
    for warning in config.grants.warnings() {
        tracing::warn!("{warning}");
    }
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed when this is
/// called, not when the future is first polled, so a signal that arrives while
/// the caller is still starting up is not lost (nor does it kill the process).
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt()).ok();
        let terminate = signal(SignalKind::terminate()).ok();
        async move {
            let wait = |signal: Option<tokio::signal::unix::Signal>| async move {
                match signal {
                    Some(mut signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! { () = wait(interrupt) => {}, () = wait(terminate) => {} }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write;

    use super::Escaping;

    #[test]
    fn control_characters_are_written_escaped_and_the_rest_as_is() {
        let mut out = String::new();
        write!(Escaping(&mut out), "a/b\n2026 INFO forged\r\u{1b}[31mé").unwrap();
        assert_eq!(out, "a/b\\n2026 INFO forged\\r\\u{1b}[31mé");
    }
}
