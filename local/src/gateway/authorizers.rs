//! The IoT control plane's custom-authorizer operations, as `aws iot …
//! --endpoint-url` and the SDKs call them (REST-JSON, SigV4 service `iot`;
//! <https://docs.aws.amazon.com/iot/latest/apireference/API_CreateAuthorizer.html>):
//! CreateAuthorizer (`POST /authorizer/{name}`), DescribeAuthorizer (`GET`),
//! UpdateAuthorizer (`PUT`), DeleteAuthorizer (`DELETE`), ListAuthorizers
//! (`GET /authorizers/`), Set-, Describe- and ClearDefaultAuthorizer
//! (`POST`, `GET`, `DELETE /default-authorizer`) and TestInvokeAuthorizer
//! (`POST /authorizer/{name}/test`).
//!
//! Each is authorized as IoT authorizes it (`iot:CreateAuthorizer` … on
//! `arn:aws:iot:<region>:<account>:authorizer/<name>`; listing and the default's
//! describe and clear on `*`). Choices where the model is silent, documented in
//! docs/local-stack.md: setting a default while another is set is
//! `ResourceAlreadyExistsException` (clear it first; setting the same one again
//! succeeds); deleting the default is `DeleteConflictException`; describing or
//! clearing a default that is not set is `ResourceNotFoundException`.
//!
//! Not here: the authorizers themselves ([`crate::authorizers`]), connecting
//! through one (`custom_auth`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};

use super::control::SERVICE;
use super::signed::{Answer, DataPlaneError, Refused, Signed, invalid, not_found, ok, signed_as};
use super::state::Gateway;
use crate::authorizers::{Authorizer, AuthorizerRequest, CallError, MqttContext, Presented};

fn authorizer_arn(gateway: &Gateway, name: &str) -> String {
    let arns = gateway.broker.arns();
    format!("arn:aws:iot:{}:{}:authorizer/{name}", arns.region(), arns.account())
}

async fn authorized(
    gateway: &Gateway,
    operation: &str,
    resource: &str,
    request: axum::extract::Request,
) -> Result<Signed, DataPlaneError> {
    let signed = signed_as(gateway, operation, request, SERVICE).await?;
    signed.authorize(operation, &format!("iot:{operation}"), resource, Refused::Unauthorized)?;
    Ok(signed)
}

