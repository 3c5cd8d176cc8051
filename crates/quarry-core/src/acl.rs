//! Access control vocabulary: who is asking ([`Principal`]) and who may read a document (its ACL,
//! an allow-list of principal names).
//!
//! A document's ACL names principals as `user:ID`, `group:ID` or `public`. An empty ACL means "the
//! default ACL" ([`DefaultAcl`]), which is resolved when a query runs, so changing the default
//! never needs a re-index. A caller reads a document when the ACL names the caller's user, one of
//! its groups, or `public`; an `admin` reads every document.
//!
//! The indexes store, for each chunk, the union of the [`index_tokens`] of the documents holding
//! it; a query filters on the caller's [`Principal::tokens`]. Both sides of that match come from this
//! module, so the filter inside the retrievers and [`Principal::may_read`] cannot disagree.

use crate::error::{Error, Result};

/// Index token of a document whose ACL is empty: readable by whoever the default ACL allows.
pub const DEFAULT_TOKEN: &str = "$default";

/// What a caller may do with the API. Ordered: a writer may do what a reader may, an admin all.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Query and read routes.
    Reader,
    /// Also documents and ingest.
    Writer,
    /// Also versions, re-index jobs, settings and evaluations of live collections; reads every
    /// document whatever its ACL.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Writer => "writer",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Result<Role> {
        match s {
            "reader" => Ok(Role::Reader),
            "writer" => Ok(Role::Writer),
            "admin" => Ok(Role::Admin),
            other => Err(Error::invalid(
                "role",
                format!("{other:?}; use reader, writer or admin"),
            )),
        }
    }
}

/// An authenticated caller: a user id, its groups and its role.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Principal {
    pub user: String,
    #[serde(default)]
    pub groups: Vec<String>,
    pub role: Role,
}

impl Principal {
    pub fn new(user: impl Into<String>, groups: Vec<String>, role: Role) -> Principal {
        Principal {
            user: user.into(),
            groups,
            role,
        }
    }

    /// A caller built from ids given by someone else (a key file, a token, a flag, a request),
    /// after checking them: the user and each group must be an id an ACL can name (1 to 256
    /// bytes, no whitespace or control character). The one place where outside ids become a
    /// caller; [`Principal::new`] is for ids the program wrote itself.
    pub fn checked(
        user: impl Into<String>,
        groups: Vec<String>,
        role: Role,
    ) -> std::result::Result<Principal, InvalidId> {
        let user = user.into();
        if !valid_id(&user) {
            return Err(InvalidId {
                field: "user",
                id: user,
            });
        }
        if let Some(g) = groups.iter().find(|g| !valid_id(g)) {
            return Err(InvalidId {
                field: "group",
                id: g.clone(),
            });
        }
        Ok(Principal::new(user, groups, role))
    }

    /// The operator of this machine: in-process commands and a server without authentication.
    pub fn local_admin() -> Principal {
        Principal::new("local", Vec::new(), Role::Admin)
    }

