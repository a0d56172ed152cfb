//! Every request body of the LM API through `lm_api::parse_body`: never a panic, errors say
//! what is wrong, and whatever parses serializes and parses back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lm_api::{
    AddServer, AddTenant, AgentReport, CreateLease, EnrollRequest, Heartbeat, HelloRequest,
    RenewLease, parse_body,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn check<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(data: &[u8]) {
    match parse_body::<T>(data) {
        Ok(v) => {
            let again = serde_json::to_vec(&v).expect("serialize");
            let back: T = parse_body(&again).expect("round trip");
            assert_eq!(v, back);
        }
        Err(e) => assert!(!e.message.is_empty()),
    }
}

fuzz_target!(|data: &[u8]| {
    check::<CreateLease>(data);
    check::<RenewLease>(data);
    check::<AddTenant>(data);
    check::<AddServer>(data);
    check::<EnrollRequest>(data);
    check::<Heartbeat>(data);
    check::<HelloRequest>(data);
    check::<AgentReport>(data);
});
