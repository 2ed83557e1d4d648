//! Who may do what: a token's role and tenants, checked on the server for every call.
//! Everyone may read the exceptions of the tenants they may see (an inbox is shared work);
//! acting on one is for its owning team, engineering and admins; comments are for all.

use std::fmt;

use ferry_domain::Owner;

/// The role a token carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Finance,
    Operations,
    CustomerService,
    Engineering,
    Admin,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Finance,
        Role::Operations,
        Role::CustomerService,
        Role::Engineering,
        Role::Admin,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Finance => "finance",
            Role::Operations => "operations",
            Role::CustomerService => "customer_service",
            Role::Engineering => "engineering",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == text || r.as_str().replace('_', "-") == text)
    }

    /// The team a role works for (admins work for none in particular).
    pub fn team(&self) -> Option<Owner> {
        match self {
            Role::Finance => Some(Owner::Finance),
            Role::Operations => Some(Owner::Operations),
            Role::CustomerService => Some(Owner::CustomerService),
            Role::Engineering => Some(Owner::Engineering),
            Role::Admin => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The caller, as its token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's name: a person or a system (the actor in the audit).
    pub name: String,
    pub role: Role,
    /// The tenants it may see; `*` for every tenant.
    pub tenants: Vec<String>,
}

/// What a caller wants to do to an exception.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Comment,
    /// Resolve, ignore, assign (and later retry): changes what happens to the work.
    Act,
}

impl Principal {
    pub fn sees_every_tenant(&self) -> bool {
        self.tenants.iter().any(|t| t == "*")
    }

    pub fn can_see(&self, tenant: &str) -> bool {
        self.sees_every_tenant() || self.tenants.iter().any(|t| t == tenant)
    }

    /// Whether the caller may do `action` to an exception of `tenant` owned by `owner`.
    /// A tenant it may not see is not a refusal but absence: the caller answers NotFound.
    pub fn may(&self, action: Action, owner: &str) -> bool {
        match action {
            Action::Read | Action::Comment => true,
            Action::Act => match self.role {
                Role::Admin | Role::Engineering => true,
                role => role.team().is_some_and(|team| team.as_str() == owner),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(role: Role, tenants: &[&str]) -> Principal {
        Principal {
            name: "anna@brand.example".into(),
            role,
            tenants: tenants.iter().map(|t| (*t).to_owned()).collect(),
        }
    }

    #[test]
    fn a_team_acts_on_its_own_exceptions_engineering_and_admins_on_all() {
        let owners = ["finance", "operations", "customer_service", "engineering"];
        for role in Role::ALL {
            let p = principal(role, &["acme"]);
            for owner in owners {
                let own = role.team().is_some_and(|t| t.as_str() == owner);
                let everyone = matches!(role, Role::Admin | Role::Engineering);
                assert_eq!(
                    p.may(Action::Act, owner),
                    own || everyone,
                    "{role} on {owner}"
                );
                assert!(p.may(Action::Read, owner));
                assert!(p.may(Action::Comment, owner));
            }
        }
    }

    #[test]
    fn tenants_are_listed_or_every_one() {
        let acme = principal(Role::Finance, &["acme"]);
        assert!(acme.can_see("acme") && !acme.can_see("globex"));
        assert!(principal(Role::Admin, &["*"]).can_see("globex"));
    }

    #[test]
    fn roles_read_as_written_with_either_separator() {
        assert_eq!(Role::parse("customer-service"), Some(Role::CustomerService));
        assert_eq!(Role::parse("customer_service"), Some(Role::CustomerService));
        assert_eq!(Role::parse("boss"), None);
    }
}