fn no_such(name: &str) -> DataPlaneError {
    not_found(format!("There is no authorizer named {name}."))
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn body_of(signed: &Signed) -> Result<AuthorizerRequest, DataPlaneError> {
    if signed.body.is_empty() {
        return Ok(AuthorizerRequest::default());
    }
    serde_json::from_slice(&signed.body).map_err(|e| invalid(format!("The body is not valid: {e}")))
}

fn description(gateway: &Gateway, authorizer: &Authorizer) -> Value {
    let keys: BTreeMap<&String, &String> = authorizer.keys.iter().map(|(name, key)| (name, &key.pem)).collect();
    let mut description = json!({
        "authorizerName": authorizer.name,
        "authorizerArn": authorizer_arn(gateway, &authorizer.name),
        "authorizerFunctionArn": authorizer.function_arn,
        "tokenSigningPublicKeys": keys,
        "status": authorizer.status.as_str(),
        "creationDate": authorizer.created,
        "lastModifiedDate": authorizer.modified,
        "signingDisabled": authorizer.signing_disabled,
        "enableCachingForHttp": authorizer.caching_for_http,
    });
    if let Some(key) = &authorizer.token_key_name {
        description["tokenKeyName"] = json!(key);
    }
    description
}

fn name_and_arn(gateway: &Gateway, name: &str) -> Answer {
    ok(json!({"authorizerName": name, "authorizerArn": authorizer_arn(gateway, name)}))
}

/// `POST /authorizer/{name}` — CreateAuthorizer.
pub async fn create(
    State(gateway): State<Arc<Gateway>>,
    Path(name): Path<String>,
    request: axum::extract::Request,
) -> Answer {
    let signed = authorized(&gateway, "CreateAuthorizer", &authorizer_arn(&gateway, &name), request).await?;
    let authorizer = Authorizer::create(&name, body_of(&signed)?, now()).map_err(invalid)?;
    if !gateway.authorizers.create(authorizer) {
        return Err(DataPlaneError::new(
            StatusCode::CONFLICT,
            "ResourceAlreadyExistsException",
            format!("An authorizer named {name} already exists."),
        ));
    }
    tracing::info!(authorizer = %name, "custom authorizer created");
    name_and_arn(&gateway, &name)
}

/// `PUT /authorizer/{name}` — UpdateAuthorizer.
pub async fn update(
    State(gateway): State<Arc<Gateway>>,
    Path(name): Path<String>,
    request: axum::extract::Request,
) -> Answer {
    let signed = authorized(&gateway, "UpdateAuthorizer", &authorizer_arn(&gateway, &name), request).await?;
    let current = gateway.authorizers.get(&name).ok_or_else(|| no_such(&name))?;
    let updated = current.update(body_of(&signed)?, now()).map_err(invalid)?;
    gateway.authorizers.replace(updated);
    name_and_arn(&gateway, &name)
}

/// `GET /authorizer/{name}` — DescribeAuthorizer.
pub async fn describe(
    State(gateway): State<Arc<Gateway>>,
    Path(name): Path<String>,
    request: axum::extract::Request,
) -> Answer {
    authorized(
        &gateway,
        "DescribeAuthorizer",
        &authorizer_arn(&gateway, &name),
        request,
    )
    .await?;
    let authorizer = gateway.authorizers.get(&name).ok_or_else(|| no_such(&name))?;
    ok(json!({"authorizerDescription": description(&gateway, &authorizer)}))
}

/// `DELETE /authorizer/{name}` — DeleteAuthorizer.
pub async fn delete(
    State(gateway): State<Arc<Gateway>>,
    Path(name): Path<String>,
    request: axum::extract::Request,
) -> Answer {
    authorized(&gateway, "DeleteAuthorizer", &authorizer_arn(&gateway, &name), request).await?;
    match gateway.authorizers.delete(&name) {
        Ok(true) => ok(json!({})),
        Ok(false) => Err(no_such(&name)),
        Err(conflict) => Err(DataPlaneError::new(
            StatusCode::CONFLICT,
            "DeleteConflictException",
            conflict,
        )),
    }
}

/// `GET /authorizers/[?pageSize=&marker=&isAscendingOrder=&status=]` — ListAuthorizers.
pub async fn list(State(gateway): State<Arc<Gateway>>, request: axum::extract::Request) -> Answer {
    let signed = authorized(&gateway, "ListAuthorizers", "*", request).await?;
    let size = match signed.param("pageSize") {
        None => 250,
        Some(n) => match n.parse::<usize>() {
            Ok(n @ 1..=250) => n,
            _ => return Err(invalid("pageSize must be from 1 to 250.")),
        },
    };
    let descending = signed.param("isAscendingOrder") == Some("false");
    let status = signed.param("status").map(str::to_owned);
    let after = match signed.param("marker") {
        None => None,
        Some(marker) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(marker)
                .ok()
                .and_then(|raw| String::from_utf8(raw).ok())
                .ok_or_else(|| invalid("The marker is not one this API returned."))?,
        ),
    };
    let mut all = gateway.authorizers.list();
    if descending {
        all.reverse();
    }
    let matching: Vec<_> = all
        .into_iter()
        .filter(|a| status.as_deref().is_none_or(|s| a.status.as_str() == s))
        .filter(|a| match &after {
            None => true,
            Some(after) if descending => a.name < *after,
            Some(after) => a.name > *after,
        })
        .collect();
    let page: Vec<_> = matching.iter().take(size).collect();
    let mut body = json!({"authorizers": page.iter().map(|a| json!({
        "authorizerName": a.name,
        "authorizerArn": authorizer_arn(&gateway, &a.name),
    })).collect::<Vec<_>>()});
    if matching.len() > size
        && let Some(last) = page.last()
    {
        body["nextMarker"] = json!(base64::engine::general_purpose::STANDARD.encode(&last.name));
    }
    ok(body)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SetDefault {
    authorizer_name: String,
}

/// `POST /default-authorizer` — SetDefaultAuthorizer.
pub async fn set_default(State(gateway): State<Arc<Gateway>>, request: axum::extract::Request) -> Answer {
    let signed = signed_as(&gateway, "SetDefaultAuthorizer", request, SERVICE).await?;
    let SetDefault { authorizer_name: name } =
        serde_json::from_slice(&signed.body).map_err(|e| invalid(format!("The body is not valid: {e}")))?;
    signed.authorize(
        "SetDefaultAuthorizer",
        "iot:SetDefaultAuthorizer",
        &authorizer_arn(&gateway, &name),
        Refused::Unauthorized,
    )?;
    gateway.authorizers.get(&name).ok_or_else(|| no_such(&name))?;
    match gateway.authorizers.default_name() {
        Some(current) if current != name => {
            return Err(DataPlaneError::new(
                StatusCode::CONFLICT,
                "ResourceAlreadyExistsException",
                format!("The default authorizer is already {current}; clear it first."),
            ));
        }
        _ => gateway.authorizers.set_default(Some(name.clone())),
    }
    tracing::info!(authorizer = %name, "default authorizer set");
    name_and_arn(&gateway, &name)
}

/// `GET /default-authorizer` — DescribeDefaultAuthorizer.
pub async fn describe_default(State(gateway): State<Arc<Gateway>>, request: axum::extract::Request) -> Answer {
    authorized(&gateway, "DescribeDefaultAuthorizer", "*", request).await?;
    let authorizer = gateway
        .authorizers
        .default_name()
        .and_then(|name| gateway.authorizers.get(&name))
        .ok_or_else(|| not_found("No default authorizer is set."))?;
    ok(json!({"authorizerDescription": description(&gateway, &authorizer)}))
}

/// `DELETE /default-authorizer` — ClearDefaultAuthorizer.
pub async fn clear_default(State(gateway): State<Arc<Gateway>>, request: axum::extract::Request) -> Answer {
    authorized(&gateway, "ClearDefaultAuthorizer", "*", request).await?;
    if gateway.authorizers.default_name().is_none() {
        return Err(not_found("No default authorizer is set."));
    }
    gateway.authorizers.set_default(None);
    ok(json!({}))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct TestInvoke {
    token: Option<String>,
    token_signature: Option<String>,
    http_context: Option<HttpContext>,
    mqtt_context: Option<MqttIn>,
    tls_context: Option<TlsIn>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct HttpContext {
    headers: Option<BTreeMap<String, String>>,
    query_string: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct MqttIn {
    username: Option<String>,
    password: Option<String>,
    client_id: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct TlsIn {
    server_name: Option<String>,
}

/// `POST /authorizer/{name}/test` — TestInvokeAuthorizer: the signature
/// checked, the function invoked, its answer checked and returned with the
/// policies as strings. A signature that does not verify is
/// `InvalidRequestException`; a function that fails, times out or answers
/// something IoT would not take is `InvalidResponseException`, saying why.
pub async fn test_invoke(
    State(gateway): State<Arc<Gateway>>,
    Path(name): Path<String>,
    request: axum::extract::Request,
) -> Answer {
    let signed = authorized(
        &gateway,
        "TestInvokeAuthorizer",
        &authorizer_arn(&gateway, &name),
        request,
    )
    .await?;
    let authorizer = gateway.authorizers.get(&name).ok_or_else(|| no_such(&name))?;
    let input: TestInvoke = if signed.body.is_empty() {
        TestInvoke::default()
    } else {
        serde_json::from_slice(&signed.body).map_err(|e| invalid(format!("The body is not valid: {e}")))?
    };
    let verified = match &input.token {
        Some(token) if token.chars().count() > crate::authorizers::MAX_TOKEN_CHARS => {
            return Err(invalid("The token is longer than 6144 characters."));
        }
        Some(token) => authorizer
            .check_signature(token, input.token_signature.as_deref())
            .map_err(|e| invalid(e.to_string()))?,
        None => false,
    };
    let http = input.http_context.unwrap_or_default();
    let mqtt = input.mqtt_context;
    let presented = Presented {
        token: input.token.as_deref(),
        signature_verified: verified,
        server_name: input.tls_context.as_ref().and_then(|t| t.server_name.as_deref()),
        headers: http.headers,
        query: http.query_string.as_deref().map(|q| q.strip_prefix('?').unwrap_or(q)),
        mqtt: mqtt.as_ref().map(|m| MqttContext {
            username: m.username.as_deref(),
            password: m.password.as_deref(),
            client_id: m.client_id.as_deref(),
        }),
    };
    let event = crate::authorizers::event(&presented);
    let verdict = gateway.authorizers.call(&authorizer, &event).await.map_err(|e| {
        tracing::warn!(authorizer = %name, "TestInvokeAuthorizer: {e}");
        match e {
            CallError::NoEndpoint => DataPlaneError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailableException",
                e.to_string(),
            ),
            other => DataPlaneError::new(StatusCode::BAD_REQUEST, "InvalidResponseException", other.to_string()),
        }
    })?;
    ok(json!({
        "isAuthenticated": verdict.authenticated,
        "principalId": verdict.principal_id,
        "policyDocuments": verdict.documents,
        "refreshAfterInSeconds": verdict.refresh_after,
        "disconnectAfterInSeconds": verdict.disconnect_after,
    }))
}
