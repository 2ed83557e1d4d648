//! Customer accounts as the back office holds them: registered with a customer's first
//! order, changed (a new address), erased (a GDPR request) — each change an event and a
//! `customer` webhook.

use super::*;
use crate::model::Address;

/// A customer account (orders carry a copy of the customer as it was when they were placed).
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerAccount {
    pub id: i64,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub billing_address: Address,
    pub updated_at: DateTime<Utc>,
}

impl CustomerAccount {
    pub fn of(order: &Order) -> Self {
        CustomerAccount {
            id: order.customer.id,
            email: order.customer.email.clone(),
            first_name: order.customer.first_name.clone(),
            last_name: order.customer.last_name.clone(),
            billing_address: order.billing_address.clone(),
            updated_at: Utc::now(),
        }
    }
}

impl Ops {
    /// The account of an order's customer, opened with its first order (guests, id 0,
    /// have none). The simulator raises no event for it: the order announces itself.
    pub fn register_customer(&mut self, order: &Order) {
        if order.customer.id == 0 || self.customers.contains_key(&order.customer.id) {
            return;
        }
        self.customers
            .insert(order.customer.id, CustomerAccount::of(order));
    }

    /// Changes an account (customer service corrects an address, the customer renames).
    pub fn change_customer(
        &mut self,
        id: i64,
        change: impl FnOnce(&mut CustomerAccount),
    ) -> Result<(), UserError> {
        let Some(account) = self.customers.get_mut(&id) else {
            return Err(user_error(format!("Customer {id} not found"), &["id"]));
        };
        change(account);
        account.updated_at = Utc::now();
        self.raise(
            EventObjectType::Customer,
            EventChangeType::Updated,
            id,
            Some("update"),
        );
        Ok(())
    }

    /// Erases an account (a customer's erasure request): it is gone from the API.
    pub fn erase_customer(&mut self, id: i64) -> Result<(), UserError> {
        if self.customers.remove(&id).is_none() {
            return Err(user_error(format!("Customer {id} not found"), &["id"]));
        }
        self.raise(
            EventObjectType::Customer,
            EventChangeType::Deleted,
            id,
            Some("delete"),
        );
        Ok(())
    }
}
