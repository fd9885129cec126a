//! `namespaceSelector` and `objectSelector`: label selectors evaluated against the
//! namespace's labels and the object's (or old object's) labels.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::config::Webhook;
use super::{AdmissionAttributes, AdmissionError, Operation};

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct LabelSelector {
    #[serde(default)]
    match_labels: Option<Map<String, Value>>,
    #[serde(default)]
    match_expressions: Option<Vec<Requirement>>,
}

#[derive(Deserialize)]
struct Requirement {
    key: String,
    operator: String,
    #[serde(default)]
    values: Option<Vec<String>>,
}

/// A parsed selector: `None` selects everything.
struct Selector(Option<LabelSelector>);

impl Selector {
    /// Parses a stored selector; absent or `{}` selects everything (the real server
    /// defaults absent selectors to `{}`).
    fn parse(value: Option<&Value>) -> Result<Selector, String> {
        let Some(value) = value.filter(|v| !v.is_null()) else {
            return Ok(Selector(None));
        };
        let selector = LabelSelector::deserialize(value).map_err(|e| e.to_string())?;
        let labels = selector.match_labels.as_ref().map_or(0, Map::len);
        let expressions = selector.match_expressions.as_ref().map_or(0, Vec::len);
        if labels + expressions == 0 {
            return Ok(Selector(None));
        }
        for (key, value) in selector.match_labels.iter().flatten() {
            if !value.is_string() {
                return Err(format!(
                    "matchLabels[{key:?}] must be a string, got {value}"
                ));
            }
        }
        for requirement in selector.match_expressions.iter().flatten() {
            let values = requirement.values.as_deref().unwrap_or_default();
            match requirement.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    return Err(format!(
                        "values: Invalid value: []string{{}}: for 'in', 'notin' operators, values set can't be empty (key {:?})",
                        requirement.key
                    ));
                }
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    return Err(format!(
                        "values: Invalid value: {values:?}: values set must be empty for exists and does not exist (key {:?})",
                        requirement.key
                    ));
                }
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                other => return Err(format!("{other:?} is not a valid label selector operator")),
            }
        }
        Ok(Selector(Some(selector)))
    }

    fn selects_everything(&self) -> bool {
        self.0.is_none()
    }

    fn matches(&self, labels: &Map<String, Value>) -> bool {
        let Some(selector) = &self.0 else {
            return true;
        };
        let label = |key: &str| labels.get(key).and_then(Value::as_str);
        let labels_match = selector
            .match_labels
            .iter()
            .flatten()
            .all(|(key, value)| label(key).is_some() && label(key) == value.as_str());
        let expressions_match = selector
            .match_expressions
            .iter()
            .flatten()
            .all(|requirement| {
                let values = requirement.values.as_deref().unwrap_or_default();
                let actual = label(&requirement.key);
                match requirement.operator.as_str() {
                    "In" => actual.is_some_and(|a| values.iter().any(|v| v == a)),
                    "NotIn" => actual.is_none_or(|a| values.iter().all(|v| v != a)),
                    "Exists" => actual.is_some(),
                    "DoesNotExist" => actual.is_none(),
                    _ => false,
                }
            });
        labels_match && expressions_match
    }
}

/// Checks a stored selector for what the real server's validation rejects.
pub(super) fn validate(value: Option<&Value>) -> Result<(), String> {
    Selector::parse(value).map(|_| ())
}

