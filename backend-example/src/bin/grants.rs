//! The `grants` Lambda function (see the library's `grants` module).

use backend_example::grants;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let members = grants::Table::from_env()?;
    let members = &members;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<grants::Request>| async move {
        Ok::<_, lambda_runtime::Error>(grants::handle(members, &event.payload))
    }))
    .await
}
