//! Admin-side records: users, login sessions, API tokens and the audit log.
//!
//! Tokens and session ids are random and high-entropy, so they are stored as SHA-256 digests
//! (a stolen database yields no usable credential); passwords are argon2id hashes made by the
//! caller.

use diesel::prelude::*;

use super::schema::{admin_sessions, admin_users, api_tokens, audit_log};
use super::{now_unix, AnyConnection, Db, DbError};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = admin_users)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl UserRow {
    pub fn to_api(&self) -> shared::admin::User {
        shared::admin::User {
            id: self.id.clone(),
            email: self.email.clone(),
            name: self.name.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = admin_sessions)]
pub struct SessionRow {
    pub token_hash: String,
    pub user_id: String,
    pub csrf_token: String,
    pub created_at: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_tokens)]
pub struct TokenRow {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub token_hash: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl TokenRow {
    pub fn to_api(&self) -> shared::admin::ApiToken {
        shared::admin::ApiToken {
            id: self.id.clone(),
            name: self.name.clone(),
            user_id: self.user_id.clone(),
            created_at: self.created_at,
            last_used_at: self.last_used_at,
            revoked_at: self.revoked_at,
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_log)]
pub struct AuditRow {
    pub id: String,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub before_json: Option<String>,
    pub after_json: Option<String>,
}

impl AuditRow {
    /// A record of one change, made now, with a time-ordered id.
    pub fn new(
        actor: String,
        action: &str,
        target_type: &str,
        target_id: &str,
        before: Option<serde_json::Value>,
        after: Option<serde_json::Value>,
    ) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            at: now_unix(),
            actor,
            action: action.to_owned(),
            target_type: target_type.to_owned(),
            target_id: target_id.to_owned(),
            before_json: before.map(|v| v.to_string()),
            after_json: after.map(|v| v.to_string()),
        }
    }
}

/// Why a user could not be deleted.
#[derive(Debug, PartialEq, Eq)]
pub enum DeleteUserError {
    NotFound,
    LastUser,
}

impl Db {
    pub fn count_users(&self) -> Result<i64, DbError> {
        Ok(admin_users::table.count().get_result(&mut self.conn()?)?)
    }

    pub fn list_users(&self) -> Result<Vec<UserRow>, DbError> {
        Ok(admin_users::table
            .order((admin_users::created_at.asc(), admin_users::email.asc()))
            .select(UserRow::as_select())
            .load(&mut self.conn()?)?)
    }

    pub fn get_user(&self, id: &str) -> Result<UserRow, DbError> {
        Ok(admin_users::table
            .find(id)
            .select(UserRow::as_select())
            .first(&mut self.conn()?)?)
    }

    pub fn find_user_by_email(&self, email: &str) -> Result<Option<UserRow>, DbError> {
        Ok(admin_users::table
            .filter(admin_users::email.eq(email))
            .select(UserRow::as_select())
            .first(&mut self.conn()?)
            .optional()?)
    }

    /// Stores a new user with its audit record (setup, the API and the CLI all create users
    /// through here).
    pub fn create_user(&self, user: &UserRow, actor: String) -> Result<(), DbError> {
        self.insert_user(user)?;
        let after = serde_json::to_value(user.to_api()).ok();
        self.insert_audit(&AuditRow::new(
            actor,
            "user.create",
            "user",
            &user.id,
            None,
            after,
        ))
    }

    pub fn insert_user(&self, user: &UserRow) -> Result<(), DbError> {
        diesel::insert_into(admin_users::table)
            .values(user)
            .execute(&mut self.conn()?)?;
        Ok(())
    }

    pub fn update_user(&self, user: &UserRow) -> Result<(), DbError> {
        diesel::update(admin_users::table.find(&user.id))
            .set(user)
            .execute(&mut self.conn()?)?;
        Ok(())
    }

