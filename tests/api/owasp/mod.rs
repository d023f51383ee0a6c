//! OWASP API Security Top 10 (2023): one test group per item that applies, named after it.
//! Items already covered elsewhere are listed with the module that covers them until they move
//! here: API1 (`authz.rs`, the role matrix).

mod api2_authentication;
mod api3_property_level;
mod api4_resource_consumption;
mod api5_function_level;
mod api8_misconfiguration;
mod api9_inventory;
