//! `/ServiceProviderConfig`, `/Schemas`, `/ResourceTypes`, shaped as recorded against 1Password
//! (including the ResourceTypes quirks, behind `observed_discovery_quirks`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::error::{ScimError, scim_response};
use super::render::{GROUP_SCHEMA, LIST_SCHEMA, USER_SCHEMA};
use crate::state::SimState;

pub async fn service_provider_config(State(state): State<SimState>) -> Response {
    let mut body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "meta": {"resourceType": "ServiceProviderConfig", "location": "/scim/v2/ServiceProviderConfig"},
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": state.config().filters.advertised(), "maxResults": state.config().max_results},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": false},
        "authenticationSchemes": [{
            "name": "OAuth Bearer Token",
            "description": "Authentication with a bearer token",
            "specUri": "https://tools.ietf.org/html/rfc6750",
            "type": "oauthbearertoken",
        }],
    });
    // Recorded as an empty string, which is not a valid URI.
    if state.config().observed_discovery_quirks {
        body["authenticationSchemes"][0]["documentationUri"] = json!("");
    }
    scim_response(StatusCode::OK, &body)
}

fn attribute(name: &str, kind: &str, required: bool, returned: &str, extra: Value) -> Value {
    let mut a = json!({
        "name": name,
        "type": kind,
        "multiValued": false,
        "description": name,
        "required": required,
        "mutability": "readWrite",
        "returned": returned,
        "uniqueness": "none",
    });
    if kind == "string" || kind == "reference" {
        a["caseExact"] = json!(false);
    }
    if let (Value::Object(a), Value::Object(extra)) = (&mut a, extra) {
        a.extend(extra);
    }
    a
}

fn reference_sub_attributes(mutability: &str) -> Value {
    json!([
        attribute("value", "string", false, "default", json!({"mutability": mutability})),
        attribute(
            "$ref",
            "reference",
            false,
            "default",
            json!({"mutability": mutability, "referenceTypes": ["User", "Group"]})
        ),
        attribute(
            "type",
            "string",
            false,
            "default",
            json!({"mutability": mutability, "canonicalValues": ["User", "Group"]})
        ),
    ])
}

/// The schemas 1Password advertises: a subset of RFC 7643 without `active` and `displayName`,
/// although every user carries them. Without the observed quirks, those two are advertised too.
fn schemas(quirks: bool) -> Vec<Value> {
    let mut user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": USER_SCHEMA,
        "name": "User",
        "description": "User account",
        "attributes": [
            attribute("userName", "string", true, "always", json!({"uniqueness": "server"})),
            attribute("name", "complex", true, "always", json!({"subAttributes": [
                attribute("givenName", "string", true, "default", json!({"caseExact": true})),
                attribute("familyName", "string", true, "default", json!({"caseExact": true})),
                attribute("formatted", "string", true, "default", json!({"caseExact": true})),
            ]})),
            attribute("emails", "complex", false, "always", json!({"multiValued": true, "subAttributes": [
                attribute("primary", "boolean", true, "default", json!({})),
                attribute("type", "string", false, "default", json!({})),
                attribute("value", "string", true, "default", json!({})),
            ]})),
            attribute("externalId", "string", false, "default", json!({"caseExact": true})),
            attribute("preferredLanguage", "string", false, "default", json!({})),
            attribute("groups", "complex", false, "default", json!({
                "multiValued": true,
                "mutability": "readOnly",
                "subAttributes": [
                    attribute("$ref", "reference", false, "default",
                        json!({"mutability": "readOnly", "referenceTypes": ["User", "Group"]})),
                    attribute("value", "string", false, "default", json!({"mutability": "readOnly"})),
                    attribute("display", "string", false, "default", json!({"mutability": "readOnly"})),
                ],
            })),
        ],
        "meta": {"resourceType": "Schema", "location": format!("/scim/v2/Schemas/{USER_SCHEMA}")},
    });
    let group = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": GROUP_SCHEMA,
        "name": "Group",
        "description": "Group",
        "attributes": [
            attribute("displayName", "string", true, "default", json!({})),
            attribute("members", "complex", false, "default", json!({
                "multiValued": true,
                "subAttributes": reference_sub_attributes("immutable"),
            })),
            attribute("externalId", "string", false, "default", json!({"caseExact": true})),
        ],
        "meta": {"resourceType": "Schema", "location": format!("/scim/v2/Schemas/{GROUP_SCHEMA}")},
    });
    if !quirks && let Some(attributes) = user["attributes"].as_array_mut() {
        attributes.push(attribute("displayName", "string", false, "default", json!({})));
        attributes.push(attribute("active", "boolean", false, "default", json!({})));
    }
    vec![user, group]
}

pub async fn list_schemas(State(state): State<SimState>) -> Response {
    let all = schemas(state.config().observed_discovery_quirks);
    let body = json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": all.len(),
        "startIndex": 1,
        "itemsPerPage": all.len(),
        "Resources": all,
    });
    scim_response(StatusCode::OK, &body)
}

pub async fn get_schema(State(state): State<SimState>, Path(id): Path<String>) -> Result<Response, ScimError> {
    schemas(state.config().observed_discovery_quirks)
        .into_iter()
        .find(|s| s["id"].as_str() == Some(id.as_str()))
        .map(|s| scim_response(StatusCode::OK, &s))
        .ok_or_else(|| ScimError::not_found(format!("schema {id} not found")))
}

fn resource_types(quirks: bool) -> Vec<Value> {
    let (users, groups) = if quirks { ("/scim/v2/User", "/scim/v2/Groups") } else { ("/Users", "/Groups") };
    vec![
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "User", "name": "User", "endpoint": users, "description": "User Account",
            "schema": USER_SCHEMA,
            "meta": {"resourceType": "ResourceType", "location": "/scim/v2/ResourceTypes/User"},
        }),
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "Group", "name": "Group", "endpoint": groups, "description": "Group",
            "schema": GROUP_SCHEMA,
            "meta": {"resourceType": "ResourceType", "location": "/scim/v2/ResourceTypes/Group"},
        }),
    ]
}

pub async fn list_resource_types(State(state): State<SimState>) -> Response {
    let quirks = state.config().observed_discovery_quirks;
    let all = resource_types(quirks);
    let body = json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": all.len(),
        "startIndex": if quirks { 0 } else { 1 },
        "itemsPerPage": all.len(),
        "Resources": all,
    });
    scim_response(StatusCode::OK, &body)
}

pub async fn get_resource_type(State(state): State<SimState>, Path(id): Path<String>) -> Result<Response, ScimError> {
    resource_types(state.config().observed_discovery_quirks)
        .into_iter()
        .find(|r| r["id"].as_str() == Some(id.as_str()))
        .map(|r| scim_response(StatusCode::OK, &r))
        .ok_or_else(|| ScimError::not_found(format!("resource type {id} not found")))
}
