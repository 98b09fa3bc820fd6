//! The `echo` Lambda function (see the library's `echo` module).

use backend_example::{IotData, echo};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let publisher = IotData(aws_sdk_iotdataplane::Client::new(&aws_config::load_from_env().await));
    let publisher = &publisher;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<echo::ClientMessage>| async move {
        echo::handle(publisher, event.payload).await
    }))
    .await
}
