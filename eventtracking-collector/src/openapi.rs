//! `GET /openapi.json`: an OpenAPI 3.0 document of the endpoints.

use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::response::Response;
use http::StatusCode;
use serde_json::{json, Value};

use crate::response::json_response;
use crate::Shared;

/// The handler.
pub(crate) async fn openapi(State(_shared): State<Arc<Shared>>) -> Response {
    json_response(StatusCode::OK, document())
}

/// The document (built once).
pub(crate) fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(build)
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
}

fn retry_after() -> Value {
    json!({
        "Retry-After": {
            "description": "Seconds to wait before sending again.",
            "schema": {"type": "integer", "minimum": 1}
        }
    })
}

/// What an event name may hold: no `char::is_whitespace` or
/// `char::is_control` character (the rule of `validate_event_name`), spelled
/// out as code points so every regex dialect (ECMA 262, Python, Rust) reads
/// it the same.
const NAME_PATTERN: &str =
    r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$";

/// The timestamps `parse_timestamp` reads: RFC 3339 with an upper-case `T`,
/// in UTC (`Z` or `+00:00`), from 1970 on.
const TIMESTAMP_PATTERN: &str = r"^(19[7-9][0-9]|[2-9][0-9]{3})-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|\+00:00)$";

fn build() -> Value {
    let body_schema = json!({"$ref": "#/components/schemas/Body"});
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "eventtracking collector",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Collects events from browsers and apps into an eventtracking tracker. The server sets received_at, client_ip, user_agent, referer, request_id, source and client_timestamp in each event's context."
        },
        "paths": {
            "/v1/events": {
                "post": {
                    "summary": "Send events",
                    "description": "One event, an array of events, or {\"events\": [...]}; JSON as application/json or text/plain (sendBeacon), optionally gzip-encoded.",
                    "operationId": "postEvents",
                    "security": [{"bearer": []}, {"keyHeader": []}, {"keyQuery": []}, {}],
                    "requestBody": {
                        "required": true,
                        "content": {
                            "application/json": {"schema": body_schema},
                            "text/plain": {"schema": body_schema}
                        }
                    },
                    "responses": {
                        "202": {
                            "description": "Accepted: every accepted event is queued for every backend.",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}}
                        },
                        "400": {
                            "description": "Malformed JSON (with its line and column), or not one of the accepted shapes.",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Malformed"}}}
                        },
                        "401": {
                            "description": "No write key, or one that is not a write key.",
                            "headers": {
                                "WWW-Authenticate": {
                                    "description": "Always `Bearer`.",
                                    "schema": {"type": "string", "enum": ["Bearer"]}
                                }
                            },
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
                        },
                        "408": error_response("The body did not arrive within body_timeout_ms."),
                        "413": error_response("The body, the batch, or a rate limit's burst is exceeded."),
                        "415": error_response("Not JSON or text, not UTF-8, or an encoding other than gzip."),
                        "422": {
                            "description": "Every event was invalid; each error with its JSON pointer.",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Refused"}}}
                        },
                        "429": {
                            "description": "Over a rate limit.",
                            "headers": retry_after(),
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
                        },
                        "503": {
                            "description": "A backend's queue is full, or the collector is shutting down: send the listed events again.",
                            "headers": retry_after(),
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Refused"}}}
                        }
                    }
                }
            },
            "/healthz": {
                "get": {
                    "summary": "The process serves",
                    "operationId": "healthz",
                    "responses": {"200": {"description": "Serving.", "content": {"application/json": {"schema": {"type": "object"}}}}}
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Every backend's queue has room and the collector is not shutting down",
                    "operationId": "readyz",
                    "responses": {
                        "200": {"description": "Ready.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Readiness"}}}},
                        "503": {"description": "Not ready.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Readiness"}}}}
                    }
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "operationId": "metrics",
                    "responses": {"200": {"description": "The OpenMetrics text exposition (Prometheus scrapes it).", "content": {"application/openmetrics-text": {"schema": {"type": "string"}}}}}
                }
            },
            "/catalog.json": {
                "get": {
                    "summary": "The event types this program knows, with their JSON Schemas",
                    "operationId": "catalog",
                    "responses": {
                        "200": {"description": "{\"event_types\": [...]}.", "content": {"application/json": {"schema": {"type": "object", "required": ["event_types"], "properties": {"event_types": {"type": "array", "items": {"type": "object"}}}}}}},
                        "500": error_response("Two linked event types share a name and version with different schemas.")
                    }
                }
            },
            "/catalog": {
                "get": {
                    "summary": "The event types this program knows, as a web page with a search box",
                    "operationId": "catalogPage",
                    "responses": {
                        "200": {"description": "One self-contained HTML page.", "content": {"text/html": {"schema": {"type": "string"}}}},
                        "500": {"description": "Two linked event types share a name and version with different schemas.", "content": {"text/plain": {"schema": {"type": "string"}}}}
                    }
                }
            },
            "/v1/tracker.js": {
                "get": {
                    "summary": "The browser tracker, eventtracking.js",
                    "operationId": "trackerJs",
                    "responses": {"200": {"description": "JavaScript defining window.eventtracking.", "content": {"application/javascript": {"schema": {"type": "string"}}}}}
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "operationId": "openapi",
                    "responses": {"200": {"description": "OpenAPI 3.0.", "content": {"application/json": {"schema": {"type": "object"}}}}}
                }
            }
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "keyHeader": {"type": "apiKey", "in": "header", "name": "X-Eventtracking-Key"},
                "keyQuery": {"type": "apiKey", "in": "query", "name": "key"}
            },
            "schemas": {
                "Event": {
                    "type": "object",
                    "required": ["name", "data"],
                    "additionalProperties": false,
                    "properties": {
                        "name": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 255,
                            "pattern": NAME_PATTERN,
                            "description": "At most 255 bytes of UTF-8, no whitespace or control characters (Unicode White_Space and Cc)."
                        },
                        "data": {"description": "Any JSON value."},
                        "context": {"type": "object", "nullable": true, "additionalProperties": true},
                        "id": {"type": "string", "format": "uuid", "nullable": true},
                        "timestamp": {
                            "type": "string",
                            "format": "date-time",
                            "pattern": TIMESTAMP_PATTERN,
                            "nullable": true,
                            "description": "RFC 3339 in UTC (Z or +00:00), from 1970; kept as context.client_timestamp."
                        }
                    }
                },
                "Body": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/Event"},
                        {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
                        {
                            "type": "object",
                            "required": ["events"],
                            "additionalProperties": false,
                            "properties": {"events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}}}
                        }
                    ]
                },
                "Rejection": {
                    "type": "object",
                    "required": ["index", "pointer", "error"],
                    "properties": {
                        "index": {"type": "integer", "minimum": 0},
                        "pointer": {"type": "string", "description": "A JSON pointer into the request body, e.g. /events/3/name."},
                        "error": {"type": "string"}
                    }
                },
                "Accepted": {
                    "type": "object",
                    "required": ["accepted", "rejected"],
                    "properties": {
                        "accepted": {"type": "integer", "minimum": 0},
                        "rejected": {"type": "array", "items": {"$ref": "#/components/schemas/Rejection"}}
                    }
                },
                "Refused": {
                    "type": "object",
                    "required": ["error", "accepted", "rejected"],
                    "properties": {
                        "error": {"type": "string"},
                        "accepted": {"type": "integer", "minimum": 0},
                        "rejected": {"type": "array", "items": {"$ref": "#/components/schemas/Rejection"}}
                    }
                },
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}}
                },
                "Malformed": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {"type": "string"},
                        "line": {"type": "integer"},
                        "column": {"type": "integer"}
                    }
                },
                "Readiness": {
                    "type": "object",
                    "required": ["ready", "shutting_down", "backends"],
                    "properties": {
                        "ready": {"type": "boolean"},
                        "shutting_down": {"type": "boolean"},
                        "backends": {"type": "object", "additionalProperties": {"type": "object"}}
                    }
                }
            }
        }
    })
}
