//! `kubectl vbackup version`.

use std::process::ExitCode;

use serde::Serialize;

use super::Context;
use crate::output::print_structured;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Versions {
    client_version: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_error: Option<String>,
}

/// Prints the plugin's version and the cluster's when it can be reached.
pub async fn run(ctx: &Context) -> anyhow::Result<ExitCode> {
    let server = match ctx.connect().await {
        Ok(client) => client
            .apiserver_version()
            .await
            .map(|info| info.git_version)
            .map_err(|e| e.to_string()),
        Err(e) => Err(format!("{e:#}")),
    };
    let versions = Versions {
        client_version: env!("CARGO_PKG_VERSION"),
        server_version: server.as_ref().ok().cloned(),
        server_error: server.as_ref().err().cloned(),
    };
    if !print_structured(ctx.global.output, &versions)? {
        println!("Client Version: v{}", versions.client_version);
        match server {
            Ok(v) => println!("Server Version: {v}"),
            Err(e) => println!("Server Version: unavailable ({e})"),
        }
    }
    Ok(ExitCode::SUCCESS)
}