    /// Changes a user in one transaction under the row's lock, so that concurrent changes of
    /// one user are applied one after the other and none is lost. `decide` sees the stored row
    /// and returns the row to store, or `None` to store nothing (then `Err(stored row)`). When
    /// the password hash changed, the user's other sessions (all but `keep`) end and every
    /// token of theirs is revoked in the same transaction; `audit` records before and after.
    pub fn change_user(
        &self,
        id: &str,
        keep: Option<&str>,
        decide: impl FnOnce(&UserRow) -> Option<UserRow>,
        audit: impl FnOnce(&UserRow, &UserRow) -> AuditRow,
    ) -> Result<Result<(UserRow, UserRow), UserRow>, DbError> {
        self.conn()?.transaction(|conn| {
            // The row lock first (see `delete_user`): a concurrent change waits for this one.
            diesel::update(admin_users::table.find(id))
                .set(admin_users::updated_at.eq(admin_users::updated_at))
                .execute(conn)?;
            let before = admin_users::table
                .find(id)
                .select(UserRow::as_select())
                .first(conn)?;
            let Some(after) = decide(&before) else {
                return Ok(Err(before));
            };
            diesel::update(admin_users::table.find(id))
                .set(&after)
                .execute(conn)?;
            if after.password_hash != before.password_hash {
                let sessions = admin_sessions::table.filter(admin_sessions::user_id.eq(id));
                match keep {
                    Some(keep) => {
                        diesel::delete(sessions.filter(admin_sessions::token_hash.ne(keep)))
                            .execute(conn)?
                    }
                    None => diesel::delete(sessions).execute(conn)?,
                };
                diesel::update(
                    api_tokens::table
                        .filter(api_tokens::user_id.eq(id))
                        .filter(api_tokens::revoked_at.is_null()),
                )
                .set(api_tokens::revoked_at.eq(Some(now_unix())))
                .execute(conn)?;
            }
            diesel::insert_into(audit_log::table)
                .values(&audit(&before, &after))
                .execute(conn)?;
            Ok(Ok((before, after)))
        })
    }

    /// Deletes a user unless it is the last one, checked under a lock so that concurrent deletes
    /// of different users cannot remove every user between them.
    pub fn delete_user(&self, id: &str) -> Result<Result<UserRow, DeleteUserError>, DbError> {
        self.conn()?.transaction(|conn| {
            // The lock, the same statement on every backend: a write to every user row first.
            // PostgreSQL and MySQL lock each row until commit, so a concurrent delete waits and
            // then counts what is left (PostgreSQL takes a new snapshot per statement; InnoDB
            // takes its snapshot at the first plain read, after this). SQLite takes its single
            // write lock here, before any read, so concurrent deletes run one after the other.
            diesel::update(admin_users::table)
                .set(admin_users::updated_at.eq(admin_users::updated_at))
                .execute(conn)?;
            let Some(user) = admin_users::table
                .find(id)
                .select(UserRow::as_select())
                .first(conn)
                .optional()?
            else {
                return Ok(Err(DeleteUserError::NotFound));
            };
            let count: i64 = admin_users::table.count().get_result(conn)?;
            if count <= 1 {
                return Ok(Err(DeleteUserError::LastUser));
            }
            // Explicit, so the cascade does not depend on each backend's foreign-key setup.
            diesel::delete(admin_sessions::table.filter(admin_sessions::user_id.eq(id)))
                .execute(conn)?;
            diesel::delete(api_tokens::table.filter(api_tokens::user_id.eq(id))).execute(conn)?;
            diesel::delete(admin_users::table.find(id)).execute(conn)?;
            Ok(Ok(user))
        })
    }

    pub fn insert_session(&self, session: &SessionRow) -> Result<(), DbError> {
        diesel::insert_into(admin_sessions::table)
            .values(session)
            .execute(&mut self.conn()?)?;
        Ok(())
    }

    /// The live session with this token digest, and its user.
    pub fn find_session(&self, token_hash: &str) -> Result<Option<(SessionRow, UserRow)>, DbError> {
        Ok(admin_sessions::table
            .inner_join(admin_users::table)
            .filter(admin_sessions::token_hash.eq(token_hash))
            .filter(admin_sessions::expires_at.gt(now_unix()))
            .select((SessionRow::as_select(), UserRow::as_select()))
            .first(&mut self.conn()?)
            .optional()?)
    }

    /// Deletes every expired session; returns how many.
    pub fn purge_expired_sessions(&self) -> Result<usize, DbError> {
        Ok(
            diesel::delete(admin_sessions::table.filter(admin_sessions::expires_at.le(now_unix())))
                .execute(&mut self.conn()?)?,
        )
    }

    /// Stored sessions, expired ones included.
    pub fn count_sessions(&self) -> Result<i64, DbError> {
        Ok(admin_sessions::table
            .count()
            .get_result(&mut self.conn()?)?)
    }

    pub fn delete_session(&self, token_hash: &str) -> Result<(), DbError> {
        diesel::delete(admin_sessions::table.find(token_hash)).execute(&mut self.conn()?)?;
        Ok(())
    }

    /// Ends every session of a user except one (after a password change).
    pub fn delete_other_sessions(&self, user_id: &str, keep: Option<&str>) -> Result<(), DbError> {
        end_other_sessions(&mut *self.conn()?, user_id, keep)
    }

