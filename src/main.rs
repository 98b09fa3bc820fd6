//! The `serverless-websockets` binary: `local` runs the local stack; `serve` and
//! `lambda` (the default inside AWS Lambda) run the vending service exactly as its
//! own binary, `serverless-websockets-vending`, does.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serverless_websockets::cli::{self, LocalArgs};
use serverless_websockets_vending::entry::{self, Mode};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

#[tokio::main]
async fn main() -> ExitCode {
    let command = match Cli::parse().command {
        Some(command) => command,
        None if entry::in_lambda() => Command::Lambda,
        None => {
            eprintln!(
                "error: no command given and AWS_LAMBDA_RUNTIME_API is not set; try `serverless-websockets serve` or --help"
            );
            return ExitCode::from(2);
        }
    };
    entry::init_tracing(matches!(command, Command::Lambda));
    let outcome = match command {
        Command::Local(args) => cli::run(args).await,
        Command::Serve { listen } => entry::run(Mode::Serve { listen }).await,
        Command::Lambda => entry::run(Mode::Lambda).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}
