//! `lab-bmc <socket> cycle <mac>`: the client of the lab's virtual BMC (`lab::bmc`), for the
//! Lease Manager's `[power] cycle_command` in the lab. Exit status 0 when the VM was cycled.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (sock, mac) = match args.as_slice() {
        [sock, cmd, mac] if cmd == "cycle" => (sock, mac),
        _ => {
            eprintln!("usage: lab-bmc <socket> cycle <mac>");
            std::process::exit(2);
        }
    };
    let mac: lab::MacAddr = match mac.parse() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("lab-bmc: bad MAC {mac:?}: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = lab::bmc::request_cycle(std::path::Path::new(sock), mac) {
        eprintln!("lab-bmc: {e:#}");
        std::process::exit(1);
    }
}
