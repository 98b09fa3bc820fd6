//! The `chat` Lambda function (see the library's `chat` module).

use backend_example::{IotData, chat};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let plane = IotData(aws_sdk_iotdataplane::Client::new(&aws_config::load_from_env().await));
    let plane = &plane;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<chat::Event>| async move {
        chat::handle(plane, event.payload).await
    }))
    .await
}
