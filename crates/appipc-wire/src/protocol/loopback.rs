//! Loopback isolation: `uap4:LoopbackAccessRules` and `CheckNetIsolation LoopbackExempt`.

use minicbor::{Decode, Encode};

super::mechanism! {
    /// Loopback between packages (`uap4:LoopbackAccessRules`) and its exemptions
    /// (`CheckNetIsolation.exe LoopbackExempt`): why a connect is allowed or refused, and the
    /// persistent outbound exemptions (`-a`, `-d`, `-s`, `-c`). Changing exemptions is for the
    /// user's own unpackaged processes only.
    mechanism Loopback;
    requests {
        /// Whether a TCP connect from a process of `client` (an app container, or a packaged
        /// full-trust process) to an app container's listener of `server` over loopback is
        /// allowed now, and by which rule; a refusal names each missing rule or
        /// capability and on which side (`appipc loopback why`). Not recorded in the decision
        /// log (asking is not connecting).
        0 Why {
            /// The client's package family name; "" for an unpackaged process.
            0 client: String,
            /// The listener's package family name; "" for an unpackaged process.
            1 server: String,
            /// The port, when given.
            2 port: Option<u16>,
            /// The client is a packaged full-trust process of `client` (`true`), not an app
            /// container of it (absent or `false`).
            3 client_full_trust: Option<bool>,
        } fds(0) -> LoopbackVerdict, reply fds "0";
        /// `LoopbackExempt -a -n=PFN`: the package may connect out to listeners that are not in
        /// an app container; kept across broker restarts.
        1 AddExemption {
            /// The package family name.
            0 package_family_name: String,
        } fds(0) -> (), reply fds "0";
        /// `LoopbackExempt -d -n=PFN`; whether it was exempt.
        2 RemoveExemption {
            /// The package family name.
            0 package_family_name: String,
        } fds(0) -> bool, reply fds "0";
        /// `LoopbackExempt -s`: the exempt families, sorted.
        3 ListExemptions {} fds(0) -> Vec<String>, reply fds "0";
        /// `LoopbackExempt -c`; how many there were.
        4 ClearExemptions {} fds(0) -> u32, reply fds "0";
        /// `LoopbackExempt -is -n=PFN` (`appipc loopback serve-inbound`): the TCP ports the
        /// package's app containers listen on over loopback now, sorted.
        5 InboundPorts {
            /// The package family name.
            0 package_family_name: String,
        } fds(0) -> Vec<u16>, reply fds "0";
        /// `LoopbackExempt -is -n=PFN`: a connection for an unpackaged client to the package's
        /// listener on `port`, decided as an inbound loopback connect while the asking process
        /// serves inbound (it is the exemption: it lasts as long as that process asks).
        6 InboundConnect {
            /// The package family name.
            0 package_family_name: String,
            /// The listener's port.
            1 port: u16,
        } fds(0) -> (), reply fds "1: a TCP socket of the package's network namespace, connected to the listener";
    }
    events {}
}

/// Answer to [`Why`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct LoopbackVerdict {
    /// Whether the connect would succeed.
    #[n(0)]
    pub allowed: bool,
    /// The rule that decided, in words; for a refusal every missing rule or capability, with
    /// its side.
    #[n(1)]
    pub rule: String,
    /// What would allow a refusal.
    #[n(2)]
    pub remedy: Option<String>,
    /// The manifest declaration involved, `PFN: appipc.toml:LINE:COL (key)`.
    #[n(3)]
    pub manifest: Option<String>,
}