    /// Whether this caller reads every document (no ACL filter at all).
    pub fn sees_all(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether this caller names one of `acl`'s principals (`public` names everybody). An admin's
    /// bypass is not considered here; see [`Principal::may_read`].
    fn named_in(&self, acl: &[String]) -> bool {
        acl.iter().any(|p| match principal_kind(p) {
            Some(Kind::Public) => true,
            Some(Kind::User(id)) => id == self.user,
            Some(Kind::Group(g)) => self.groups.iter().any(|mine| mine == g),
            None => false,
        })
    }

    /// Whether this caller may read a document with `acl` (empty: the default ACL).
    pub fn may_read(&self, acl: &[String], default: &DefaultAcl) -> bool {
        self.sees_all()
            || if acl.is_empty() {
                self.named_in(&default.0)
            } else {
                self.named_in(acl)
            }
    }

    /// The index tokens this caller matches: `user:ID`, `group:G` for each group, `public`, and
    /// [`DEFAULT_TOKEN`] when the default ACL lets the caller read. A chunk is visible to the
    /// caller when its token set meets these. Meaningless for an admin, who is not filtered.
    pub fn tokens(&self, default: &DefaultAcl) -> Vec<String> {
        let mut out = Vec::with_capacity(self.groups.len() + 3);
        out.push(format!("user:{}", self.user));
        out.extend(self.groups.iter().map(|g| format!("group:{g}")));
        out.push("public".to_owned());
        if self.named_in(&default.0) {
            out.push(DEFAULT_TOKEN.to_owned());
        }
        out.sort();
        out.dedup();
        out
    }
}

/// Why ids cannot make a caller ([`Principal::checked`]): which one (`field` is `"user"` or
/// `"group"`) and its value. Displays as "user \"a b\" must be 1 to 256 characters without spaces".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {id:?} must be 1 to 256 characters without spaces")]
pub struct InvalidId {
    pub field: &'static str,
    pub id: String,
}

impl InvalidId {
    /// The error [`check_principal`] gives for the ACL entry this id would make (`user:ID` or
    /// `group:ID`).
    pub fn acl_error(&self) -> Error {
        invalid_principal(&format!("{}:{}", self.field, self.id))
    }
}

/// The ACL of documents that carry none: a list of principals; empty means admins only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DefaultAcl(pub Vec<String>);

impl DefaultAcl {
    /// Everyone may read documents without an ACL (a server without authentication).
    pub fn public() -> DefaultAcl {
        DefaultAcl(vec!["public".to_owned()])
    }

