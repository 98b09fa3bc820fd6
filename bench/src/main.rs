//! `bench`: reproducible benchmarks. Every suite starts what it measures on
//! loopback, is bounded in count and time, stops by itself, and reports its
//! headline figure as a ratio against a reference measured in the same run (these
//! machines are noisy), with the absolute numbers for context.
//!
//! Suites: `vending`, `lambda-startup`, `sigv4`, or `all`. `--smoke` runs a few
//! iterations only, for CI.

mod lambda_startup;
mod report;
mod sigv4;
mod vending;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "bench", about = "serverless-websockets benchmarks")]
struct Cli {
    #[command(subcommand)]
    suite: Suite,
    /// A few iterations only: checks that the suite still runs (CI).
    #[arg(long, global = true)]
    smoke: bool,
    /// Write the raw figures here as JSON.
    #[arg(long, global = true)]
    json: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Suite {
    /// Vending API latency and throughput at concurrency 1, 8, 64 vs STS alone; handler CPU.
    Vending {
        /// Requests per concurrency level.
        #[arg(long, default_value_t = 2000)]
        requests: usize,
    },
    /// SigV4 presign and verify operations per second on one core.
    Sigv4 {
        #[arg(long, default_value_t = 20_000)]
        count: u64,
    },
    /// Lambda cold start: process start → first /runtime/invocation/next, and → first response.
    LambdaStartup {
        /// The serverless-websockets binary to start (build it with --release first).
        #[arg(long, default_value = "target/release/serverless-websockets")]
        binary: PathBuf,
        /// Starts to measure.
        #[arg(long, default_value_t = 25)]
        runs: usize,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let report = match cli.suite {
        Suite::Vending { requests } => vending::run(if cli.smoke { 20 } else { requests }).await?,
        Suite::Sigv4 { count } => sigv4::run(if cli.smoke { 200 } else { count })?,
        Suite::LambdaStartup { binary, runs } => lambda_startup::run(&binary, if cli.smoke { 3 } else { runs }).await?,
    };
    println!("{}", report.markdown());
    if let Some(path) = cli.json {
        std::fs::write(&path, serde_json::to_string_pretty(&report.json)?)?;
        eprintln!("raw figures written to {}", path.display());
    }
    Ok(())
}