    pub fn insert_token(&self, token: &TokenRow) -> Result<(), DbError> {
        diesel::insert_into(api_tokens::table)
            .values(token)
            .execute(&mut self.conn()?)?;
        Ok(())
    }

    pub fn list_tokens(&self) -> Result<Vec<TokenRow>, DbError> {
        Ok(api_tokens::table
            .order((api_tokens::created_at.asc(), api_tokens::id.asc()))
            .select(TokenRow::as_select())
            .load(&mut self.conn()?)?)
    }

    /// The unrevoked token with this digest and its user; records its use.
    pub fn use_token(&self, token_hash: &str) -> Result<Option<(TokenRow, UserRow)>, DbError> {
        let mut conn = self.conn()?;
        let found = api_tokens::table
            .inner_join(admin_users::table)
            .filter(api_tokens::token_hash.eq(token_hash))
            .filter(api_tokens::revoked_at.is_null())
            .select((TokenRow::as_select(), UserRow::as_select()))
            .first::<(TokenRow, UserRow)>(&mut conn)
            .optional()?;
        if let Some((token, _)) = &found {
            diesel::update(api_tokens::table.find(&token.id))
                .set(api_tokens::last_used_at.eq(Some(now_unix())))
                .execute(&mut conn)?;
        }
        Ok(found)
    }

    /// Whether this token is unrevoked and its user still exists.
    pub fn token_is_live(&self, id: &str) -> Result<bool, DbError> {
        let found: i64 = api_tokens::table
            .inner_join(admin_users::table)
            .filter(api_tokens::id.eq(id))
            .filter(api_tokens::revoked_at.is_null())
            .count()
            .get_result(&mut self.conn()?)?;
        Ok(found > 0)
    }

    /// Revokes every unrevoked token of a user (after a password change); returns how many.
    pub fn revoke_user_tokens(&self, user_id: &str) -> Result<usize, DbError> {
        revoke_tokens_of(&mut *self.conn()?, user_id)
    }

    /// Revokes a token; [`DbError::NotFound`] if there is none (or it was revoked already).
    pub fn revoke_token(&self, id: &str) -> Result<TokenRow, DbError> {
        let mut conn = self.conn()?;
        let token = api_tokens::table
            .find(id)
            .filter(api_tokens::revoked_at.is_null())
            .select(TokenRow::as_select())
            .first(&mut conn)?;
        diesel::update(api_tokens::table.find(id))
            .set(api_tokens::revoked_at.eq(Some(now_unix())))
            .execute(&mut conn)?;
        Ok(token)
    }

    pub fn insert_audit(&self, entry: &AuditRow) -> Result<(), DbError> {
        diesel::insert_into(audit_log::table)
            .values(entry)
            .execute(&mut self.conn()?)?;
        Ok(())
    }

    /// A page of the audit log, newest first, and the total count.
    pub fn audit_page(&self, page: u32, per_page: u32) -> Result<(Vec<AuditRow>, i64), DbError> {
        let mut conn = self.conn()?;
        let total: i64 = audit_log::table.count().get_result(&mut conn)?;
        let rows = audit_log::table
            .order((audit_log::at.desc(), audit_log::id.desc()))
            .limit(i64::from(per_page))
            .offset(i64::from(page.saturating_sub(1)) * i64::from(per_page))
            .select(AuditRow::as_select())
            .load(&mut conn)?;
        Ok((rows, total))
    }
}

/// Ends every session of a user except `keep`, on the caller's connection (or transaction).
fn end_other_sessions(
    conn: &mut AnyConnection,
    user_id: &str,
    keep: Option<&str>,
) -> Result<(), DbError> {
    let sessions = admin_sessions::table.filter(admin_sessions::user_id.eq(user_id));
    match keep {
        Some(keep) => {
            diesel::delete(sessions.filter(admin_sessions::token_hash.ne(keep))).execute(conn)?
        }
        None => diesel::delete(sessions).execute(conn)?,
    };
    Ok(())
}