    /// Only admins may read documents without an ACL (secure by default, with authentication).
    pub fn admin_only() -> DefaultAcl {
        DefaultAcl(Vec::new())
    }
}

/// The tokens a document with `acl` contributes to the index: its principals, or
/// [`DEFAULT_TOKEN`] when it has none.
pub fn index_tokens(acl: &[String]) -> Vec<String> {
    if acl.is_empty() {
        vec![DEFAULT_TOKEN.to_owned()]
    } else {
        acl.to_vec()
    }
}

enum Kind<'a> {
    Public,
    User(&'a str),
    Group(&'a str),
}

fn principal_kind(p: &str) -> Option<Kind<'_>> {
    if p == "public" {
        return Some(Kind::Public);
    }
    if let Some(id) = p.strip_prefix("user:") {
        return valid_id(id).then_some(Kind::User(id));
    }
    if let Some(id) = p.strip_prefix("group:") {
        return valid_id(id).then_some(Kind::Group(id));
    }
    None
}

/// An id is 1 to 256 bytes with no whitespace or control character.
fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 256 && !id.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Checks one principal name (`user:ID`, `group:ID` or `public`).
pub fn check_principal(p: &str) -> Result<()> {
    match principal_kind(p) {
        Some(_) => Ok(()),
        None => Err(invalid_principal(p)),
    }
}

fn invalid_principal(p: &str) -> Error {
    Error::invalid(
        "principal",
        format!(
            "{p:?}; a principal is user:ID, group:ID or public (an ID is 1 to 256 characters without spaces)"
        ),
    )
}

/// Checks an ACL and returns it sorted without duplicates, so equal ACLs compare equal.
pub fn normalize_acl(acl: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::with_capacity(acl.len());
    for p in acl {
        check_principal(p)?;
        out.push(p.clone());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn readers_see_their_user_their_groups_and_public() {
        let alice = Principal::new("alice", vec!["eng".into()], Role::Reader);
        let def = DefaultAcl::admin_only();
        assert!(alice.may_read(&acl(&["user:alice"]), &def));
        assert!(alice.may_read(&acl(&["group:eng", "user:bob"]), &def));
        assert!(alice.may_read(&acl(&["public"]), &def));
        assert!(!alice.may_read(&acl(&["user:bob", "group:sales"]), &def));
        // user and group ids are different namespaces
        assert!(!alice.may_read(&acl(&["group:alice", "user:eng"]), &def));
        // the default ACL applies to empty ACLs only
        assert!(!alice.may_read(&[], &def));
        assert!(alice.may_read(&[], &DefaultAcl::public()));
        assert!(alice.may_read(&[], &DefaultAcl(acl(&["group:eng"]))));
        let admin = Principal::new("root", vec![], Role::Admin);
        assert!(admin.may_read(&acl(&["user:bob"]), &def));
        assert!(admin.may_read(&[], &def));
    }

    #[test]
    fn tokens_agree_with_may_read() {
        // A document is visible iff its index tokens meet the caller's tokens: the same answer
        // as may_read, for every caller and ACL drawn from a small universe.
        let universe = ["user:alice", "user:bob", "group:eng", "group:ops", "public"];
        let callers = [
            Principal::new("alice", vec![], Role::Reader),
            Principal::new("bob", vec!["eng".into()], Role::Writer),
            Principal::new("carol", vec!["ops".into(), "eng".into()], Role::Reader),
        ];
        let defaults = [
            DefaultAcl::admin_only(),
            DefaultAcl::public(),
            DefaultAcl(acl(&["group:ops"])),
        ];
        for mask in 0u32..(1 << universe.len()) {
            let doc: Vec<String> = universe
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, p)| p.to_string())
                .collect();
            for caller in &callers {
                for def in &defaults {
                    let tokens = caller.tokens(def);
                    let visible = index_tokens(&doc).iter().any(|t| tokens.contains(t));
                    assert_eq!(
                        visible,
                        caller.may_read(&doc, def),
                        "{caller:?} {doc:?} {def:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn principals_are_checked_and_acls_normalised() {
        assert!(check_principal("public").is_ok());
        assert!(check_principal("user:alice").is_ok());
        assert!(check_principal("group:eng-team").is_ok());
        for bad in [
            "",
            "alice",
            "user:",
            "group:",
            "role:admin",
            "user:a b",
            "Public",
            "$default",
        ] {
            assert!(check_principal(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            normalize_acl(&acl(&["user:b", "public", "user:b", "group:a"])).unwrap(),
            acl(&["group:a", "public", "user:b"])
        );
        assert!(normalize_acl(&acl(&["user:b", "bob"])).is_err());
        assert_eq!(Role::parse("writer").unwrap(), Role::Writer);
        assert!(Role::parse("root").is_err());
        assert!(Role::Admin > Role::Writer && Role::Writer > Role::Reader);
    }

    #[test]
    fn checked_principals_name_their_bad_id() {
        let ok = Principal::checked("alice", vec!["eng".into()], Role::Writer).unwrap();
        assert_eq!(
            ok,
            Principal::new("alice", vec!["eng".into()], Role::Writer)
        );
        let bad = Principal::checked("a b", vec![], Role::Reader).unwrap_err();
        assert_eq!(
            bad.to_string(),
            "user \"a b\" must be 1 to 256 characters without spaces"
        );
        assert_eq!(bad.acl_error(), check_principal("user:a b").unwrap_err());
        let bad = Principal::checked("alice", vec!["eng".into(), String::new()], Role::Reader);
        assert_eq!(bad.unwrap_err().field, "group");
        assert!(Principal::checked("x".repeat(257), vec![], Role::Reader).is_err());
        assert!(Principal::checked("x".repeat(256), vec![], Role::Reader).is_ok());
    }

    proptest::proptest! {
        /// A caller is built exactly when every id it carries could be named in an ACL, and its
        /// tokens are then valid ACL entries.
        #[test]
        fn checked_agrees_with_acl_entries(
            user in "\\PC{0,4}|[a-z ]{0,3}|\\s",
            groups in proptest::collection::vec("\\PC{0,3}|[a-z\t]{0,2}", 0..3),
        ) {
            let entries_ok = check_principal(&format!("user:{user}")).is_ok()
                && groups.iter().all(|g| check_principal(&format!("group:{g}")).is_ok());
            match Principal::checked(user.clone(), groups.clone(), Role::Reader) {
                Ok(p) => {
                    proptest::prop_assert!(entries_ok);
                    for t in p.tokens(&DefaultAcl::admin_only()) {
                        proptest::prop_assert!(check_principal(&t).is_ok(), "{t:?}");
                    }
                }
                Err(bad) => {
                    proptest::prop_assert!(!entries_ok);
                    let entry = format!("{}:{}", bad.field, bad.id);
                    proptest::prop_assert!(check_principal(&entry).is_err(), "{entry:?}");
                }
            }
        }
    }
}
