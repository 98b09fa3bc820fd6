//! The `connections` Lambda function (see the library's `connections` module).

use backend_example::connections;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    lambda_runtime::run(service_fn(|event: LambdaEvent<connections::Lifecycle>| async move {
        connections::handle(&event.payload);
        Ok::<(), lambda_runtime::Error>(())
    }))
    .await
}
