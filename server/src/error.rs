//! The HTTP error type: a status, a stable machine-readable kind and a message for people,
//! rendered as `{"error": kind, "message": text}`. Causes worth logging are logged where they
//! happen; 5xx bodies never carry internals.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
    /// The request field at fault, for validation errors.
    pub field: Option<&'static str>,
    /// Seconds for a `Retry-After` header (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// The same error, telling the client when to try again.
    #[must_use]
    pub fn retry_after(self, seconds: u64) -> Self {
        Self {
            retry_after: Some(seconds),
            ..self
        }
    }

    /// 422: a field of the request is not acceptable.
    pub fn validation(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field),
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                message,
            )
        }
    }

    pub fn conflict(kind: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, kind, message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal server error",
        )
    }
}

impl From<crate::protocol::publish::PublishError> for ApiError {
    fn from(e: crate::protocol::publish::PublishError) -> Self {
        use crate::protocol::publish::PublishError;
        match e {
            PublishError::BadRequest(message) => Self::bad_request(message),
            PublishError::TooLarge(message) => Self::too_large(message),
        }
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> Self {
        use crate::db::DbError;
        match e {
            DbError::Unavailable(cause) => {
                tracing::warn!(%cause, "database unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database_unavailable",
                    "The database is unavailable; nothing was changed. Retry shortly.",
                )
            }
            DbError::Conflict => Self::new(
                StatusCode::CONFLICT,
                "conflict",
                "The value conflicts with an existing record",
            ),
            DbError::NotFound => Self::not_found("Not found"),
            other => {
                tracing::error!(error = %other, "database error");
                Self::internal()
            }
        }
    }
}

impl From<crate::apps::ConfigError> for ApiError {
    fn from(e: crate::apps::ConfigError) -> Self {
        Self::validation(e.field, e.message)
    }
}

impl From<crate::apps::AppError> for ApiError {
    fn from(e: crate::apps::AppError) -> Self {
        use crate::apps::AppError;
        match e {
            AppError::NotFound(id) => Self::not_found(format!("No app with id {id}")),
            AppError::Invalid(e) => e.into(),
            AppError::Contended => Self::conflict(
                "conflict",
                "The app kept changing while this change was made; nothing was changed. Retry.",
            ),
            AppError::Taken(field) => Self {
                field: Some(field),
                ..Self::conflict("conflict", AppError::Taken(field).to_string())
            },
            AppError::Db(e) => e.into(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut body = json!({ "error": self.kind, "message": self.message });
        if let Some(field) = self.field {
            body["field"] = json!(field);
        }
        let mut response = HttpResponse::build(self.status);
        if let Some(seconds) = self.retry_after {
            response.insert_header((actix_web::http::header::RETRY_AFTER, seconds));
        }
        response.json(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::DbError;

    #[test]
    fn storage_errors_map_to_http() {
        let status = |e: DbError| ApiError::from(e).status.as_u16();
        assert_eq!(status(DbError::Unavailable("down".into())), 503);
        assert_eq!(status(DbError::Conflict), 409);
        assert_eq!(status(DbError::NotFound), 404);
        assert_eq!(status(DbError::Migration("x".into())), 500);
        assert!(
            !ApiError::from(DbError::Unavailable("secret detail".into()))
                .message
                .contains("secret")
        );
    }
}