fn labels_of(object: &Value) -> Map<String, Value> {
    object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// `namespaceSelector`: cluster-scoped requests (other than namespaces) always match; a
/// Namespace being created or updated is judged by its own new labels.
pub(super) fn match_namespace_selector(
    hook: &Webhook,
    attributes: &AdmissionAttributes,
    namespace_object: Option<&Value>,
    object: &Value,
) -> Result<bool, AdmissionError> {
    let is_namespaces = attributes.resource == "namespaces";
    if attributes.namespace().is_empty() && !is_namespaces {
        return Ok(true);
    }
    let selector = Selector::parse(hook.namespace_selector.as_ref())
        .map_err(|e| AdmissionError::internal(&e))?;
    if selector.selects_everything() {
        return Ok(true);
    }
    let labels = if is_namespaces
        && attributes.subresource().is_empty()
        && matches!(attributes.operation, Operation::Create | Operation::Update)
    {
        labels_of(object)
    } else {
        match namespace_object {
            Some(namespace) => labels_of(namespace),
            None => return Err(AdmissionError::namespace_not_found(attributes.namespace())),
        }
    };
    Ok(selector.matches(&labels))
}

/// `objectSelector`: matches when the object or the old object carries matching labels.
pub(super) fn match_object_selector(
    hook: &Webhook,
    object: &Value,
    old_object: Option<&Value>,
) -> Result<bool, AdmissionError> {
    let selector =
        Selector::parse(hook.object_selector.as_ref()).map_err(|e| AdmissionError::internal(&e))?;
    if selector.selects_everything() {
        return Ok(true);
    }
    let matches = |o: &Value| o.is_object() && selector.matches(&labels_of(o));
    Ok(matches(object) || old_object.is_some_and(matches))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn selects(selector: Value, labels: Value) -> bool {
        let parsed = Selector::parse(Some(&selector)).unwrap();
        parsed.matches(labels.as_object().unwrap())
    }

    #[test]
    fn empty_and_absent_selectors_select_everything() {
        assert!(Selector::parse(None).unwrap().selects_everything());
        assert!(
            Selector::parse(Some(&json!({})))
                .unwrap()
                .selects_everything()
        );
        assert!(
            Selector::parse(Some(&json!({"matchLabels": {}})))
                .unwrap()
                .selects_everything()
        );
        assert!(
            !Selector::parse(Some(&json!({"matchLabels": {"a": "b"}})))
                .unwrap()
                .selects_everything()
        );
    }

    #[test]
    fn match_labels_require_every_pair() {
        let s = json!({"matchLabels": {"team": "a", "tier": "db"}});
        assert!(selects(
            s.clone(),
            json!({"team": "a", "tier": "db", "x": "y"})
        ));
        assert!(!selects(s.clone(), json!({"team": "a"})));
        assert!(!selects(s, json!({"team": "a", "tier": "web"})));
    }

    #[test]
    fn match_expressions_follow_kubernetes_set_semantics() {
        let in_ = json!({"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "staging"]}]});
        assert!(selects(in_.clone(), json!({"env": "prod"})));
        assert!(!selects(in_.clone(), json!({"env": "dev"})));
        assert!(!selects(in_, json!({})));
        let not_in =
            json!({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]});
        assert!(selects(not_in.clone(), json!({})));
        assert!(selects(not_in.clone(), json!({"env": "dev"})));
        assert!(!selects(not_in, json!({"env": "prod"})));
        let exists =
            json!({"matchExpressions": [{"key": "vbackup.io/skip", "operator": "Exists"}]});
        assert!(selects(exists.clone(), json!({"vbackup.io/skip": ""})));
        assert!(!selects(exists, json!({})));
        let absent =
            json!({"matchExpressions": [{"key": "vbackup.io/skip", "operator": "DoesNotExist"}]});
        assert!(selects(absent.clone(), json!({})));
        assert!(!selects(absent, json!({"vbackup.io/skip": "true"})));
    }

    #[test]
    fn malformed_selectors_are_errors() {
        let bad_op =
            json!({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["b"]}]});
        assert!(
            Selector::parse(Some(&bad_op))
                .err()
                .unwrap()
                .contains("\"Equals\" is not a valid label selector operator")
        );
        let empty_in = json!({"matchExpressions": [{"key": "a", "operator": "In"}]});
        assert!(
            Selector::parse(Some(&empty_in))
                .err()
                .unwrap()
                .contains("values set can't be empty")
        );
    }
}
