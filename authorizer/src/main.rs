//! `serverless-websockets-authorizer`: the deployed Lambda artifact of the JWT
//! custom authorizer (see the crate's documentation). Configuration comes from
//! the environment; an HS256 key named by `JWT_HS256_SECRET_ARN` is fetched from
//! Secrets Manager once, at start-up.

use std::process::ExitCode;
use std::time::SystemTime;

use aws_lambda_events::event::iot::IoTCoreCustomAuthorizerRequest;
use lambda_runtime::{LambdaEvent, service_fn};
use serverless_websockets_authorizer::{JwtAuthorizer, Settings};
use serverless_websockets_vending::config::AuthSettings;
use serverless_websockets_vending::entry::{exit_code, init_tracing};
use serverless_websockets_vending::issuer::load_sdk_config;
use serverless_websockets_vending::secret::SecretsManager;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    init_tracing(true);
    exit_code(run().await)
}

async fn run() -> anyhow::Result<()> {
    let mut settings = Settings::from_env()?;
    if settings.jwt.hs256_secret_arn.is_some() {
        let secrets = SecretsManager::new(&load_sdk_config().await);
        let mut auth = AuthSettings::Jwt(settings.jwt.clone());
        auth.fetch_secrets(&secrets).await?;
        if let AuthSettings::Jwt(jwt) = auth {
            settings.jwt = jwt;
        }
    }
    let authorizer = JwtAuthorizer::new(settings)?;
    let authorizer = &authorizer;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<IoTCoreCustomAuthorizerRequest>| async move {
            Ok::<_, lambda_runtime::Error>(authorizer.authorize(&event.payload, SystemTime::now()).await)
        },
    ))
    .await
    .map_err(|e| anyhow::anyhow!("the Lambda runtime stopped: {e}"))
}