/// Revokes every unrevoked token of a user, on the caller's connection (or transaction).
fn revoke_tokens_of(conn: &mut AnyConnection, user_id: &str) -> Result<usize, DbError> {
    Ok(diesel::update(
        api_tokens::table
            .filter(api_tokens::user_id.eq(user_id))
            .filter(api_tokens::revoked_at.is_null()),
    )
    .set(api_tokens::revoked_at.eq(Some(now_unix())))
    .execute(conn)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{KeySource, PoolOptions};

    fn user(id: &str) -> UserRow {
        UserRow {
            id: id.into(),
            email: format!("{id}@example.com"),
            name: id.into(),
            password_hash: "x".into(),
            created_at: 0,
            updated_at: 0,
        }
    }

    /// A database in a temporary folder (kept alive by the returned guard).
    fn fresh_db() -> (Db, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeySource {
            key: None,
            file: dir.path().join("k"),
        };
        let url = dir.path().join("t.db").display().to_string();
        let db = Db::open(&url, PoolOptions::default(), &keys).unwrap();
        (db, dir)
    }

    #[test]
    fn the_last_user_cannot_be_deleted() {
        let (db, _dir) = fresh_db();
        db.insert_user(&user("a")).unwrap();
        db.insert_user(&user("b")).unwrap();
        assert!(matches!(db.insert_user(&user("a")), Err(DbError::Conflict)));
        assert_eq!(db.delete_user("b").unwrap().unwrap().id, "b");
        assert_eq!(db.delete_user("a").unwrap(), Err(DeleteUserError::LastUser));
        assert_eq!(
            db.delete_user("zz").unwrap(),
            Err(DeleteUserError::NotFound)
        );
        assert_eq!(db.count_users().unwrap(), 1);
    }

    #[test]
    fn expired_sessions_are_purged_and_live_ones_kept() {
        let (db, _dir) = fresh_db();
        db.insert_user(&user("a")).unwrap();
        let session = |hash: &str, expires_at: i64| SessionRow {
            token_hash: hash.into(),
            user_id: "a".into(),
            csrf_token: "c".into(),
            created_at: 0,
            expires_at,
        };
        db.insert_session(&session("old", now_unix() - 1)).unwrap();
        db.insert_session(&session("live", now_unix() + 60))
            .unwrap();
        assert_eq!(db.purge_expired_sessions().unwrap(), 1);
        assert_eq!(db.count_sessions().unwrap(), 1);
        assert!(db.find_session("live").unwrap().is_some());
    }

    #[test]
    fn a_user_change_is_one_transaction_with_its_revocations_and_audit() {
        let (db, _dir) = fresh_db();
        db.insert_user(&user("a")).unwrap();
        let session = |hash: &str| SessionRow {
            token_hash: hash.into(),
            user_id: "a".into(),
            csrf_token: "c".into(),
            created_at: 0,
            expires_at: now_unix() + 60,
        };
        db.insert_session(&session("mine")).unwrap();
        db.insert_session(&session("other")).unwrap();
        db.insert_token(&TokenRow {
            id: "t".into(),
            user_id: "a".into(),
            name: "ci".into(),
            token_hash: "th".into(),
            created_at: 0,
            last_used_at: None,
            revoked_at: None,
        })
        .unwrap();
        let audit = |_: &UserRow, after: &UserRow| {
            AuditRow::new("test".into(), "user.update", "user", &after.id, None, None)
        };

        // Refused: nothing is stored, nothing revoked, nothing audited.
        let refused = db.change_user("a", Some("mine"), |_| None, audit).unwrap();
        assert_eq!(refused.unwrap_err().id, "a");
        assert_eq!(db.count_sessions().unwrap(), 2);
        assert_eq!(db.audit_page(1, 10).unwrap().1, 0);

        // A rename keeps every credential.
        let renamed = db
            .change_user(
                "a",
                None,
                |u| {
                    Some(UserRow {
                        name: "A".into(),
                        ..u.clone()
                    })
                },
                audit,
            )
            .unwrap()
            .unwrap();
        assert_eq!(renamed.1.name, "A");
        assert_eq!(db.count_sessions().unwrap(), 2);
        assert!(db.token_is_live("t").unwrap());

        // A new password ends the other sessions and every token, in the same change.
        let (before, after) = db
            .change_user(
                "a",
                Some("mine"),
                |u| {
                    Some(UserRow {
                        password_hash: "y".into(),
                        ..u.clone()
                    })
                },
                audit,
            )
            .unwrap()
            .unwrap();
        assert_eq!(
            (before.password_hash.as_str(), after.password_hash.as_str()),
            ("x", "y")
        );
        assert!(db.find_session("mine").unwrap().is_some());
        assert!(db.find_session("other").unwrap().is_none());
        assert!(!db.token_is_live("t").unwrap());
        assert_eq!(db.audit_page(1, 10).unwrap().1, 2);
        assert!(matches!(
            db.change_user("zz", None, |u| Some(u.clone()), audit),
            Err(DbError::NotFound)
        ));
    }
}
