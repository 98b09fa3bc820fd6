//! `serverless-websockets-vending`: the deployed Lambda artifact. Inside Lambda
//! (`AWS_LAMBDA_RUNTIME_API` set) it serves API Gateway events; `serve` runs the
//! same API as a plain HTTP server.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serverless_websockets_vending::entry::{self, Mode};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "serverless-websockets-vending", version, about, long_about = None)]
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

#[tokio::main]
async fn main() -> ExitCode {
    let mode = match Cli::parse().command {
        Some(Command::Serve { listen }) => Mode::Serve { listen },
        Some(Command::Lambda) => Mode::Lambda,
        None if entry::in_lambda() => Mode::Lambda,
        None => {
            eprintln!("error: no command given and AWS_LAMBDA_RUNTIME_API is not set; try `serve` or --help");
            return ExitCode::from(2);
        }
    };
    entry::init_tracing(matches!(mode, Mode::Lambda));
    match entry::run(mode).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}
