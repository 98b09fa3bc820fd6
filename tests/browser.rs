//! The browser client in a real headless Chromium against the local stack's demo
//! page (`tests/clients/browser_demo.js`, playwright-core driving Debian's
//! `/usr/bin/chromium`): messages through the HTTPS API and a confirmed direct
//! message reach the page, a kick loses no QoS 1 message, a forced refresh and a
//! reload keep the client ID, two tabs get two client IDs, no console errors. The
//! screenshot is left in `target/browser-demo.png`. And the client's token mode
//! (`tests/clients/browser_token.js`) through the JWT custom authorizer.

mod common;

use common::tools::run_browser_script;
use serverless_websockets_local::stack::{LocalOptions, LocalStack};

#[tokio::test]
async fn in_token_mode_the_browser_client_connects_through_the_authorizer_one_client_id_per_tab() {
    let mut options = LocalOptions::ephemeral();
    options.settings = vec![("AUTH_MODE".into(), "jwt".into())];
    let token = options
        .mint_token("alice", std::time::Duration::from_secs(600))
        .unwrap();
    let stack = LocalStack::start(options).await.unwrap();
    let summary = run_browser_script(&stack, "browser_token.js", &[std::ffi::OsStr::new(&token)]).await;
    let id = summary["clientId"].as_str().unwrap();
    let prefix = serverless_websockets_core::policy::authorizer::client_id_prefix("alice");
    assert!(id.starts_with(&prefix), "{summary}");
    assert_eq!(summary["received"], true);
    assert_eq!(summary["afterReload"], id, "a reload keeps the tab's client ID");
    assert_ne!(summary["secondTab"], id, "a second tab has its own client ID");
    assert!(summary["secondTab"].as_str().unwrap().starts_with(&prefix));
    assert_eq!(summary["bothConnected"], true);
    assert_eq!(summary["consoleErrors"], serde_json::json!([]), "{summary}");
    stack.shutdown().await;
}

#[tokio::test]
async fn the_demo_page_in_headless_chromium_stays_connected_and_loses_nothing() {
    let stack = LocalStack::start(LocalOptions::ephemeral()).await.unwrap();
    let screenshot = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/browser-demo.png");
    let _ = std::fs::remove_file(&screenshot);
    let summary = run_browser_script(&stack, "browser_demo.js", &[screenshot.as_os_str()]).await;
    let id = summary["clientId"].as_str().unwrap();
    assert_eq!(id.len(), 32, "{summary}");
    assert_eq!(summary["published"], true);
    assert_eq!(summary["direct"], "OK", "the direct message was confirmed");
    assert_eq!(
        summary["stream"],
        serde_json::json!(["n=1", "n=2", "n=3", "n=4", "n=5", "n=6", "n=7", "n=8"]),
        "every message of the stream, in order, across the kick"
    );
    for key in ["afterKick", "afterRefresh", "afterRefreshReconnect", "afterReload"] {
        assert_eq!(summary[key], id, "{key}: {summary}");
    }
    assert_ne!(summary["secondTab"], id, "a second tab has its own client ID");
    assert_eq!(summary["bothConnected"], true);
    assert_eq!(summary["consoleErrors"], serde_json::json!([]), "{summary}");
    assert!(screenshot.is_file());
    stack.shutdown().await;
}

#[tokio::test]
async fn the_local_stack_serves_the_committed_bundle_and_the_demo_page() {
    let stack = LocalStack::start(LocalOptions::ephemeral()).await.unwrap();
    let info = stack.info().clone();
    let client = reqwest::Client::new();
    let js = client.get(&info.client_js_url).send().await.unwrap();
    assert_eq!(js.headers()["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(js.text().await.unwrap(), serverless_websockets_local::demo::CLIENT_JS);
    let page = client.get(&info.demo_url).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(r#"import { connect } from "/client.js""#));
    let config: serde_json::Value = client
        .get(info.demo_url.replace("/demo", "/demo/config.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["credentialsUrl"], info.api_url.as_str());
    assert_eq!(config["iotDataEndpoint"], info.iot_data_endpoint.as_str());
    assert_eq!(config["jwt"], false);
    stack.shutdown().await;
}

#[tokio::test]
async fn a_copied_tab_and_two_clients_in_one_page_each_keep_their_own_client_id_without_a_takeover() {
    let stack = LocalStack::start(LocalOptions::ephemeral()).await.unwrap();
    let summary = run_browser_script(&stack, "browser_tabs.js", &[]).await;
    let ids: Vec<&str> = summary["firstIds"]
        .as_array()
        .unwrap()
        .iter()
        .chain(summary["secondIds"].as_array().unwrap())
        .map(|id| id.as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "{summary}");
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
        "three clients, three IDs: {summary}"
    );
    assert!(
        summary["copied"].as_u64().unwrap() > 0,
        "the opened tab got a copy of the first one's storage: {summary}"
    );
    assert_eq!(
        summary["states"],
        serde_json::json!([["connected", "connected"], ["connected"]]),
        "{summary}"
    );
    for page in summary["history"].as_array().unwrap() {
        for change in page.as_array().unwrap() {
            assert_eq!(change[1], "connected", "no client ever reconnected: {summary}");
        }
    }
    assert_eq!(summary["refused"]["code"], "Forbidden", "{summary}");
    assert!(
        summary["refused"]["message"]
            .as_str()
            .unwrap()
            .contains("\"not/granted\""),
        "{summary}"
    );
    assert_eq!(
        summary["imported"], "function",
        "another origin imports /client.js: {summary}"
    );
    assert_eq!(summary["errors"], serde_json::json!([]), "{summary}");
    stack.shutdown().await;
}
