//! Waiting for CustomResourceDefinitions: a new CRD's objects are refused until the API
//! server has Established it.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::Api;
use kube::runtime::wait::{await_condition, conditions};

/// Waits (watching, not polling) until the CRD `name` is Established, at most `limit`;
/// false when it is not by then.
pub async fn wait_established(client: &Client, name: &str, limit: Duration) -> bool {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let established = await_condition(api, name, conditions::is_crd_established());
    let done = matches!(
        tokio::time::timeout(limit, established).await,
        Ok(Ok(Some(_)))
    );
    tracing::debug!(crd = name, established = done, "waited for the CRD");
    done
}
