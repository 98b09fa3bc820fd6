//! The `serverless-websockets` binary: `local` runs the local stack; `ban` takes
//! users out (on AWS or the local stack); `serve` and
//! `lambda` (the default inside AWS Lambda) run the vending service exactly as its
//! own binary, `serverless-websockets-vending`, does.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
mod ban;
mod cli;

use cli::LocalArgs;
use serverless_websockets_vending::entry::{self, ServiceCommand};

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
    #[command(flatten)]
    Service(ServiceCommand),
    /// Run the local stack: the vending API, an STS emulator and an IoT gateway on this machine.
    Local(Box<LocalArgs>),
    /// Take users out now: ban their `sub`s on the client role and close their connections.
    Ban(Box<ban::BanArgs>),
}

#[tokio::main]
async fn main() -> ExitCode {
    serverless_websockets_local::alloc::purge_freed_memory_at_once();
    serverless_websockets_local::alloc::no_transparent_huge_pages();
    match Cli::parse().command {
        Some(Command::Local(args)) => {
            entry::init_tracing(false);
            entry::exit_code(cli::run(*args).await)
        }
        Some(Command::Ban(args)) => {
            entry::init_tracing(false);
            entry::exit_code(ban::run(*args).await)
        }
        Some(Command::Service(command)) => entry::main(command.into()).await,
        None => match entry::default_mode() {
            Some(mode) => entry::main(mode).await,
            None => {
                eprintln!(
                    "error: no command given and AWS_LAMBDA_RUNTIME_API is not set; try `serverless-websockets serve` or --help"
                );
                ExitCode::from(2)
            }
        },
    }
}
