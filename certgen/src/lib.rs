//! certgen: the Tasker CA and leaf certificates. Filled by the API issue.
