//! The echo function: the rule's output for a client's message in, the same
//! text back to that client's own topic (`allowed/<clientId>`) out.
//!
//! The rule (`docs/receive-from-clients.md`):
//! `SELECT text, topic(2) AS sender FROM 'from/+' WHERE kind = 'chat'`.

use serde::{Deserialize, Serialize};

use crate::Publisher;

/// What the rule sends: the message's text and the sender taken from the topic.
#[derive(Debug, Deserialize)]
pub struct ClientMessage {
    /// `topic(2)`: the client ID the session policy let publish on `from/<id>`.
    pub sender: String,
    #[serde(default)]
    pub text: String,
}

/// What the client receives back.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Echo {
    pub echo: String,
}

/// Echoes `message` to its sender only.
pub async fn handle(publisher: &dyn Publisher, message: ClientMessage) -> Result<(), lambda_runtime::Error> {
    if message.sender.is_empty() || message.sender.contains(['/', '+', '#']) {
        return Err(format!("the rule gave no usable sender: {:?}", message.sender).into());
    }
    let reply = serde_json::to_vec(&Echo { echo: message.text })?;
    publisher.publish(&format!("allowed/{}", message.sender), reply).await?;
    tracing::info!(sender = %message.sender, "echoed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Recorded(Mutex<Vec<(String, Vec<u8>)>>);

    #[async_trait::async_trait]
    impl Publisher for Recorded {
        async fn publish(&self, topic: &str, payload: Vec<u8>) -> Result<(), lambda_runtime::Error> {
            self.0.lock().unwrap().push((topic.to_owned(), payload));
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_message_goes_back_to_its_sender_only() {
        let recorded = Recorded::default();
        let message = ClientMessage {
            sender: "c1".into(),
            text: "hi".into(),
        };
        handle(&recorded, message).await.unwrap();
        let published = recorded.0.into_inner().unwrap();
        assert_eq!(published.len(), 1);
        assert_eq!(published[0].0, "allowed/c1");
        assert_eq!(
            serde_json::from_slice::<Echo>(&published[0].1).unwrap(),
            Echo { echo: "hi".into() }
        );
    }

    #[tokio::test]
    async fn a_sender_that_is_not_one_topic_level_is_refused() {
        let recorded = Recorded::default();
        for sender in ["", "a/b", "+", "#"] {
            let message = ClientMessage {
                sender: sender.into(),
                text: "x".into(),
            };
            assert!(handle(&recorded, message).await.is_err(), "{sender:?}");
        }
        assert!(recorded.0.into_inner().unwrap().is_empty());
    }
}
