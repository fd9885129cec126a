//! What the real server does to a MutatingWebhookConfiguration when it is stored:
//! admissionregistration/v1 defaults, and the validation that rejects configurations a
//! real cluster would refuse (so a broken manifest fails here as it would in production).

use serde_json::{Map, Value, json};

use super::selector;

/// One validation failure, as a `metav1.StatusCause`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    /// Field path, e.g. `webhooks[0].sideEffects`.
    pub field: String,
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueNotSupported` or `FieldValueDuplicate`.
    pub reason: &'static str,
    /// Message after the field path, e.g. `Required value: must specify one of None, NoneOnDryRun`.
    pub message: String,
}

/// Fills the defaults kube-apiserver applies to every webhook of a configuration.
pub fn apply_configuration_defaults(configuration: &mut Value) {
    let Some(webhooks) = configuration
        .get_mut("webhooks")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for hook in webhooks.iter_mut().filter_map(Value::as_object_mut) {
        default(hook, "failurePolicy", json!("Fail"));
        default(hook, "matchPolicy", json!("Equivalent"));
        default(hook, "namespaceSelector", json!({}));
        default(hook, "objectSelector", json!({}));
        default(hook, "timeoutSeconds", json!(10));
        default(hook, "reinvocationPolicy", json!("Never"));
        if let Some(rules) = hook.get_mut("rules").and_then(Value::as_array_mut) {
            for rule in rules.iter_mut().filter_map(Value::as_object_mut) {
                default(rule, "scope", json!("*"));
            }
        }
        if let Some(service) = hook
            .get_mut("clientConfig")
            .and_then(|c| c.get_mut("service"))
            .and_then(Value::as_object_mut)
        {
            default(service, "port", json!(443));
        }
    }
}

fn default(map: &mut Map<String, Value>, key: &str, value: Value) {
    if map.get(key).is_none_or(Value::is_null) {
        map.insert(key.to_owned(), value);
    }
}

/// Every reason the real server would refuse to store this configuration (empty when valid).
pub fn configuration_problems(configuration: &Value) -> Vec<FieldProblem> {
    let mut problems = Problems(Vec::new());
    let hooks = configuration
        .get("webhooks")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut names = std::collections::HashSet::new();
    for (i, hook) in hooks.iter().enumerate() {
        let at = format!("webhooks[{i}]");
        let name = text(hook, "name");
        match name {
            None => problems.required(&format!("{at}.name"), ""),
            Some(name) => {
                if !is_fully_qualified(name) {
                    problems.invalid(
                        &format!("{at}.name"),
                        &quoted(name),
                        "should be a domain with at least three segments separated by dots",
                    );
                }
                if !names.insert(name.to_owned()) {
                    problems.push(
                        &format!("{at}.name"),
                        "FieldValueDuplicate",
                        format!("Duplicate value: {}", quoted(name)),
                    );
                }
            }
        }
        for (j, rule) in array(hook, "rules").iter().enumerate() {
            rule_problems(rule, &format!("{at}.rules[{j}]"), &mut problems);
        }
        problems.supported(hook, &at, "failurePolicy", &["Fail", "Ignore"]);
        problems.supported(hook, &at, "matchPolicy", &["Equivalent", "Exact"]);
        problems.supported(hook, &at, "reinvocationPolicy", &["IfNeeded", "Never"]);
        match hook.get("sideEffects").filter(|v| !v.is_null()) {
            None => problems.required(
                &format!("{at}.sideEffects"),
                ": must specify one of None, NoneOnDryRun",
            ),
            Some(_) => problems.supported(hook, &at, "sideEffects", &["None", "NoneOnDryRun"]),
        }
        if let Some(timeout) = hook.get("timeoutSeconds").filter(|v| !v.is_null())
            && !timeout.as_i64().is_some_and(|t| (1..=30).contains(&t))
        {
            problems.invalid(
                &format!("{at}.timeoutSeconds"),
                &timeout.to_string(),
                "the timeout value must be between 1 and 30 seconds",
            );
        }
        for selector_field in ["namespaceSelector", "objectSelector"] {
            if let Err(e) = selector::validate(hook.get(selector_field)) {
                problems.invalid(&format!("{at}.{selector_field}"), "", &e);
            }
        }
        client_config_problems(
            hook.get("clientConfig"),
            &format!("{at}.clientConfig"),
            &mut problems,
        );
        review_version_problems(
            hook,
            &format!("{at}.admissionReviewVersions"),
            &mut problems,
        );
    }
    problems.0
}

fn rule_problems(rule: &Value, at: &str, problems: &mut Problems) {
    let operations = strings(rule, "operations");
    if operations.is_empty() {
        problems.required(&format!("{at}.operations"), "");
    }
    if operations.len() > 1 && operations.contains(&"*") {
        problems.invalid(
            &format!("{at}.operations"),
            &format!("{operations:?}"),
            "if '*' is present, must not specify other operations",
        );
    }
    let supported = ["*", "CONNECT", "CREATE", "DELETE", "UPDATE"];
    for (k, op) in operations.iter().enumerate() {
        if !supported.contains(op) {
            problems.not_supported(&format!("{at}.operations[{k}]"), op, &supported);
        }
    }
    for list in ["apiGroups", "apiVersions", "resources"] {
        if strings(rule, list).is_empty() {
            problems.required(&format!("{at}.{list}"), "");
        }
    }
    if let Some(scope) = text(rule, "scope")
        && !["*", "Cluster", "Namespaced"].contains(&scope)
    {
        problems.not_supported(
            &format!("{at}.scope"),
            scope,
            &["*", "Cluster", "Namespaced"],
        );
    }
}

fn client_config_problems(config: Option<&Value>, at: &str, problems: &mut Problems) {
    let config = config.cloned().unwrap_or(Value::Null);
    let url = text(&config, "url");
    let service = config.get("service").filter(|s| !s.is_null());
    match (url, service) {
        (Some(url), None) => match reqwest::Url::parse(url) {
            Err(e) => problems.invalid(&format!("{at}.url"), &quoted(url), &e.to_string()),
            Ok(u) => {
                let at = format!("{at}.url");
                if u.scheme() != "https" {
                    problems.invalid(
                        &at,
                        &quoted(u.scheme()),
                        "'https' is the only allowed URL scheme",
                    );
                }
                if u.host_str().is_none_or(str::is_empty) {
                    problems.invalid(&at, "\"\"", "host must be specified");
                }
                if !u.username().is_empty() || u.password().is_some() {
                    problems.invalid(&at, "", "user information is not permitted in the URL");
                }
                if u.fragment().is_some() {
                    problems.invalid(
                        &at,
                        &quoted(u.fragment().unwrap_or("")),
                        "fragments are not permitted in the URL",
                    );
                }
                if u.query().is_some() {
                    problems.invalid(
                        &at,
                        &quoted(u.query().unwrap_or("")),
                        "query parameters are not permitted in the URL",
                    );
                }
            }
        },
        (None, Some(service)) => {
            let at = format!("{at}.service");
            if text(service, "name").is_none() {
                problems.required(&format!("{at}.name"), ": service name is required");
            }
            if text(service, "namespace").is_none() {
                problems.required(
                    &format!("{at}.namespace"),
                    ": service namespace is required",
                );
            }
            if let Some(path) = text(service, "path")
                && !path.starts_with('/')
            {
                problems.invalid(
                    &format!("{at}.path"),
                    &quoted(path),
                    "must start with a '/'",
                );
            }
            if let Some(port) = service.get("port").filter(|p| !p.is_null())
                && !port.as_i64().is_some_and(|p| (1..=65535).contains(&p))
            {
                problems.invalid(
                    &format!("{at}.port"),
                    &port.to_string(),
                    "port is not valid: must be between 1 and 65535, inclusive",
                );
            }
        }
        _ => problems.required(at, ": exactly one of url or service is required"),
    }
}

fn review_version_problems(hook: &Value, at: &str, problems: &mut Problems) {
    let versions = strings(hook, "admissionReviewVersions");
    if versions.is_empty() {
        problems.required(at, ": must specify one of v1, v1beta1");
    } else if !versions.iter().any(|v| *v == "v1" || *v == "v1beta1") {
        problems.invalid(
            at,
            &format!("{versions:?}"),
            "must include at least one of v1, v1beta1",
        );
    }
}

struct Problems(Vec<FieldProblem>);

impl Problems {
    fn push(&mut self, field: &str, reason: &'static str, message: String) {
        self.0.push(FieldProblem {
            field: field.to_owned(),
            reason,
            message,
        });
    }

    fn required(&mut self, field: &str, detail: &str) {
        self.push(
            field,
            "FieldValueRequired",
            format!("Required value{detail}"),
        );
    }

    fn invalid(&mut self, field: &str, value: &str, detail: &str) {
        self.push(
            field,
            "FieldValueInvalid",
            format!("Invalid value: {value}: {detail}"),
        );
    }

    fn not_supported(&mut self, field: &str, value: &str, supported: &[&str]) {
        let list: Vec<String> = supported.iter().map(|s| quoted(s)).collect();
        self.push(
            field,
            "FieldValueNotSupported",
            format!(
                "Unsupported value: {}: supported values: {}",
                quoted(value),
                list.join(", ")
            ),
        );
    }

    /// An optional enum field of a webhook, when set, must be one of `supported`.
    fn supported(&mut self, hook: &Value, at: &str, key: &str, supported: &[&str]) {
        if let Some(value) = text(hook, key)
            && !supported.contains(&value)
        {
            self.not_supported(&format!("{at}.{key}"), value, supported);
        }
    }
}

fn text<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn array<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn strings<'a>(value: &'a Value, key: &str) -> Vec<&'a str> {
    array(value, key).iter().filter_map(Value::as_str).collect()
}

fn quoted(s: &str) -> String {
    super::status::go_quote(s)
}

/// A DNS subdomain with at least three segments, like `pods.vbackup.io`.
fn is_fully_qualified(name: &str) -> bool {
    let label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    name.len() <= 253 && name.split('.').count() >= 3 && name.split('.').all(label)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid_hook() -> Value {
        json!({
            "name": "pods.vbackup.io",
            "clientConfig": {"service": {"namespace": "vbackup-system", "name": "webhook", "path": "/mutate"}},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
        })
    }

    #[test]
    fn defaults_are_the_real_servers() {
        let mut config = json!({"webhooks": [valid_hook()]});
        apply_configuration_defaults(&mut config);
        let hook = &config["webhooks"][0];
        assert_eq!(hook["failurePolicy"], "Fail");
        assert_eq!(hook["matchPolicy"], "Equivalent");
        assert_eq!(hook["namespaceSelector"], json!({}));
        assert_eq!(hook["objectSelector"], json!({}));
        assert_eq!(hook["timeoutSeconds"], 10);
        assert_eq!(hook["reinvocationPolicy"], "Never");
        assert_eq!(hook["rules"][0]["scope"], "*");
        assert_eq!(hook["clientConfig"]["service"]["port"], 443);
    }

    #[test]
    fn a_complete_configuration_is_valid() {
        assert_eq!(
            configuration_problems(&json!({"webhooks": [valid_hook()]})),
            vec![]
        );
    }

    #[test]
    fn missing_side_effects_and_review_versions_are_required() {
        let mut hook = valid_hook();
        hook.as_object_mut().unwrap().remove("sideEffects");
        hook.as_object_mut()
            .unwrap()
            .remove("admissionReviewVersions");
        let problems = configuration_problems(&json!({"webhooks": [hook]}));
        assert_eq!(
            problems,
            vec![
                FieldProblem {
                    field: "webhooks[0].sideEffects".into(),
                    reason: "FieldValueRequired",
                    message: "Required value: must specify one of None, NoneOnDryRun".into(),
                },
                FieldProblem {
                    field: "webhooks[0].admissionReviewVersions".into(),
                    reason: "FieldValueRequired",
                    message: "Required value: must specify one of v1, v1beta1".into(),
                },
            ]
        );
    }

    #[test]
    fn bad_values_are_named_field_by_field() {
        let mut hook = valid_hook();
        let h = hook.as_object_mut().unwrap();
        h.insert("name".into(), json!("mutate"));
        h.insert("sideEffects".into(), json!("Some"));
        h.insert("failurePolicy".into(), json!("Maybe"));
        h.insert("timeoutSeconds".into(), json!(31));
        h.insert(
            "clientConfig".into(),
            json!({"url": "http://example.com/mutate?x=1"}),
        );
        let fields: Vec<String> =
            configuration_problems(&json!({"webhooks": [hook.clone(), hook]}))
                .into_iter()
                .map(|p| format!("{}: {}", p.field, p.message))
                .collect();
        assert!(fields.contains(&"webhooks[0].name: Invalid value: \"mutate\": should be a domain with at least three segments separated by dots".to_owned()));
        assert!(fields.contains(&"webhooks[0].sideEffects: Unsupported value: \"Some\": supported values: \"None\", \"NoneOnDryRun\"".to_owned()));
        assert!(fields.contains(&"webhooks[0].failurePolicy: Unsupported value: \"Maybe\": supported values: \"Fail\", \"Ignore\"".to_owned()));
        assert!(fields.contains(&"webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 seconds".to_owned()));
        assert!(fields.contains(&"webhooks[0].clientConfig.url: Invalid value: \"http\": 'https' is the only allowed URL scheme".to_owned()));
        assert!(fields.contains(&"webhooks[0].clientConfig.url: Invalid value: \"x=1\": query parameters are not permitted in the URL".to_owned()));
        assert!(fields.contains(&"webhooks[1].name: Duplicate value: \"mutate\"".to_owned()));
    }

    #[test]
    fn client_config_needs_exactly_one_of_url_or_service() {
        let mut hook = valid_hook();
        hook["clientConfig"] =
            json!({"url": "https://127.0.0.1:8443/m", "service": {"namespace": "a", "name": "b"}});
        let problems = configuration_problems(&json!({"webhooks": [hook]}));
        assert_eq!(problems[0].field, "webhooks[0].clientConfig");
        assert_eq!(
            problems[0].message,
            "Required value: exactly one of url or service is required"
        );
    }
}
