//! The console's sessions: a cookie (kept only as its hash) standing for an API token
//! until it expires, the person signs out or the token is revoked.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::ops::TokenRow;
use crate::{Store, StoreError};

/// A live session: the token it stands for and the form secret (CSRF) it carries.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub token: TokenRow,
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
}

impl Store {
    /// Records a session for `token_id` (its cookie already hashed by the caller). Expired
    /// sessions are swept on the way: sign-ins are rare, so this costs nothing noticeable.
    pub async fn create_session(
        &self,
        id_hash: &[u8],
        token_id: Uuid,
        csrf: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM console_sessions WHERE expires_at < now()")
            .execute(self.pool())
            .await?;
        sqlx::query(
            "INSERT INTO console_sessions (id_hash, token_id, csrf, expires_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(id_hash)
        .bind(token_id)
        .bind(csrf)
        .bind(expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The session whose cookie hashes to `id_hash`, if it has not expired and its token
    /// is not revoked.
    pub async fn session_by_hash(&self, id_hash: &[u8]) -> Result<Option<SessionRow>, StoreError> {
        let row = sqlx::query_as::<
            _,
            (
                Uuid,
                String,
                String,
                Vec<String>,
                DateTime<Utc>,
                String,
                DateTime<Utc>,
            ),
        >(
            "SELECT t.id, t.name, t.role, t.tenants, t.created_at, s.csrf, s.expires_at
             FROM console_sessions s JOIN api_tokens t ON t.id = s.token_id
             WHERE s.id_hash = $1 AND s.expires_at > now() AND t.revoked_at IS NULL",
        )
        .bind(id_hash)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(
            |(id, name, role, tenants, created_at, csrf, expires_at)| SessionRow {
                token: TokenRow {
                    id,
                    name,
                    role,
                    tenants,
                    created_at,
                    revoked_at: None,
                },
                csrf,
                expires_at,
            },
        ))
    }

    /// Ends a session (signing out); ending one that is gone is not an error.
    pub async fn delete_session(&self, id_hash: &[u8]) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
