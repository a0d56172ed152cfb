// The namespace helpers live with agent-esp's namespace test, which uses them too.
#[path = "../../../esp/tests/common/net.rs"]
pub mod net;
