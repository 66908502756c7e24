//! One handler per Lambda function: parse the event, call the domain, map the result to a
//! response. Each is built once per cold start ([`from_env`](create_session::CreateSession::from_env))
//! and then serves every invocation of its sandbox.

pub mod create_session;
pub mod delete_connection;
pub mod list_connections;
pub mod publish_events;
pub mod reconcile_connections;
pub mod reconnect_session;
pub mod webhook_receiver;

use serde::Serialize;

use crate::connection::Connection;
use crate::nango::ConnectSession;

/// `201` body of both session endpoints.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionResponse {
    pub session_token: String,
    pub connect_link: Option<String>,
    pub expires_at: String,
}

impl From<ConnectSession> for SessionResponse {
    fn from(session: ConnectSession) -> Self {
        SessionResponse {
            session_token: session.token,
            connect_link: session.connect_link,
            expires_at: session.expires_at,
        }
    }
}

/// One connection as `GET /connections` shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionView {
    pub connection_id: String,
    pub integration_id: String,
    pub provider: Option<String>,
    pub status: &'static str,
    pub error: Option<ErrorView>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Serialize)]
pub struct ErrorView {
    #[serde(rename = "type")]
    pub kind: String,
    pub description: String,
}

impl From<Connection> for ConnectionView {
    fn from(connection: Connection) -> Self {
        ConnectionView {
            connection_id: connection.id.into(),
            integration_id: connection.integration_id.into(),
            provider: connection.provider,
            status: connection.status.as_str(),
            error: connection.error.map(|failure| ErrorView {
                kind: failure.kind,
                description: failure.description,
            }),
            created_at: connection.created_at,
            updated_at: connection.updated_at,
        }
    }
}
