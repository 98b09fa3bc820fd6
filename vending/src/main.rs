//! `serverless-websockets-vending`: the deployed Lambda artifact. Inside Lambda
//! (`AWS_LAMBDA_RUNTIME_API` set) it serves API Gateway events; `serve` runs the
//! same API as a plain HTTP server.

use std::process::ExitCode;

use clap::Parser;
use serverless_websockets_vending::entry::{self, ServiceCommand};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "serverless-websockets-vending",
    version,
    about = "The serverless-websockets credential-vending API: in AWS Lambda, or over plain HTTP (serve).",
    long_about = None
)]
struct Cli {
    #[command(subcommand)]
    command: Option<ServiceCommand>,
}

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command.map(Into::into).or_else(entry::default_mode) {
        Some(mode) => entry::main(mode).await,
        None => {
            eprintln!("error: no command given and AWS_LAMBDA_RUNTIME_API is not set; try `serve` or --help");
            ExitCode::from(2)
        }
    }
}
